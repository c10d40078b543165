# Pure: an HTTP/2 request's header list as the checked HTTP/1.1 head every
# backend gets, and a backend's response fields as HTTP/2 may carry them
# (RFC 9113 section 8). Whichever HTTP/2 stack decoded the list (h2 on the
# trio path, libnghttp2 in the engine) and whatever it checked itself, the
# list passes here before anything is routed or forwarded.
#
# Rules:
# - malformed (section 8.1.1, 8.2, 8.3): a field name that is not a
#   lowercase token, a value with NUL, CR or LF or with whitespace at
#   either end, a pseudo-header after a regular field, unknown or twice,
#   a request without :method, :scheme or :path, a connection-specific
#   field (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding,
#   Upgrade; TE other than "trailers"), a Host that differs from
#   :authority, neither :authority nor Host: H2Malformed, the stream reset
#   with PROTOCOL_ERROR and nothing forwarded;
# - the rest is HTTP/1.1's: the head is written as HTTP/1.1 (:authority as
#   Host, first; Cookie fields joined with "; ", section 8.2.3; TE dropped)
#   and checked by check_head, with its limits and answers (400, 414, 431,
#   501 for CONNECT), so both protocols meet the same rules once; how the
#   body is framed to the backend (Content-Length, or chunked when the
#   client sent DATA without one) is the stream's, not this head's;
# - a response keeps no connection-specific field (section 8.2.2).
# And what starts an HTTP/2 connection on a plain listener: its preface
# (section 3.4), which tells it apart from an HTTP/1.1 request line.

from __future__ import annotations

import re
from collections.abc import Sequence

from .._config import Limits
from .._errors import ClientProtocolError
from ._compiled import check_head
from ._head import RequestHead

__all__ = ["CONNECTION_SPECIFIC", "H2_ALPN", "H2Malformed", "PREFACE", "preface", "request_head", "response_fields"]

H2_ALPN = "h2"  # the ALPN protocol of HTTP/2 over TLS (section 3.2)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # what a client with prior knowledge sends first (section 3.4)

CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"))
REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path"))
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")  # a token, lowercase (section 8.2.1)
_FORBIDDEN = re.compile(rb"[\x00\r\n]")


def preface(buffer: bytes | bytearray) -> bool | None:
    """Whether `buffer`, a connection's first bytes, starts with the HTTP/2 preface; None while it
    is a part of it (more may come)."""
    if buffer[: len(PREFACE)] == PREFACE:
        return True
    return None if PREFACE.startswith(buffer) else False


class H2Malformed(ClientProtocolError):
    """A malformed HTTP/2 request (RFC 9113 section 8.1.1): its stream is reset with PROTOCOL_ERROR."""


def _malformed(detail: str) -> H2Malformed:
    return H2Malformed(detail, status=400)


def request_head(fields: Sequence[tuple[bytes, bytes]], limits: Limits) -> RequestHead:
    """The checked HTTP/1.1 head of the HTTP/2 request whose header list is `fields`.

    Raises:
        H2Malformed: the request is malformed (the stream is reset).
        ClientProtocolError: HTTP/1.1's rules refuse it, with the status the client gets.
    """
    pseudo: dict[bytes, bytes] = {}
    regular: list[tuple[bytes, bytes]] = []
    hosts: list[bytes] = []
    cookies: list[bytes] = []
    cookie_at = -1
    after_pseudo = False  # a regular field came
    for name, value in fields:
        if _FORBIDDEN.search(name) or _FORBIDDEN.search(value):
            raise _malformed("NUL, CR or LF in a header field")
        if name.startswith(b":"):
            if after_pseudo:
                raise _malformed("a pseudo-header field after a regular one")
            if name not in REQUEST_PSEUDO:
                raise _malformed(f"unknown pseudo-header field {name.decode('latin-1')}")
            if name in pseudo:
                raise _malformed(f"{name.decode()} twice")
            pseudo[name] = value
            continue
        after_pseudo = True
        if not _NAME.match(name):
            raise _malformed("a header field name that is not a lowercase token")
        if value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
            raise _malformed("whitespace at an end of a header field value")
        if name in CONNECTION_SPECIFIC:
            raise _malformed(f"connection-specific field {name.decode()}")
        if name == b"te":
            if value != b"trailers":
                raise _malformed("TE other than trailers")
            continue  # hop-by-hop: not forwarded
        if name == b"host":
            hosts.append(value)
            continue
        if name == b"cookie":
            if cookie_at < 0:
                cookie_at = len(regular)
            cookies.append(value)
            continue
        regular.append((name, value))
    if cookies:  # one field, where the first was (section 8.2.3)
        regular.insert(cookie_at, (b"cookie", b"; ".join(cookies)))
    return check_head(_http11(pseudo, hosts, regular), limits)


def _http11(pseudo: dict[bytes, bytes], hosts: list[bytes], regular: list[tuple[bytes, bytes]]) -> bytes:
    """The request as an HTTP/1.1 head: Host first (:authority's, or the Host fields' for check_head
    to judge), then the other fields in their order."""
    method = pseudo.get(b":method")
    if method == b"CONNECT":
        raise ClientProtocolError("CONNECT is not supported", status=501)
    path = pseudo.get(b":path")
    if method is None or path is None or pseudo.get(b":scheme") is None:
        raise _malformed("a request without :method, :scheme or :path")
    if not path.startswith(b"/") and path != b"*":
        raise _malformed(":path neither origin-form nor *")
    authority = pseudo.get(b":authority")
    if authority is not None:
        if any(host != authority for host in hosts):
            raise _malformed("Host differs from :authority")
        hosts = [authority]
    elif not hosts:
        raise _malformed("neither :authority nor Host")
    lines = [method + b" " + path + b" HTTP/1.1"]
    lines += [b"host: " + host for host in hosts]
    lines += [name + b": " + value for name, value in regular]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def response_fields(status: int, headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An HTTP/1.1 response's status and fields as an HTTP/2 header list: no connection-specific field."""
    fields = [(b":status", b"%d" % status)]
    for name, value in headers:
        name = name.lower()
        if name not in CONNECTION_SPECIFIC and name != b"te":
            fields.append((name, value))
    return fields
