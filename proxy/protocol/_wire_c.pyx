# cython: language_level=3, boundscheck=False, wraparound=False
# proxy/_wire.py compiled: the same functions and rules, with the same errors
# (that module is the specification and holds the rules; tests run every
# case, and differential fuzzing against h11, through both). The scans run
# as C loops over the bytes.

from ._bytes cimport FR_HEXVAL, FR_NOT_HEX, FR_TCHAR, is_control
from ._events import END_OF_MESSAGE, RemoteProtocolError
from ._wire import (
    _FRAMING, BODY_CHUNKED, BODY_CLOSE, BODY_LENGTH, BODY_NONE, MAX_CHUNK_LINE, MAX_TRAILERS,
    content_length, encode_chunk, encode_request_head, encode_response_head,
)

cdef object _bad(str message):
    return RemoteProtocolError(message, 502)


def parse_response_head(bytes head):
    """See proxy.protocol._wire.parse_response_head."""
    cdef const unsigned char* p = head
    cdef Py_ssize_t n = len(head) - 4, i, line_start, line_end, colon, a, b
    cdef unsigned char c
    if n < 0 or head[n:] != b"\r\n\r\n":
        raise _bad("a response head must end in CRLF CRLF")
    for i in range(n):
        c = p[i]
        if c == 13:
            if i + 1 >= n or p[i + 1] != 10:
                raise _bad("bare CR or LF in the response head")
        elif c == 10:
            if i == 0 or p[i - 1] != 13:
                raise _bad("bare CR or LF in the response head")
    line_end = head.find(b"\r\n")  # the status line's end (n at the latest)
    if line_end > n:
        line_end = n
    status_line = head[:line_end]
    if (line_end < 12 or head[:5] != b"HTTP/" or p[8] != 32 or p[5] != 49 or p[6] != 46
            or (p[7] != 49 and p[7] != 48)):
        raise _bad(f"malformed status line {status_line[:80]!r}")
    if not (49 <= p[9] <= 57 and 48 <= p[10] <= 57 and 48 <= p[11] <= 57):
        raise _bad(f"malformed status code in {status_line[:80]!r}")
    if line_end > 12 and p[12] != 32:
        raise _bad(f"malformed status line {status_line[:80]!r}")
    cdef int status = (p[9] - 48) * 100 + (p[10] - 48) * 10 + (p[11] - 48)
    for i in range(13, line_end):
        if is_control(p[i]):
            raise _bad("control character in the reason phrase")
    reason = head[13:line_end]
    headers = []
    while line_end < n:  # each header line, up to the end of the head
        line_start = line_end + 2
        line_end = head.find(b"\r\n", line_start)
        if line_end > n or line_end == -1:
            line_end = n
        colon = line_start
        while colon < line_end and FR_TCHAR[p[colon]]:
            colon += 1
        if colon == line_start or colon == line_end or p[colon] != 58:
            raise _bad(f"malformed header line {head[line_start:min(line_end, line_start + 80)]!r}")
        a = colon + 1
        b = line_end
        while a < b and (p[a] == 32 or p[a] == 9):
            a += 1
        while b > a and (p[b - 1] == 32 or p[b - 1] == 9):
            b -= 1
        for i in range(a, b):
            if is_control(p[i]):
                raise _bad("control character in a response header value")
        headers.append((head[line_start:colon].lower(), head[a:b]))
    return head[5:8], status, reason, headers


def response_framing(bytes method, int status, list headers):
    """See proxy.protocol._wire.response_framing."""
    length = content_length(headers)
    codings = None
    cdef int count = 0, lengths = 0
    cdef bint canonical = True
    for name, value in headers:
        if name == b"transfer-encoding":
            count += 1
            codings = value
        elif name == b"content-length":
            lengths += 1
            if lengths > 1 or b"," in value:
                canonical = False
    if count:
        if length is not None:
            raise _bad("both Content-Length and Transfer-Encoding")
        if count > 1 or codings.lower() != b"chunked":
            raise _bad("the only transfer coding supported is chunked, alone")
        canonical = codings == b"chunked"
    if method == b"HEAD" or status == 204 or status == 304:
        return BODY_NONE, 0, canonical
    if count:
        return BODY_CHUNKED, 0, canonical
    if length is not None:
        return BODY_LENGTH, length, canonical
    return BODY_CLOSE, 0, canonical


cdef bint _good_field(const unsigned char* p, Py_ssize_t start, Py_ssize_t end):
    cdef Py_ssize_t i = start
    while i < end and FR_TCHAR[p[i]]:
        i += 1
    if i == start or i == end or p[i] != 58:
        return False
    for i in range(i + 1, end):
        if is_control(p[i]):
            return False
    return True


cdef class ChunkedDecoder:
    """See proxy.protocol._wire.ChunkedDecoder."""

    cdef unsigned long long _left
    cdef bint _crlf
    cdef bint _trailer
    cdef Py_ssize_t _trailer_size

    def next(self, bytearray buffer):
        cdef Py_ssize_t end, size, i
        cdef unsigned long long value
        cdef const unsigned char* p
        cdef unsigned char digit
        cdef int digits
        while True:
            size = len(buffer)
            if self._trailer:
                end = buffer.find(b"\r\n")
                if end == -1:
                    if size + self._trailer_size > MAX_TRAILERS:
                        raise _bad("chunked trailer section too long")
                    return None
                if end == 0:
                    del buffer[:2]
                    return END_OF_MESSAGE
                self._trailer_size += end + 2
                p = buffer
                if not _good_field(p, 0, end) or self._trailer_size > MAX_TRAILERS:
                    raise _bad("malformed chunked trailer")
                if bytes(buffer[:buffer.find(b":")]).lower() in _FRAMING:
                    raise _bad("a framing field in a chunked trailer")
                del buffer[: end + 2]
                continue
            if self._crlf:
                if size < 2:
                    if size and buffer[0] != 13:
                        raise _bad("chunk data not followed by CRLF")
                    return None
                if buffer[0] != 13 or buffer[1] != 10:
                    raise _bad("chunk data not followed by CRLF")
                del buffer[:2]
                size -= 2
                self._crlf = False
            if self._left:
                if not size:
                    return None
                if <unsigned long long>size > self._left:
                    size = <Py_ssize_t>self._left
                data = bytes(buffer[:size])
                del buffer[:size]
                self._left -= size
                if not self._left:
                    self._crlf = True
                return data
            end = buffer.find(b"\r\n", 0, MAX_CHUNK_LINE + 2)
            if end == -1:
                if size > MAX_CHUNK_LINE + 1:
                    raise _bad("chunk-size line too long")
                return None
            p = buffer
            value = 0
            digits = 0
            i = 0
            while i < end:
                digit = FR_HEXVAL[p[i]]
                if digit == FR_NOT_HEX:
                    break
                value = value * 16 + <unsigned long long>digit
                digits += 1
                i += 1
            ok = 1 <= digits <= 16
            if ok and i < end and p[i] == 59:  # ";" extensions
                while i < end and not is_control(p[i]):
                    i += 1
            while ok and i < end and (p[i] == 32 or p[i] == 9):
                i += 1
            if not ok or i != end:
                raise _bad(f"malformed chunk-size line {bytes(buffer[:min(end, 40)])!r}")
            del buffer[: end + 2]
            self._left = value
            if not value:
                self._trailer = True
