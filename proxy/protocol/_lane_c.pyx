# cython: language_level=3, boundscheck=False, wraparound=False
# proxy/protocol/_lane.py compiled: the same two functions, giving the same
# results for every input (that module is the specification; tests compare
# both on generated heads). response_head() reads the head in place (the
# offsets of each line in a C array, as picohttpparser and HAProxy's h1.c
# do) and writes the client's head into one bytes object; request_head()
# walks the checked header list once.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

from ._bytes cimport FR_TCHAR, is_control
from . import _lane
from ._rewrite import VIA, _ALWAYS_HOP_BY_HOP, _FORWARDED, _NEVER_BY_CONNECTION

DEF MAX_LINES = 256  # header lines read in place; a longer head goes to the twin (same result)

cdef bytes _VIA = VIA
cdef frozenset _ALWAYS = _ALWAYS_HOP_BY_HOP
cdef frozenset _KEEP = _NEVER_BY_CONNECTION
cdef frozenset _FWD = _FORWARDED


cdef inline unsigned char _lower(unsigned char c):
    return c + 32 if 65 <= c <= 90 else c


cdef bint _named(const unsigned char* p, Py_ssize_t n, const char* lower_name, Py_ssize_t size):
    """The bytes p[:n] spell lower_name, in any case."""
    cdef Py_ssize_t i
    if n != size:
        return False
    for i in range(n):
        if _lower(p[i]) != <unsigned char>lower_name[i]:
            return False
    return True


cdef bytes _lowered(const unsigned char* p, Py_ssize_t n):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = _lower(p[i])
    return out


cdef inline bint _space(unsigned char c):
    return c == 32 or c == 9


cdef void _tokens(const unsigned char* p, Py_ssize_t start, Py_ssize_t end, set into):
    """The Connection tokens of one value (split on ",", trimmed, lowercased, not empty)."""
    cdef Py_ssize_t i = start, a, b
    while i <= end:
        a = i
        while i < end and p[i] != 44:
            i += 1
        b = i
        while a < b and _space(p[a]):
            a += 1
        while b > a and _space(p[b - 1]):
            b -= 1
        if b > a:
            into.add(_lowered(p + a, b - a))
        i += 1


def response_head(bytes head):
    """See proxy.protocol._lane.response_head."""
    cdef const unsigned char* p = head
    cdef Py_ssize_t n = len(head), body, i, k, line, colon, a, b, count = 0
    cdef Py_ssize_t starts[MAX_LINES]
    cdef Py_ssize_t ends[MAX_LINES]
    if n < 4 or p[n - 4] != 13 or p[n - 3] != 10 or p[n - 2] != 13 or p[n - 1] != 10:
        return None
    body = n - 4
    # Lines, and no bare CR or LF.
    line = 0
    i = 0
    while i < body:
        if p[i] == 13:
            if i + 1 >= body or p[i + 1] != 10:
                return None
            if count == MAX_LINES:
                return _lane.response_head(head)
            starts[count] = line
            ends[count] = i
            count += 1
            i += 2
            line = i
            continue
        if p[i] == 10:
            return None
        i += 1
    if count == MAX_LINES:
        return _lane.response_head(head)
    starts[count] = line
    ends[count] = body
    count += 1
    # The status line: HTTP/1.1 SP 3DIGIT [SP reason].
    a = starts[0]
    b = ends[0]
    if b - a < 12 or p[a] != 72 or p[a + 1] != 84 or p[a + 2] != 84 or p[a + 3] != 80 or p[a + 4] != 47:
        return None
    if p[a + 5] != 49 or p[a + 6] != 46 or p[a + 7] != 49 or p[a + 8] != 32:
        return None
    for i in range(a + 9, a + 12):
        if not 48 <= p[i] <= 57:
            return None
    if p[a + 9] == 48:
        return None
    cdef int status = (p[a + 9] - 48) * 100 + (p[a + 10] - 48) * 10 + (p[a + 11] - 48)
    if b > a + 12 and p[a + 12] != 32:
        return None
    for i in range(a + 13, b):
        if is_control(p[i]):
            return None
    if status < 200 or status > 599 or status == 204 or status == 304:
        return None
    # Header lines: token ":" OWS value OWS; the value's bounds are kept.
    cdef Py_ssize_t names[MAX_LINES]
    cdef Py_ssize_t vstart[MAX_LINES]
    cdef Py_ssize_t vend[MAX_LINES]
    cdef Py_ssize_t lengths = 0, length_at = 0
    cdef set tokens = None
    cdef bint close = False
    for k in range(1, count):
        a = starts[k]
        b = ends[k]
        colon = a
        while colon < b and p[colon] != 58:
            colon += 1
        if colon == b or colon == a:
            return None
        for i in range(a, colon):
            if not FR_TCHAR[p[i]]:
                return None
        i = colon + 1
        while i < b and _space(p[i]):
            i += 1
        line = b
        while line > i and _space(p[line - 1]):
            line -= 1
        names[k] = colon - a
        vstart[k] = i
        vend[k] = line
        for i in range(vstart[k], line):
            if is_control(p[i]):
                return None
        if _named(p + a, names[k], "content-length", 14):
            lengths += 1
            length_at = k
        elif _named(p + a, names[k], "transfer-encoding", 17):
            return None
        elif _named(p + a, names[k], "connection", 10):
            if tokens is None:
                tokens = set()
            _tokens(p, vstart[k], vend[k], tokens)
    if lengths != 1:
        return None
    a = vstart[length_at]
    b = vend[length_at]
    if not 1 <= b - a <= 18:
        return None
    cdef long long size = 0
    for i in range(a, b):
        if not 48 <= p[i] <= 57:
            return None
        size = size * 10 + (p[i] - 48)
    if tokens is not None:
        close = b"close" in tokens
        tokens = set(tokens - _KEEP)
    # What the client gets: the status line as read, the kept fields
    # (name lowercased, value trimmed), a blank line.
    cdef bint keep[MAX_LINES]
    cdef Py_ssize_t total = 9 + (ends[0] - starts[0] - 9) + 2 + 2
    if ends[0] - starts[0] == 12:
        total += 1  # "HTTP/1.1 200" is written with the space before its empty reason
    for k in range(1, count):
        a = starts[k]
        keep[k] = not _hop_by_hop(p + a, names[k], tokens)
        if keep[k]:
            total += names[k] + 2 + (vend[k] - vstart[k]) + 2
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    a = starts[0]
    b = ends[0]
    memcpy(o, p + a, b - a)
    i = b - a
    if b - a == 12:
        o[i] = 32
        i += 1
    o[i] = 13
    o[i + 1] = 10
    i += 2
    for k in range(1, count):
        if not keep[k]:
            continue
        a = starts[k]
        for line in range(names[k]):
            o[i + line] = _lower(p[a + line])
        i += names[k]
        o[i] = 58
        o[i + 1] = 32
        i += 2
        memcpy(o + i, p + vstart[k], vend[k] - vstart[k])
        i += vend[k] - vstart[k]
        o[i] = 13
        o[i + 1] = 10
        i += 2
    o[i] = 13
    o[i + 1] = 10
    return status, size, not close, out


