# Pure: which route a checked request head goes to, given the table in
# force. The head itself was checked and its path normalised by _head.py
# (limits, framing, target form), so this is only the lookup. No I/O, so it
# is tested without sockets or an event loop.

from __future__ import annotations

import math
from typing import Any, Protocol

from .._config import Route
from .._errors import NoRoute

__all__ = ["decide", "hold_deadline", "slash_redirect"]


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


def hold_deadline(route: Route | None, arrived: float, hold: float) -> float:
    """Until when (time.monotonic()) a request that found no backend may wait for one.

    Args:
        route: the route it matched (with no backend now), or None: no route
            matched while the Docker routes are not loaded yet.
        arrived: when the request's head was read.
        hold: --hold, in seconds.

    A booting route (a container started, not ready yet) and a request for a
    route not known yet wait up to `hold` from their arrival; a held route
    (its last container left) until its hold ends; any other route not at
    all (the deadline is already past).
    """
    if route is None or route.booting:
        return arrived + hold
    return route.hold_until if route.hold_until is not None else -math.inf


def slash_redirect(route: Route, prefix: str, target: bytes) -> bytes | None:
    """Where to send a request for exactly a strip route's prefix, without its slash; else None.

    The backend would see "/" either way, and the relative links on the page
    it sends would then resolve against the site's root, not the prefix;
    "/app?q" is sent to "/app/?q" with 308 (the method and body kept), as
    nginx does for a location with a trailing slash.
    """
    if not route.strip_prefix or prefix == "/":
        return None
    path, question, query = target.partition(b"?")
    if path != prefix.encode("utf-8"):
        return None
    return path + b"/" + question + query
