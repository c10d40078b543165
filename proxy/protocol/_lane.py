# Pure: the fast lane of the native engine, the readable specification of
# _lane_c.pyx and _plain_c.pyx (same functions, compiled). The engine's general path writes
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
# - plain_request() and plain_upstream_head(): a request head of the
#   commonest kind, read once: its target if check_head() accepts it as it
#   is (nothing to normalise) and the cycle may forward it whole (_plain's
#   conditions and stricter: no field the rewrite would merge or that asks
#   for anything), then its upstream head, as request_head() writes it.
#   The compiled pair reads the head in place into offsets; any other head
#   goes to check_head() and request_head() as before (same answers).
#
# The simplest kind: what parse_response_head() accepts, HTTP/1.1, a final
# status (200-599) other than 204 and 304, one Content-Length of 1-18
# digits and no Transfer-Encoding. The twin below is written as the general
# path's own functions composed, so that it is that path by construction;
# tests compare the compiled lane with it on generated heads.

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._errors import ClientProtocolError
from ._events import Headers, RemoteProtocolError
from ._head import check_head
from ._rewrite import _FORWARDED, Header, has_token, request_headers, response_headers
from ._wire import _DIGITS, encode_request_head, encode_response_head, parse_response_head

if TYPE_CHECKING:
    from .._config import Limits

__all__ = ["plain_request", "plain_upstream_head", "request_head", "response_head", "with_fields"]

# A path normalise_path() leaves as it is, but for "//" and dot segments (checked apart): no "%", no
# backslash, no fragment.
_PLAIN_PATH = re.compile(rb"/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*\Z")
_PLAIN_QUERY = re.compile(rb"[\x21-\x22\x24-\x7e]*\Z")  # visible ASCII but "#"
# Fields that send a head to check_head() and request_head() instead: framing, asking for something,
# hop-by-hop fields other than Connection: keep-alive, and what the rewrite merges with its own.
_NOT_PLAIN = frozenset({b"content-length", b"transfer-encoding", b"upgrade", b"expect", b"keep-alive",
                        b"proxy-connection", b"te", b"trailer", b"http2-settings", b"via"}) | _FORWARDED
PLAIN_MAX_FIELDS = 64  # a head with more fields is not plain (the compiled scan's array of offsets)
_PLAIN_HOST = re.compile(rb"[A-Za-z0-9\-._~%!$&'()*+,;=]+(:[0-9]*)?\Z")  # _head._HOST without IP literals


def plain_request(head: bytes, limits: Limits) -> bytes | None:
    """The target of a complete request head (through CRLF CRLF) of the commonest kind, else None.

    The commonest kind: check_head() accepts it and its target needs no normalising (so the target
    is the request line's); HTTP/1.1, a method other than HEAD and CONNECT, the target a path (not
    *, not absolute-form) without "%", "//", a dot segment or a fragment; PLAIN_MAX_FIELDS fields
    at most, none in _NOT_PLAIN, no name with "_", Connection only as keep-alive; Host not an IP
    literal. Every other head is
    checked and rewritten by check_head() and request_head(), which give it its answer.
    """
    try:
        checked = check_head(head, limits)
    except ClientProtocolError:
        return None
    target = head.split(b" ", 2)[1]
    path, _, query = target.partition(b"?")
    if checked.version != b"1.1" or checked.method in (b"HEAD", b"CONNECT"):
        return None
    if not _PLAIN_PATH.match(path) or b"//" in path or not _PLAIN_QUERY.match(query):
        return None
    if any(segment in (b".", b"..") for segment in path.split(b"/")) or len(checked.headers) > PLAIN_MAX_FIELDS:
        return None
    for name, value in checked.headers:
        if name in _NOT_PLAIN or b"_" in name:
            return None
        if name == b"connection" and value.lower() != b"keep-alive":
            return None
        if name == b"host" and not _PLAIN_HOST.match(value):
            return None
    assert checked.target == target
    return target


def plain_upstream_head(head: bytes, target: bytes, *, limits: Limits, client_ip: bytes,
                        prefix: bytes | None, secure: bool = False) -> bytes:
    """request_head() for a head plain_request() returned a target for.

    Args:
        target: that target, stripped of the prefix if the route strips it.
        client_ip, prefix, secure: as request_head()'s.
    """
    checked = check_head(head, limits)
    return request_head(checked.method, target, checked.headers, client_ip=client_ip, upstream_host=b"",
                        prefix=prefix, allow_underscores=False, secure=secure)


def request_head(method: bytes, target: bytes, headers: Headers, *, client_ip: bytes, upstream_host: bytes,
                 prefix: bytes | None, allow_underscores: bool, secure: bool = False,
                 received: bytes = b"1.1") -> bytes:
    """The request head to send upstream for an untrusted client's request without a body.

    Args:
        method, target: the request's, the target already stripped of the prefix if the route strips it.
        headers: the client's (checked: names lowercased, values trimmed).
        client_ip: the client's address (ASCII), for X-Forwarded-For.
        upstream_host: Host to send when the client sent none.
        prefix: the stripped prefix (X-Forwarded-Prefix), or None.
        allow_underscores: --allow-underscores.
        secure: the client came over TLS (X-Forwarded-Proto https).
        received: the protocol version it came in (b"2": HTTP/2), for Via.
    """
    rewritten = request_headers(headers, client_ip=client_ip.decode("ascii"), trusted=False,
                                upstream_host=upstream_host,
                                prefix=None if prefix is None else prefix.decode("utf-8"),
                                allow_underscores=allow_underscores, scheme=b"https" if secure else b"http",
                                received=received)
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



def with_fields(head: bytes, extra: Sequence[Header]) -> bytes:
    """A client's response head from response_head() with the gateway's own fields (_rewrite.with_fields).

    The same bytes as the general path's head with those fields: names in
    such a head are lowercase (parse_response_head lowers them), so a field
    of a name is a line that starts with it and a colon.
    """
    added = [name + b": " + value + b"\r\n" for name, value in extra if b"\r\n" + name + b":" not in head]
    return head[:-2] + b"".join(added) + b"\r\n" if added else head
