# cython: language_level=3, boundscheck=False, wraparound=False
# A plain request head (proxy/protocol/_lane.py's plain_request and
# plain_upstream_head, compiled): read once into offsets (Plain, declared in
# _plain_c.pxd) and its upstream head written from them. The engine's cycle
# (_cycle_c.pyx) cimports scan_plain and write_plain, with no Python call;
# _lane_c.pyx re-exports the two functions the twin has.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

from ._bytes cimport FR_TCHAR, is_control, lower as _lower, named as _named, space as _space
from ._rewrite import VIA

cdef bytes _VIA = VIA


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
                       bint secure, bytes via=_VIA):
    """_lane.plain_upstream_head from the offsets scan_plain found in p (`via`: Via's value, for a
    client that spoke HTTP/2 b"2 fastroute")."""
    cdef Py_ssize_t k, j, total, at
    cdef Py_ssize_t host = plain.host_end - plain.host_start
    total = plain.method_end + 1 + len(target) + 11
    for k in range(plain.fields):
        if not plain.dropped[k]:
            total += plain.name_end[k] - plain.name_start[k] + 2 + plain.value_end[k] - plain.value_start[k] + 2
    total += 17 + len(client_ip) + 2 + 25 + secure + 18 + host + 2 + 5 + len(via) + 4
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
    at = _put(o, at, PyBytes_AS_STRING(via), len(via))
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
