# Pure: the fast lane of the native engine, the readable specification of
# _lane_c.pyx (same functions, compiled). The engine's general path writes
# a request and reads a response as events through two fast connections
# (_fastconn.py) and the rewrite rules (_rewrite.py); for the commonest
# exchange the lane makes the same bytes in one step each:
#
# - request_head(): the head sent upstream for an untrusted client's request
#   without a body: exactly what the general path writes for it
#   (encode_request_head over request_headers, trusted=False);
# - response_head(): a complete response head of the simplest kind, read
#   and rewritten for an HTTP/1.1 keep-alive client that did not send HEAD:
#   exactly what the general path writes to that client for it, with the
#   body's length; None for any other head, which the general path then
#   reads (and accepts or refuses by its own rules).
#
# The simplest kind: what parse_response_head() accepts, HTTP/1.1, a final
# status (200-599) other than 204 and 304, one Content-Length of 1-18
# digits and no Transfer-Encoding. The twin below is written as the general
# path's own functions composed, so that it is that path by construction;
# tests compare the compiled lane with it on generated heads.

from __future__ import annotations

from ._events import Headers, RemoteProtocolError
from ._rewrite import has_token, request_headers, response_headers
from ._wire import _DIGITS, encode_request_head, encode_response_head, parse_response_head

__all__ = ["request_head", "response_head"]


def request_head(method: bytes, target: bytes, headers: Headers, *, client_ip: bytes, upstream_host: bytes,
                 prefix: bytes | None, allow_underscores: bool) -> bytes:
    """The request head to send upstream for an untrusted client's request without a body.

    Args:
        method, target: the request's, the target already stripped of the prefix if the route strips it.
        headers: the client's (checked: names lowercased, values trimmed).
        client_ip: the client's address (ASCII), for X-Forwarded-For.
        upstream_host: Host to send when the client sent none.
        prefix: the stripped prefix (X-Forwarded-Prefix), or None.
        allow_underscores: --allow-underscores.
    """
    rewritten = request_headers(headers, client_ip=client_ip.decode("ascii"), trusted=False,
                                upstream_host=upstream_host,
                                prefix=None if prefix is None else prefix.decode("utf-8"),
                                allow_underscores=allow_underscores)
    return encode_request_head(method, target, rewritten)


def response_head(head: bytes) -> tuple[int, int, bool, bytes] | None:
    """A complete response head (through CRLF CRLF) of the simplest kind, for the lane's client.

    Returns:
        (status, Content-Length, whether the backend keeps the connection,
        the head for the client), or None when the head is of any other kind.
    """
    try:
        version, status, reason, headers = parse_response_head(head)
    except RemoteProtocolError:
        return None
    if version != b"1.1" or not 200 <= status <= 599 or status in (204, 304):
        return None
    lengths = [value for name, value in headers if name == b"content-length"]
    if len(lengths) != 1 or not _DIGITS.match(lengths[0]):
        return None
    if any(name == b"transfer-encoding" for name, _ in headers):
        return None
    keep = not has_token(headers, b"connection", b"close")
    return status, int(lengths[0]), keep, encode_response_head(status, reason, response_headers(headers))

