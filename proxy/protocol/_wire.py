# Pure: HTTP/1.1 wire format for the fast connection (_fastconn.py), the
# readable specification of proxy/_wire_c.pyx (same functions, compiled).
# Request heads are parsed and checked by _head.py; this module has the rest:
# response heads, body framing, chunked bodies, and writing heads.
#
# Response heads come from backends. Whatever is accepted here is read the
# same way by h11 (tests/proxy/protocol/test_wire_diff.py checks it); where this
# parser is stricter than h11 it says so, and a refusal is a 502:
# - lines end in CRLF; a bare CR or LF anywhere is refused (h11 takes LF);
# - obs-fold is refused (h11 unfolds it);
# - no control byte but HTAB in the reason or a value (h11 lets some through);
# - the version is HTTP/1.0 or HTTP/1.1 (h11 takes any HTTP/d.d);
# - Content-Length is 1-18 digits (h11: any number of digits); repeated
#   identical values are one value (RFC 9112 section 6.3, as h11);
# - Content-Length and Transfer-Encoding together are refused (h11 lets
#   Transfer-Encoding win);
# - a chunk size is 1-16 hex digits (h11: 20), a chunk line (size,
#   extensions) at most MAX_CHUNK_LINE bytes with no control byte but HTAB,
#   and trailer fields are well-formed header lines; trailers are dropped,
#   and one that is Content-Length or Transfer-Encoding is refused (RFC 9110
#   section 6.5.1; h11 refuses only a malformed one).

from __future__ import annotations

import re

from ._events import END_OF_MESSAGE, EndOfMessage, Headers, RemoteProtocolError

__all__ = [
    "BODY_CHUNKED",
    "BODY_CLOSE",
    "BODY_LENGTH",
    "BODY_NONE",
    "MAX_CHUNK_LINE",
    "ChunkedDecoder",
    "canonical_framing",
    "content_length",
    "encode_chunk",
    "encode_request_head",
    "encode_response_head",
    "parse_response_head",
    "response_framing",
]

# How a message's body ends (RFC 9112 section 6.3).
BODY_NONE = 0  # no body at all
BODY_LENGTH = 1  # Content-Length bytes
BODY_CHUNKED = 2  # chunked transfer coding
BODY_CLOSE = 3  # until the connection closes (responses only)

MAX_CHUNK_LINE = 4096  # bytes of a chunk-size line, extensions included
MAX_TRAILERS = 16 * 1024  # bytes of a chunked body's trailer section
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_FRAMING = (b"content-length", b"transfer-encoding")
_DIGITS = re.compile(rb"[0-9]{1,18}\Z")
# h11's form: no whitespace before ";" (RFC 9112 allows it; h11 refuses it).
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(;[^\x00-\x08\x0a-\x1f\x7f]*)?[ \t]*\Z")


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, 502)


def parse_response_head(head: bytes) -> tuple[bytes, int, bytes, Headers]:
    """A complete response head (ending in CRLF CRLF) -> (version, status, reason, headers).

    Header names come back lowercased, values trimmed of spaces and tabs.

    Raises:
        RemoteProtocolError: the head is malformed (status_hint 502).
    """
    body = head[:-4]
    if head[-4:] != b"\r\n\r\n":
        raise _bad("a response head must end in CRLF CRLF")
    if b"\r" in body.replace(b"\r\n", b"") or b"\n" in body.replace(b"\r\n", b""):
        raise _bad("bare CR or LF in the response head")
    lines = body.split(b"\r\n")
    status_line = lines[0]
    if status_line[:5] != b"HTTP/" or status_line[8:9] != b" " or status_line[5:8] not in (b"1.1", b"1.0"):
        raise _bad(f"malformed status line {status_line[:80]!r}")
    code = status_line[9:12]
    if len(code) != 3 or not code.isdigit() or code[0] == 0x30:
        raise _bad(f"malformed status code in {status_line[:80]!r}")
    rest = status_line[12:]
    if rest and rest[:1] != b" ":
        raise _bad(f"malformed status line {status_line[:80]!r}")
    reason = rest[1:]
    if _CONTROL.search(reason):
        raise _bad("control character in the reason phrase")
    headers: Headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise _bad(f"malformed header line {line[:80]!r}")
        value = value.strip(b" \t")
        if _CONTROL.search(value):
            raise _bad("control character in a response header value")
        headers.append((name.lower(), value))
    return status_line[5:8], int(code), reason, headers


def content_length(headers: Headers) -> int | None:
    """The Content-Length of `headers`, or None if there is none.

    Raises:
        RemoteProtocolError: malformed, or two that differ.
    """
    found: bytes | None = None
    for name, value in headers:
        if name == b"content-length":
            for item in value.split(b","):
                item = item.strip(b" \t")
                if not _DIGITS.match(item):
                    raise _bad(f"malformed Content-Length {value[:40]!r}")
                if found is not None and item != found:
                    raise _bad("conflicting Content-Length values")
                found = item
    return None if found is None else int(found)