cdef bint _hop_by_hop(const unsigned char* p, Py_ssize_t n, set tokens):
    if tokens is None and n != 2 and n != 7 and n != 10 and n != 14 and n != 16 and n != 17:
        return False  # not the length of any name in _ALWAYS (the common case: no bytes object made)
    cdef bytes name = _lowered(p, n)
    return name in _ALWAYS or (tokens is not None and name in tokens)


def request_head(bytes method, bytes target, list headers, *, bytes client_ip, bytes upstream_host, prefix,
                 bint allow_underscores, bint secure=False):
    """See proxy.protocol._lane.request_head."""
    cdef set tokens = None
    cdef bytes name, value
    cdef tuple header
    for header in headers:
        name = header[0]
        if name == b"connection":
            value = header[1]
            if tokens is None:
                tokens = set()
            _tokens(value, 0, len(value), tokens)
    if tokens is not None:
        tokens = set(tokens - _KEEP)
    cdef list out = [method, b" ", target, b" HTTP/1.1\r\n"]
    cdef list via = []
    host = None
    for header in headers:
        name = header[0]
        value = header[1]
        if name in _ALWAYS or (tokens is not None and name in tokens):
            continue
        if 0x5F in name and (not allow_underscores or name.replace(b"_", b"-") in _FWD):
            continue
        if name in _FWD:
            continue
        if name == b"via":
            via.append(value)
            continue
        if name == b"host":
            host = value
        out += [name, b": ", value, b"\r\n"]
    if host is None:
        host = upstream_host
        out += [b"host: ", host, b"\r\n"]
    out += [b"x-forwarded-for: ", client_ip, b"\r\nx-forwarded-proto: https\r\nx-forwarded-host: " if secure
            else b"\r\nx-forwarded-proto: http\r\nx-forwarded-host: ", host, b"\r\n"]
    if prefix is not None:
        out += [b"x-forwarded-prefix: ", prefix, b"\r\n"]
    via.append(_VIA)
    out += [b"via: ", b", ".join(via), b"\r\n\r\n"]
    return b"".join(out)


# --- a plain request (see _lane.plain_request) ------------------------------------

