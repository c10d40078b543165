# Pure: the request head, checked before any parser acts on it.
#
# h11 leaves gaps a proxy cannot (checked on h11 0.16: it keeps Content-Length
# beside Transfer-Encoding, enforces its size limit only while waiting for
# more data, has no field-count limit, accepts obs-fold, bare LF, control
# bytes and any target). Every request head passes through `find_head` and
# `check_head` first; only the head they return reaches h11 and a backend.
# Both see the whole head (or the whole buffer so far), so the answer is the
# same however the bytes were split across reads.
#
# Rules (RFC 9112 unless said otherwise); every rejection closes the
# connection, since the framing of what follows is in doubt:
# - size: the request line may be at most max_target + 64 bytes before its
#   CRLF (414); the whole head at most max_target + max_header_bytes + 64
#   (431), checked on the buffer while the head is incomplete too;
# - first bytes: a TLS ClientHello is dropped without a word; the HTTP/2
#   preface and any HTTP/x.y other than 1.0 and 1.1 get 505; a request line
#   without a version (HTTP/0.9) or malformed gets 400;
# - lines end in CRLF: a bare LF or bare CR anywhere is 400; a bare LF as
#   soon as it arrives (the blank line such a head ends with is not CRLF
#   CRLF, so it would otherwise wait for the head timeout); obs-fold (a
#   line starting with SP or HTAB) is 400 (RFC 9112 section 5.2);
# - a field name is a token, with no whitespace before the colon (section
#   5.1); a value holds no control byte but HTAB (section 5.5);
# - more than max_headers fields: 431;
# - framing (section 6.3): Content-Length is 1-18 digits and appears once;
#   Transfer-Encoding appears once and is exactly "chunked" (other codings:
#   501); never both; never Transfer-Encoding on HTTP/1.0;
# - Host: exactly one on HTTP/1.1, at most one on HTTP/1.0 (section 3.2);
# - targets: origin-form; "*" for OPTIONS only; absolute-form only when its
#   authority is the Host; CONNECT is refused (501);
# - the path is normalised once and the normal form is both routed and
#   forwarded (`normalise_path`).

from __future__ import annotations

import re
from dataclasses import dataclass

from .._config import Limits
from .._errors import ClientProtocolError
from ._errors import Refused

__all__ = ["HEAD_END", "RequestHead", "bare_lf", "body_length", "check_head", "find_head", "has_body", "head_begun", "host_of",
           "normalise_path",
           "Refused"]

HEAD_END = b"\r\n\r\n"
LINE_SLACK = 64  # bytes of request line besides the target: method, spaces, version
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)\Z")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TARGET_BYTES = re.compile(rb"[\x21-\x7e]+\Z")  # visible ASCII, no space
_HEX = b"0123456789ABCDEFabcdef"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HOST = re.compile(rb"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(:\d*)?\Z")


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A checked request head, with its target normalised."""

    method: bytes
    target: bytes  # origin-form, path normalised; b"*" for OPTIONS *
    version: bytes  # b"1.0" or b"1.1"
    headers: list[tuple[bytes, bytes]]  # names lowercased, values trimmed
    raw_size: int

    def encode(self) -> bytes:
        """The head as sent on to the parser and the backend side."""
        lines = [b"%s %s HTTP/%s" % (self.method, self.target, self.version)]
        lines += [name + b": " + value for name, value in self.headers]
        return b"\r\n".join(lines) + HEAD_END


def body_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The Content-Length of a checked head (one value, validated by check_head), or None."""
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    return None


