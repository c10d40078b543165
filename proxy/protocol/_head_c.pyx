# cython: language_level=3, boundscheck=False, wraparound=False
# The request-head checks of proxy/_head.py, compiled: the same rules, in the
# same order, with the same errors (that module is the specification and its
# docstrings hold the rules; tests run every case and a differential fuzz
# against both). The byte-class scans (bare CR/LF, tokens, field values, the
# target, the path's escapes and segments) run as C loops over the buffer.

from ._bytes cimport FR_HEXVAL, FR_NOT_HEX, FR_TCHAR, FR_UNRESERVED, is_control
from ._head import HEAD_END, RequestHead, _error


cdef extern from "Python.h":
    int PyObject_GenericSetAttr(object obj, object name, object value) except -1


cdef object _new_head(bytes method, bytes target, bytes version, list headers, Py_ssize_t raw_size):
    """RequestHead(...) without the frozen dataclass's __init__, which is interpreted code calling
    object.__setattr__ once per field (1.35 us of check_head's 3.1 per request): the same type, its
    slots set as object.__setattr__ sets them."""
    head = RequestHead.__new__(RequestHead)
    PyObject_GenericSetAttr(head, "method", method)
    PyObject_GenericSetAttr(head, "target", target)
    PyObject_GenericSetAttr(head, "version", version)
    PyObject_GenericSetAttr(head, "headers", headers)
    PyObject_GenericSetAttr(head, "raw_size", raw_size)
    return head

# _head._HOST as a byte class: reg-name (RFC 3986 section 3.2.2), and what an IP-literal holds.
cdef unsigned char REG_NAME[256]
cdef unsigned char IP_LITERAL[256]


cdef void _fill(unsigned char* table, bytes members):
    cdef const unsigned char* p = members
    cdef Py_ssize_t i
    for i in range(len(members)):
        table[p[i]] = 1