cdef unsigned char PLAIN_PATH[256]  # _lane._PLAIN_PATH's class
cdef unsigned char PLAIN_HOST[256]  # _lane._PLAIN_HOST's reg-name class


cdef void _fill(unsigned char* table, bytes members) noexcept:
    cdef const unsigned char* m = members
    cdef Py_ssize_t i
    for i in range(len(members)):
        table[m[i]] = 1


_fill(PLAIN_PATH, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/")
_fill(PLAIN_HOST, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=")


cdef bint _not_plain_name(const unsigned char* p, Py_ssize_t n) noexcept:
    """A name in _lane._NOT_PLAIN (any case), or one with "_"."""
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] == 95:
            return True
    if n == 2:
        return _named(p, n, "te", 2)
    if n == 3:
        return _named(p, n, "via", 3)
    if n == 6:
        return _named(p, n, "expect", 6)
    if n == 7:
        return _named(p, n, "upgrade", 7) or _named(p, n, "trailer", 7)
    if n == 9:
        return _named(p, n, "forwarded", 9)
    if n == 10:
        return _named(p, n, "keep-alive", 10)
    if n == 14:
        return _named(p, n, "content-length", 14) or _named(p, n, "http2-settings", 14)
    if n == 15:
        return _named(p, n, "x-forwarded-for", 15)
    if n == 16:
        return _named(p, n, "proxy-connection", 16) or _named(p, n, "x-forwarded-host", 16)
    if n == 17:
        return _named(p, n, "transfer-encoding", 17) or _named(p, n, "x-forwarded-proto", 17)
    if n == 18:
        return _named(p, n, "x-forwarded-prefix", 18)
    return False


cdef bint scan_plain(const unsigned char* p, Py_ssize_t n, Py_ssize_t max_target, Py_ssize_t max_headers,
                     Py_ssize_t max_header_bytes, Plain* out) noexcept:
    """_lane.plain_request over p[:n] (a head through CRLF CRLF), its offsets into `out`."""
    if n < 4 or p[n - 4] != 13 or p[n - 3] != 10 or p[n - 2] != 13 or p[n - 1] != 10:
        return False
    cdef Py_ssize_t body = n - 4, i = 0, segment, a, b, e, colon, size = 0, hosts = 0, k
    # The method: a token, not HEAD or CONNECT.
    while i < body and FR_TCHAR[p[i]]:
        i += 1
    if i == 0 or i >= body or p[i] != 32:
        return False
    if (i == 4 and p[0] == 72 and p[1] == 69 and p[2] == 65 and p[3] == 68) or (i == 7 and _same(p, "CONNECT", 7)):
        return False
    out.method_end = i
    # The target: a path of PLAIN_PATH without "//" or a dot segment, then a query without "#".
    i += 1
    out.target_start = i
    if i >= body or p[i] != 47:
        return False
    segment = i + 1
    i += 1
    while True:
        if i < body and PLAIN_PATH[p[i]] and p[i] != 47:
            i += 1
            continue
        # A segment ends at i: not "." or "..", not empty (that is "//") unless it ends the path.
        if i - segment == 1 and p[segment] == 46:
            return False
        if i - segment == 2 and p[segment] == 46 and p[segment + 1] == 46:
            return False
        if i < body and p[i] == 47:
            if i == segment:
                return False  # "//"
            i += 1
            segment = i
            continue
        break
    if i < body and p[i] == 63:  # "?"
        i += 1
        while i < body and 0x21 <= p[i] <= 0x7E and p[i] != 35:
            i += 1
    out.target_end = i
    if i - out.target_start > max_target:
        return False
    # The version, then the line's end.
    if i + 9 > body or p[i] != 32 or not _same(p + i + 1, "HTTP/1.1", 8):
        return False
    i += 9
    if i == body or i + 2 > body or p[i] != 13 or p[i + 1] != 10:
        return False  # no Host (none is plain: HTTP/1.1 requires one), or more on the line
    i += 2
    # The fields: token ":" OWS value OWS, no control byte in the value.
    k = 0
    while i < body:
        e = i
        while e < body and p[e] != 13 and p[e] != 10:
            e += 1
        if e < body and (p[e] != 13 or e + 1 >= body or p[e + 1] != 10):
            return False  # a bare CR or LF
        if k == PLAIN_MAX_FIELDS or k == max_headers:
            return False
        colon = i
        while colon < e and FR_TCHAR[p[colon]]:
            colon += 1
        if colon == i or colon == e or p[colon] != 58:
            return False  # obs-fold (a line starting with SP or HT) too
        if _not_plain_name(p + i, colon - i):
            return False
        a = colon + 1
        while a < e and _space(p[a]):
            a += 1
        b = e
        while b > a and _space(p[b - 1]):
            b -= 1
        for segment in range(a, b):
            if is_control(p[segment]):
                return False
        out.name_start[k] = i
        out.name_end[k] = colon
        out.value_start[k] = a
        out.value_end[k] = b
        out.dropped[k] = False
        if _named(p + i, colon - i, "connection", 10):
            if not _named(p + a, b - a, "keep-alive", 10):
                return False
            out.dropped[k] = True
        elif _named(p + i, colon - i, "host", 4):
            hosts += 1
            if not _plain_host(p + a, b - a):
                return False
            out.host_start = a
            out.host_end = b
        size += e - i + 2
        k += 1
        i = e + 2
    if hosts != 1 or size > max_header_bytes:
        return False
    out.fields = k
    return True


cdef inline bint _same(const unsigned char* p, const char* text, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        if p[i] != <unsigned char>text[i]:
            return False
    return True


cdef bint _plain_host(const unsigned char* p, Py_ssize_t n) noexcept:
    """_lane._PLAIN_HOST: a reg-name of one byte or more, then an optional ":" and digits."""
    cdef Py_ssize_t i = 0
    while i < n and PLAIN_HOST[p[i]]:
        i += 1
    if i == 0:
        return False
    if i == n:
        return True
    if p[i] != 58:
        return False
    i += 1
    while i < n:
        if not 48 <= p[i] <= 57:
            return False
        i += 1
    return True


cdef inline Py_ssize_t _put(unsigned char* o, Py_ssize_t at, const void* data, Py_ssize_t n) noexcept:
    memcpy(o + at, data, n)
    return at + n


cdef bytes write_plain(const unsigned char* p, const Plain* plain, bytes target, bytes client_ip, bytes prefix,
                       bint secure):
    """_lane.plain_upstream_head from the offsets scan_plain found in p."""
    cdef Py_ssize_t k, j, total, at
    cdef Py_ssize_t host = plain.host_end - plain.host_start
    total = plain.method_end + 1 + len(target) + 11
    for k in range(plain.fields):
        if not plain.dropped[k]:
            total += plain.name_end[k] - plain.name_start[k] + 2 + plain.value_end[k] - plain.value_start[k] + 2
    total += 17 + len(client_ip) + 2 + 25 + secure + 18 + host + 2 + 5 + len(_VIA) + 4
    if prefix is not None:
        total += 20 + len(prefix) + 2
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    at = _put(o, 0, p, plain.method_end)
    o[at] = 32
    at = _put(o, at + 1, PyBytes_AS_STRING(target), len(target))
    at = _put(o, at, b" HTTP/1.1\r\n", 11)
    for k in range(plain.fields):
        if plain.dropped[k]:
            continue
        for j in range(plain.name_start[k], plain.name_end[k]):
            o[at] = _lower(p[j])
            at += 1
        o[at] = 58
        o[at + 1] = 32
        at = _put(o, at + 2, p + plain.value_start[k], plain.value_end[k] - plain.value_start[k])
        o[at] = 13
        o[at + 1] = 10
        at += 2
    at = _put(o, at, b"x-forwarded-for: ", 17)
    at = _put(o, at, PyBytes_AS_STRING(client_ip), len(client_ip))
    if secure:
        at = _put(o, at, b"\r\nx-forwarded-proto: https\r\nx-forwarded-host: ", 46)
    else:
        at = _put(o, at, b"\r\nx-forwarded-proto: http\r\nx-forwarded-host: ", 45)
    at = _put(o, at, p + plain.host_start, host)
    o[at] = 13
    o[at + 1] = 10
    at += 2
    if prefix is not None:
        at = _put(o, at, b"x-forwarded-prefix: ", 20)
        at = _put(o, at, PyBytes_AS_STRING(prefix), len(prefix))
        o[at] = 13
        o[at + 1] = 10
        at += 2
    at = _put(o, at, b"via: ", 5)
    at = _put(o, at, PyBytes_AS_STRING(_VIA), len(_VIA))
    at = _put(o, at, b"\r\n\r\n", 4)
    assert at == total
    return out


def plain_request(bytes head, limits):
    """See proxy.protocol._lane.plain_request."""
    cdef Plain plain
    if not scan_plain(head, len(head), limits.max_target, limits.max_headers, limits.max_header_bytes, &plain):
        return None
    return head[plain.target_start:plain.target_end]


def plain_upstream_head(bytes head, bytes target, *, limits, bytes client_ip, prefix, bint secure=False):
    """See proxy.protocol._lane.plain_upstream_head."""
    cdef Plain plain
    if not scan_plain(head, len(head), limits.max_target, limits.max_headers, limits.max_header_bytes, &plain):
        raise ValueError("not a plain request head")
    return write_plain(head, &plain, target, client_ip, prefix, secure)
