# Pure: what to do with a request head, given the route table in force.
# Returns the route or raises the ProxyError the client gets. No I/O, so the
# whole decision is tested without sockets or an event loop.

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ._config import Limits
from ._errors import ClientProtocolError, NoRoute

__all__ = ["decide", "head_size"]

Header = tuple[bytes, bytes]


class Table(Protocol):
    def lookup(self, path: bytes) -> tuple[str, Any] | None: ...


def head_size(method: bytes, target: bytes, headers: Sequence[Header]) -> int:
    """Bytes of the head as sent, give or take whitespace: request line plus fields."""
    return len(method) + len(target) + 11 + sum(len(n) + len(v) + 4 for n, v in headers)


def decide(
    table: Table, method: bytes, target: bytes, http_version: bytes, headers: Sequence[Header], limits: Limits
) -> tuple[str, Any]:
    """Choose the route for a request head.

    Returns:
        (prefix, value) from the table.

    Raises:
        ClientProtocolError: 505 for an HTTP version other than 1.0 and 1.1,
            414 for a target over the limit, 431 for too many or too large
            header fields, 400 for a target that is not a path (origin-form),
            501 for CONNECT.
        NoRoute: no prefix matches (404).
    """
    if http_version not in (b"1.1", b"1.0"):
        raise ClientProtocolError(f"HTTP/{http_version.decode('ascii', 'replace')} is not supported", status=505)
    if len(target) > limits.max_target:
        raise ClientProtocolError(
            f"request target of {len(target)} bytes is over the limit of {limits.max_target}", status=414
        )
    if len(headers) > limits.max_headers:
        raise ClientProtocolError(
            f"{len(headers)} header fields is over the limit of {limits.max_headers}", status=431
        )
    size = head_size(method, target, headers) - len(target)
    if size > limits.max_header_bytes:
        raise ClientProtocolError(
            f"header fields of {size} bytes are over the limit of {limits.max_header_bytes}", status=431
        )
    if method == b"CONNECT":
        raise ClientProtocolError("CONNECT is not supported", status=501)
    if not target.startswith(b"/"):
        raise ClientProtocolError("the request target must be a path starting with '/'")
    found = table.lookup(target)
    if found is None:
        raise NoRoute(f"no route for {target.split(b'?', 1)[0].decode('utf-8', 'replace')!r}")
    return found