_fill(REG_NAME, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=")
_fill(IP_LITERAL, b"0123456789ABCDEFabcdef:.")

cdef bint _is_token(bytes text):
    cdef const unsigned char* p = text
    cdef Py_ssize_t i, n = len(text)
    if n == 0:
        return False
    for i in range(n):
        if not FR_TCHAR[p[i]]:
            return False
    return True


cdef bint _bad_value(bytes value):
    cdef const unsigned char* p = value
    cdef Py_ssize_t i, n = len(value)
    cdef unsigned char c
    for i in range(n):
        c = p[i]
        if is_control(c):
            return True
    return False


def check_head(bytes head, limits):
    """See proxy.protocol._head.check_head."""
    cdef bytes body = head[: len(head) - len(HEAD_END)]
    cdef const unsigned char* p = body
    cdef Py_ssize_t i = 0, n = len(body)
    while i < n:
        if p[i] == 13:
            if i + 1 < n and p[i + 1] == 10:
                i += 2
                continue
            raise _error(400, "bare CR or LF in the request head")
        if p[i] == 10:
            raise _error(400, "bare CR or LF in the request head")
        i += 1
    lines = body.split(b"\r\n")
    request_line = lines[0]
    fields = lines[1:]
    parts = request_line.split(b" ")
    if len(parts) != 3:
        raise _error(400, "malformed request line")
    cdef bytes method = parts[0], target = parts[1], version_text = parts[2]
    cdef const unsigned char* v = version_text
    if not (len(version_text) == 8 and version_text[:5] == b"HTTP/" and 48 <= v[5] <= 57 and v[6] == 46
            and 48 <= v[7] <= 57):
        raise _error(400, "malformed HTTP version")
    if v[5] != 49 or (v[7] != 48 and v[7] != 49):
        raise _error(505, f"{version_text.decode()} is not supported")
    cdef bytes version_number = version_text[5:8]
    if not _is_token(method):
        raise _error(400, "malformed method")
    if len(target) > limits.max_target:
        raise _error(414, f"request target of {len(target)} bytes is over the limit of {limits.max_target}")
    if len(fields) > limits.max_headers:
        raise _error(431, f"{len(fields)} header fields is over the limit of {limits.max_headers}")
    headers = []
    cdef Py_ssize_t size = 0
    cdef bytes line, name, value
    for line in fields:
        if line[:1] == b" " or line[:1] == b"\t":
            raise _error(400, "obs-fold (a header line starting with whitespace)")
        name, colon, value = line.partition(b":")
        if not colon or not _is_token(name):
            raise _error(400, "malformed header field name")
        value = value.strip(b" \t")
        if _bad_value(value):
            raise _error(400, "control character in a header field value")
        size += len(line) + 2
        headers.append((name.lower(), value))
    if size > limits.max_header_bytes:
        raise _error(431, f"header fields of {size} bytes are over the limit of {limits.max_header_bytes}")
    target = _origin_form(method, target, _framing_and_host(headers, version_number))
    return _new_head(method, target, version_number, headers, len(head))


cdef object _framing_and_host(list headers, bytes version):
    """_head._check_framing, then _head._host, in one pass over the fields: the Host value or None."""
    cdef Py_ssize_t lengths = 0, codings = 0, hosts = 0
    cdef bytes name, length = None, coding = None, host = None
    cdef tuple field
    for field in headers:
        name = field[0]
        if name == b"content-length":
            lengths += 1
            if length is None:
                length = field[1]
        elif name == b"transfer-encoding":
            codings += 1
            if coding is None:
                coding = field[1]
        elif name == b"host":
            hosts += 1
            if host is None:
                host = field[1]
    if lengths > 1:
        raise _error(400, "more than one Content-Length")
    if lengths and (not length.isdigit() or len(length) > 18):
        raise _error(400, "malformed Content-Length")
    if codings:
        if version == b"1.0":
            raise _error(400, "Transfer-Encoding in an HTTP/1.0 request")
        if codings > 1:
            raise _error(400, "more than one Transfer-Encoding")
        if lengths:
            raise _error(400, "both Content-Length and Transfer-Encoding")
        if coding.lower() != b"chunked":
            raise _error(501, "the only transfer coding supported is chunked, alone")
    if hosts > 1:
        raise _error(400, "more than one Host header")
    if version == b"1.1" and not hosts:
        raise _error(400, "no Host header")
    if hosts and not _host_ok(host):
        raise _error(400, "malformed Host header")
    return host


cdef bint _host_ok(bytes host):
    """_head._HOST: an IP-literal or a reg-name, then an optional ":" and digits."""
    cdef const unsigned char* p = host
    cdef Py_ssize_t i = 0, n = len(host)
    if n and p[0] == 91:  # [
        i = 1
        while i < n and IP_LITERAL[p[i]]:
            i += 1
        if i == 1 or i == n or p[i] != 93:  # ]
            return False
        i += 1
    else:
        while i < n and REG_NAME[p[i]]:
            i += 1
    if i == n:
        return True
    if p[i] != 58:  # :
        return False
    for i in range(i + 1, n):
        if not 48 <= p[i] <= 57:
            return False
    return True


cdef bytes _origin_form(bytes method, bytes target, host):
    if method == b"CONNECT":
        raise _error(501, "CONNECT is not supported")
    cdef const unsigned char* p = target
    cdef Py_ssize_t i, n = len(target)
    if n == 0:
        raise _error(400, "request target holds bytes outside visible ASCII")
    for i in range(n):
        if p[i] < 0x21 or p[i] > 0x7E:
            raise _error(400, "request target holds bytes outside visible ASCII")
    if target == b"*":
        if method != b"OPTIONS":
            raise _error(400, "the target * is for OPTIONS only")
        return target
    if p[0] != 47:
        scheme, sep, rest = target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            raise _error(400, "the request target must be a path, or an absolute URI naming the Host")
        authority, slash, path = rest.partition(b"/")
        if host is None or authority.lower() != host.lower():
            raise _error(400, "an absolute-form target must name the Host")
        target = b"/" + path if slash else b"/"
    return normalise_path(target)


def normalise_path(bytes target):
    """See proxy.protocol._head.normalise_path."""
    path, question, query = target.partition(b"?")
    if b"#" in target:
        raise _error(400, "a fragment in the request target")
    if b"\\" in path:
        raise _error(400, "a backslash in the path")
    cdef const unsigned char* p = path
    cdef Py_ssize_t i = 0, k = 0, n = len(path)
    out = bytearray(n + 1)
    cdef unsigned char* o = out
    cdef unsigned char c, hi, lo, value
    while i < n:
        c = p[i]
        if c == 37:  # %
            if i + 2 >= n:
                raise _error(400, "a % in the path not followed by two hex digits")
            hi = FR_HEXVAL[p[i + 1]]
            lo = FR_HEXVAL[p[i + 2]]
            if hi == FR_NOT_HEX or lo == FR_NOT_HEX:
                raise _error(400, "a % in the path not followed by two hex digits")
            value = hi * 16 + lo
            if value == 0x2F or value == 0x5C:
                raise _error(400, "an encoded / or \\ in the path")
            if value < 0x20 or value == 0x7F:
                raise _error(400, "an encoded control character in the path")
            if FR_UNRESERVED[value]:
                o[k] = value
                k += 1
            else:
                o[k] = 37
                o[k + 1] = p[i + 1] - 32 if 97 <= p[i + 1] <= 102 else p[i + 1]
                o[k + 2] = p[i + 2] - 32 if 97 <= p[i + 2] <= 102 else p[i + 2]
                k += 3
            i += 3
            continue
        if c == 47 and k > 0 and o[k - 1] == 47:
            i += 1
            continue
        o[k] = c
        k += 1
        i += 1
    # Refuse "." and ".." segments of the normal form.
    cdef Py_ssize_t start = 0, length
    for i in range(k + 1):
        if i == k or o[i] == 47:
            length = i - start
            if (length == 1 and o[start] == 46) or (length == 2 and o[start] == 46 and o[start + 1] == 46):
                raise _error(400, "a . or .. segment in the path")
            start = i + 1
    return bytes(out[:k]) + question + query