def response_framing(method: bytes, status: int, headers: Headers) -> tuple[int, int, bool]:
    """How the body of a final response ends: (BODY_*, length for BODY_LENGTH, canonical).

    RFC 9112 section 6.3: no body after HEAD, 204 or 304; else chunked,
    Content-Length, or until the connection closes. `canonical` is False
    when the framing headers need canonical_framing() before they are
    passed on (a repeated Content-Length, a list of identical lengths, a
    coding not spelled "chunked"); a length with leading zeros stays as it
    is, as h11 leaves it.

    Raises:
        RemoteProtocolError: the framing headers are malformed or both present.
    """
    length = content_length(headers)
    codings = [value for name, value in headers if name == b"transfer-encoding"]
    if codings:
        if length is not None:
            raise _bad("both Content-Length and Transfer-Encoding")
        if len(codings) > 1 or codings[0].lower() != b"chunked":
            raise _bad("the only transfer coding supported is chunked, alone")
    lengths = [value for name, value in headers if name == b"content-length"]
    canonical = codings in ([], [b"chunked"]) and len(lengths) <= 1 and not any(b"," in value for value in lengths)
    if method == b"HEAD" or status in (204, 304):
        return BODY_NONE, 0, canonical
    if codings:
        return BODY_CHUNKED, 0, canonical
    if length is not None:
        return BODY_LENGTH, length, canonical
    return BODY_CLOSE, 0, canonical


def canonical_framing(headers: Headers) -> Headers:
    """`headers` with one Content-Length, a single value, and "chunked" in lowercase (as h11 passes them on).

    Only for headers response_framing() accepted (so every length given is the same).
    """
    out: Headers = []
    for name, value in headers:
        if name == b"content-length":
            if any(n == b"content-length" for n, _ in out):
                continue
            value = value.split(b",")[0].strip(b" \t")
        elif name == b"transfer-encoding":
            value = b"chunked"
        out.append((name, value))
    return out


class ChunkedDecoder:
    """A chunked body, taken off the front of a buffer piece by piece (RFC 9112 section 7.1)."""

    __slots__ = ("_left", "_crlf", "_trailer", "_trailer_size")

    def __init__(self) -> None:
        self._left = 0  # bytes left in the current chunk
        self._crlf = False  # the CRLF after a chunk's data is next
        self._trailer = False  # the last chunk was read: trailer lines until a blank one
        self._trailer_size = 0

    def next(self, buffer: bytearray) -> bytes | EndOfMessage | None:
        """The next piece of body data from `buffer` (consumed), END_OF_MESSAGE, or None for more bytes.

        Raises:
            RemoteProtocolError: the chunked framing is malformed.
        """
        while True:
            if self._trailer:
                end = buffer.find(b"\r\n")
                if end == -1:
                    if len(buffer) + self._trailer_size > MAX_TRAILERS:
                        raise _bad("chunked trailer section too long")
                    return None
                line = bytes(buffer[:end])
                del buffer[: end + 2]
                if not line:
                    return END_OF_MESSAGE
                self._trailer_size += end + 2
                name, colon, value = line.partition(b":")
                if (not colon or not _TOKEN.match(name) or _CONTROL.search(value.strip(b" \t"))
                        or self._trailer_size > MAX_TRAILERS):
                    raise _bad("malformed chunked trailer")
                if name.lower() in _FRAMING:
                    raise _bad("a framing field in a chunked trailer")
                continue
            if self._crlf:
                if len(buffer) < 2:
                    if buffer and buffer[0] != 0x0D:
                        raise _bad("chunk data not followed by CRLF")
                    return None
                if buffer[:2] != b"\r\n":
                    raise _bad("chunk data not followed by CRLF")
                del buffer[:2]
                self._crlf = False
            if self._left:
                if not buffer:
                    return None
                data = bytes(buffer[: self._left])
                del buffer[: len(data)]
                self._left -= len(data)
                if not self._left:
                    self._crlf = True
                return data
            end = buffer.find(b"\r\n", 0, MAX_CHUNK_LINE + 2)
            if end == -1:
                if len(buffer) > MAX_CHUNK_LINE + 1:
                    raise _bad("chunk-size line too long")
                return None
            match = _CHUNK_LINE.match(bytes(buffer[:end]))
            if match is None:
                raise _bad(f"malformed chunk-size line {bytes(buffer[:min(end, 40)])!r}")
            del buffer[: end + 2]
            self._left = int(match.group(1), 16)
            if not self._left:
                self._trailer = True


def encode_request_head(method: bytes, target: bytes, headers: Headers) -> bytes:
    """An HTTP/1.1 request head, the headers as given."""
    return b"".join([method, b" ", target, b" HTTP/1.1\r\n", *[name + b": " + value + b"\r\n" for name, value in headers], b"\r\n"])


def encode_response_head(status: int, reason: bytes, headers: Headers) -> bytes:
    """An HTTP/1.1 response head, the headers as given."""
    return b"".join([b"HTTP/1.1 %d %s\r\n" % (status, reason), *[name + b": " + value + b"\r\n" for name, value in headers], b"\r\n"])


def encode_chunk(data: bytes) -> bytes:
    """`data` as one chunk (never empty: an empty chunk would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)
