# Pure: which route a checked request head goes to, given the table in
# force. The head itself was checked and its path normalised by _head.py
# (limits, framing, target form), so this is only the lookup. No I/O, so it
# is tested without sockets or an event loop.

from __future__ import annotations

from typing import Any, Protocol

from ._errors import NoRoute

__all__ = ["decide"]


class Table(Protocol):
    def lookup(self, path: bytes) -> tuple[str, Any] | None: ...


def decide(table: Table, target: bytes) -> tuple[str, Any]:
    """Choose the route for a normalised origin-form target.

    Returns:
        (prefix, value) from the table.

    Raises:
        NoRoute: no prefix matches (404).
    """
    found = table.lookup(target)
    if found is None:
        raise NoRoute(f"no route for {target.split(b'?', 1)[0].decode('utf-8', 'replace')!r}")
    return found