def host_of(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The Host of a checked request head as sent (check_head allows one at most), or None."""
    for name, value in headers:
        if name == b"host":
            return value
    return None


def has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a checked request head announces a body (chunked, or a Content-Length over 0)."""
    for name, value in headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value != b"0":
            return True
    return False


def _error(status: int, detail: str) -> ClientProtocolError:
    return ClientProtocolError(detail, status=status)


def head_begun(buffer: bytes | bytearray) -> bool:
    """Whether `buffer` (empty lines before it already dropped) holds the start of a request head.

    A lone CR is the first half of an empty line, which RFC 9112 section 2.2
    says to ignore before a request: it starts no head (nor its timeout).
    """
    return bool(buffer) and buffer != b"\r"


def find_head(buffer: bytes | bytearray, limits: Limits) -> int | None:
    """Where the head in `buffer` ends (the index after its blank line), or None.

    Raises:
        ClientProtocolError: the head is already over a limit (414, 431) or is
            not HTTP/1.x (400, 505).
        Refused: the bytes are a TLS ClientHello.
    """
    if buffer[:1] == b"\x16":
        raise Refused("a TLS handshake on the plain HTTP port")
    if buffer.startswith(b"PRI * HTTP/2.0"):
        raise _error(505, "HTTP/2 is not supported on this port")
    end = buffer.find(HEAD_END)
    first_line = buffer.find(b"\n")
    line_limit = limits.max_target + LINE_SLACK
    if (first_line == -1 and len(buffer) > line_limit) or first_line > line_limit:
        raise _error(414, f"request line over {line_limit} bytes")
    # A head without a version ends at its first line (HTTP/0.9): say so now
    # instead of waiting for a blank line that will never come. Checked
    # before the head's size, so that the answer does not depend on how
    # much arrived at once: whenever the size check can fire, the first line
    # is complete (else the 414 above fired), so this one could fire too.
    if first_line != -1 and buffer.count(b" ", 0, first_line) < 2:
        raise _error(400, "request line without an HTTP version (HTTP/0.9 is not supported)")
    head_limit = limits.max_target + limits.max_header_bytes + LINE_SLACK
    # A head with bare LF line ends never shows the CRLF CRLF this waits
    # for: say so now, not at the head timeout. Checked on the bytes within
    # the size limit, before the size: like the check above, it then gives
    # the same answer however the bytes arrive (a bare LF within the first
    # line's limit ends that line, so the 414 cannot fire). A complete head
    # within the limit is left to check_head, which refuses it too.
    if (end == -1 or end + 4 > head_limit) and bare_lf(buffer[:head_limit]):
        raise _error(400, "bare LF in the request head")
    if (end == -1 and len(buffer) > head_limit) or end + 4 > head_limit:
        raise _error(431, f"request head over {head_limit} bytes")
    return None if end == -1 else end + 4


def bare_lf(data: bytes | bytearray) -> bool:
    """Whether `data` holds an LF without a CR before it."""
    return data.count(b"\n") != data.count(b"\r\n")


def check_head(head: bytes, limits: Limits) -> RequestHead:
    """Check a complete request head (it ends in CRLF CRLF) and normalise its target.

    Raises:
        ClientProtocolError: with the status the client gets.
    """
    body = head[: -len(HEAD_END)]
    if b"\r" in body.replace(b"\r\n", b"") or b"\n" in body.replace(b"\r\n", b""):
        raise _error(400, "bare CR or LF in the request head")
    lines = body.split(b"\r\n")
    request_line, fields = lines[0], lines[1:]
    parts = request_line.split(b" ")
    if len(parts) != 3:
        raise _error(400, "malformed request line")
    method, target, version_text = parts
    version = _VERSION.match(version_text)
    if version is None:
        raise _error(400, "malformed HTTP version")
    if version.group(1) != b"1" or version.group(2) not in (b"0", b"1"):
        raise _error(505, f"{version_text.decode()} is not supported")
    version_number = version.group(1) + b"." + version.group(2)
    if not _TOKEN.match(method):
        raise _error(400, "malformed method")
    if len(target) > limits.max_target:
        raise _error(414, f"request target of {len(target)} bytes is over the limit of {limits.max_target}")
    if len(fields) > limits.max_headers:
        raise _error(431, f"{len(fields)} header fields is over the limit of {limits.max_headers}")
    headers: list[tuple[bytes, bytes]] = []
    size = 0
    for line in fields:
        if line[:1] in (b" ", b"\t"):
            raise _error(400, "obs-fold (a header line starting with whitespace)")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise _error(400, "malformed header field name")
        value = value.strip(b" \t")
        if _BAD_VALUE.search(value):
            raise _error(400, "control character in a header field value")
        size += len(line) + 2
        headers.append((name.lower(), value))
    if size > limits.max_header_bytes:
        raise _error(431, f"header fields of {size} bytes are over the limit of {limits.max_header_bytes}")
    _check_framing(headers, version_number)
    target = _origin_form(method, target, _host(headers, version_number))
    return RequestHead(method, target, version_number, headers, len(head))


def _host(headers: list[tuple[bytes, bytes]], version: bytes) -> bytes | None:
    """The Host header's value, checked (RFC 9112 section 3.2: one, and required in HTTP/1.1)."""
    hosts = [value for name, value in headers if name == b"host"]
    if len(hosts) > 1:
        raise _error(400, "more than one Host header")
    if version == b"1.1" and not hosts:
        raise _error(400, "no Host header")
    if hosts and not _HOST.match(hosts[0]):
        raise _error(400, "malformed Host header")
    return hosts[0] if hosts else None


def _check_framing(headers: list[tuple[bytes, bytes]], version: bytes) -> None:
    lengths = [value for name, value in headers if name == b"content-length"]
    codings = [value for name, value in headers if name == b"transfer-encoding"]
    if len(lengths) > 1:
        raise _error(400, "more than one Content-Length")
    if lengths and (not lengths[0].isdigit() or len(lengths[0]) > 18):
        raise _error(400, "malformed Content-Length")
    if codings:
        if version == b"1.0":
            raise _error(400, "Transfer-Encoding in an HTTP/1.0 request")
        if len(codings) > 1:
            raise _error(400, "more than one Transfer-Encoding")
        if lengths:
            raise _error(400, "both Content-Length and Transfer-Encoding")
        if codings[0].lower() != b"chunked":
            raise _error(501, "the only transfer coding supported is chunked, alone")


def _origin_form(method: bytes, target: bytes, host: bytes | None) -> bytes:
    if method == b"CONNECT":
        raise _error(501, "CONNECT is not supported")
    if not _TARGET_BYTES.match(target):
        raise _error(400, "request target holds bytes outside visible ASCII")
    if target == b"*":
        if method != b"OPTIONS":
            raise _error(400, "the target * is for OPTIONS only")
        return target
    if target[:1] != b"/":
        scheme, sep, rest = target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            raise _error(400, "the request target must be a path, or an absolute URI naming the Host")
        authority, slash, path = rest.partition(b"/")
        if host is None or authority.lower() != host.lower():
            raise _error(400, "an absolute-form target must name the Host")
        target = b"/" + path if slash else b"/"
    return normalise_path(target)


def normalise_path(target: bytes) -> bytes:
    """The one form of a target's path that is both routed and forwarded.

    - %XX of an unreserved character is decoded (RFC 3986 section 6.2.2.2),
      any other %xx gets uppercase hex (section 6.2.2.1), so an encoded path
      routes exactly as its plain form;
    - runs of "/" are collapsed;
    - the query (from the first "?") is kept as it is.

    Raises (400): a "." or ".." segment, plain or encoded (rejected rather
    than resolved, so no path names a prefix it does not start with); an
    encoded "/" or "\\" (%2F, %5C), an encoded control byte (%00-%1F, %7F),
    a raw "\\", "#", or a "%" not followed by two hex digits.
    """
    path, question, query = target.partition(b"?")
    if b"#" in target:
        raise _error(400, "a fragment in the request target")
    if b"\\" in path:
        raise _error(400, "a backslash in the path")
    out = bytearray()
    i = 0
    n = len(path)
    while i < n:
        byte = path[i]
        if byte == 0x25:  # %
            pair = path[i + 1 : i + 3]
            if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
                raise _error(400, "a % in the path not followed by two hex digits")
            value = int(pair, 16)
            if value == 0x2F or value == 0x5C:
                raise _error(400, "an encoded / or \\ in the path")
            if value < 0x20 or value == 0x7F:
                raise _error(400, "an encoded control character in the path")
            if value in _UNRESERVED:
                out.append(value)
            else:
                out += b"%" + pair.upper()
            i += 3
            continue
        if byte == 0x2F and out[-1:] == b"/":
            i += 1
            continue
        out.append(byte)
        i += 1
    for segment in bytes(out).split(b"/"):
        if segment in (b".", b".."):
            raise _error(400, "a . or .. segment in the path")
    return bytes(out) + question + query
