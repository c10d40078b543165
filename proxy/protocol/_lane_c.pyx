# cython: language_level=3, boundscheck=False, wraparound=False
# proxy/protocol/_lane.py compiled: the same functions, giving the same
# results for every input (that module is the specification; tests compare
# both on generated heads). response_head() reads the head in place (the
# offsets of each line in a C array, as picohttpparser and HAProxy's h1.c
# do) and writes the client's head into one bytes object; request_head()
# walks the checked header list once. A plain request's scan and write are
# _plain_c.pyx's (the engine's cycle cimports them), re-exported here.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t
from libc.string cimport memcpy

from ._bytes cimport FR_TCHAR, is_control, lower as _lower, named as _named, space as _space
from . import _lane
from ._rewrite import VIA, _ALWAYS_HOP_BY_HOP, _FORWARDED, _NEVER_BY_CONNECTION

DEF MAX_LINES = 256  # header lines read in place; a longer head goes to the twin (same result)

cdef bytes _VIA = VIA
cdef frozenset _ALWAYS = _ALWAYS_HOP_BY_HOP
cdef frozenset _KEEP = _NEVER_BY_CONNECTION
cdef frozenset _FWD = _FORWARDED


cdef bytes _lowered(const unsigned char* p, Py_ssize_t n):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t i
    for i in range(n):
        o[i] = _lower(p[i])
    return out


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


# A response head read in place by _scan: each line's bounds, each field's name length and trimmed
# value, and whether the client gets it.
cdef struct Lines:
    Py_ssize_t count  # lines, the status line included
    int status
    long long size  # Content-Length
    bint close  # Connection: close
    Py_ssize_t starts[MAX_LINES]
    Py_ssize_t ends[MAX_LINES]
    Py_ssize_t names[MAX_LINES]
    Py_ssize_t vstart[MAX_LINES]
    Py_ssize_t vend[MAX_LINES]
    bint keep[MAX_LINES]


cdef enum:
    LANE = 1  # of the lane's kind: `lines` says it all
    OTHER = 0  # not of the lane's kind
    LONG = -1  # more lines than MAX_LINES: the twin reads it


cdef int _scan(const unsigned char* p, Py_ssize_t n, Lines* h) except -2:
    """Whether the head is of the lane's kind (LANE, OTHER or LONG), read into `h` (see
    proxy.protocol._lane.response_head for the rules)."""
    cdef Py_ssize_t body, i, k, line, colon, a, b, count = 0
    cdef Py_ssize_t* starts = h.starts
    cdef Py_ssize_t* ends = h.ends
    if n < 4 or p[n - 4] != 13 or p[n - 3] != 10 or p[n - 2] != 13 or p[n - 1] != 10:
        return OTHER
    body = n - 4
    # Lines, and no bare CR or LF.
    line = 0
    i = 0
    while i < body:
        if p[i] == 13:
            if i + 1 >= body or p[i + 1] != 10:
                return OTHER
            if count == MAX_LINES:
                return LONG
            starts[count] = line
            ends[count] = i
            count += 1
            i += 2
            line = i
            continue
        if p[i] == 10:
            return OTHER
        i += 1
    if count == MAX_LINES:
        return LONG
    starts[count] = line
    ends[count] = body
    count += 1
    h.count = count
    # The status line: HTTP/1.1 SP 3DIGIT [SP reason].
    a = starts[0]
    b = ends[0]
    if b - a < 12 or p[a] != 72 or p[a + 1] != 84 or p[a + 2] != 84 or p[a + 3] != 80 or p[a + 4] != 47:
        return OTHER
    if p[a + 5] != 49 or p[a + 6] != 46 or p[a + 7] != 49 or p[a + 8] != 32:
        return OTHER
    for i in range(a + 9, a + 12):
        if not 48 <= p[i] <= 57:
            return OTHER
    if p[a + 9] == 48:
        return OTHER
    cdef int status = (p[a + 9] - 48) * 100 + (p[a + 10] - 48) * 10 + (p[a + 11] - 48)
    if b > a + 12 and p[a + 12] != 32:
        return OTHER
    for i in range(a + 13, b):
        if is_control(p[i]):
            return OTHER
    if status < 200 or status > 599 or status == 204 or status == 304:
        return OTHER
    h.status = status
    # Header lines: token ":" OWS value OWS; the value's bounds are kept.
    cdef Py_ssize_t* names = h.names
    cdef Py_ssize_t* vstart = h.vstart
    cdef Py_ssize_t* vend = h.vend
    cdef Py_ssize_t lengths = 0, length_at = 0
    cdef set tokens = None
    for k in range(1, count):
        a = starts[k]
        b = ends[k]
        colon = a
        while colon < b and p[colon] != 58:
            colon += 1
        if colon == b or colon == a:
            return OTHER
        for i in range(a, colon):
            if not FR_TCHAR[p[i]]:
                return OTHER
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
                return OTHER
        if _named(p + a, names[k], "content-length", 14):
            lengths += 1
            length_at = k
        elif _named(p + a, names[k], "transfer-encoding", 17):
            return OTHER
        elif _named(p + a, names[k], "connection", 10):
            if tokens is None:
                tokens = set()
            _tokens(p, vstart[k], vend[k], tokens)
    if lengths != 1:
        return OTHER
    a = vstart[length_at]
    b = vend[length_at]
    if not 1 <= b - a <= 18:
        return OTHER
    cdef long long size = 0
    for i in range(a, b):
        if not 48 <= p[i] <= 57:
            return OTHER
        size = size * 10 + (p[i] - 48)
    h.size = size
    h.close = False
    if tokens is not None:
        h.close = b"close" in tokens
        tokens = set(tokens - _KEEP)
    for k in range(1, count):
        h.keep[k] = not _hop_by_hop(p + starts[k], names[k], tokens)
    return LANE


def response_head(bytes head):
    """See proxy.protocol._lane.response_head."""
    cdef const unsigned char* p = head
    cdef Lines h
    cdef int kind = _scan(p, len(head), &h)
    if kind == LONG:
        return _lane.response_head(head)
    if kind == OTHER:
        return None
    # What the client gets: the status line as read, the kept fields
    # (name lowercased, value trimmed), a blank line.
    cdef Py_ssize_t i, k, j, a, b
    cdef Py_ssize_t total = 9 + (h.ends[0] - h.starts[0] - 9) + 2 + 2
    if h.ends[0] - h.starts[0] == 12:
        total += 1  # "HTTP/1.1 200" is written with the space before its empty reason
    for k in range(1, h.count):
        if h.keep[k]:
            total += h.names[k] + 2 + (h.vend[k] - h.vstart[k]) + 2
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    a = h.starts[0]
    b = h.ends[0]
    memcpy(o, p + a, b - a)
    i = b - a
    if b - a == 12:
        o[i] = 32
        i += 1
    o[i] = 13
    o[i + 1] = 10
    i += 2
    for k in range(1, h.count):
        if not h.keep[k]:
            continue
        a = h.starts[k]
        for j in range(h.names[k]):
            o[i + j] = _lower(p[a + j])
        i += h.names[k]
        o[i] = 58
        o[i + 1] = 32
        i += 2
        memcpy(o + i, p + h.vstart[k], h.vend[k] - h.vstart[k])
        i += h.vend[k] - h.vstart[k]
        o[i] = 13
        o[i + 1] = 10
        i += 2
    o[i] = 13
    o[i + 1] = 10
    return h.status, h.size, not h.close, out


cdef bytes response_packed(const unsigned char* p, Py_ssize_t n, list extra, LaneResponse* out):
    """The HTTP/2 header list protocol/_h2_head.response_fields makes of the head response_head()
    writes for the client (its kept fields, names lowercased, values trimmed), with `extra` fields
    where it has none of their name, packed for the session's respond_packed(): per field its name's
    and its value's lengths (two uint32_t, in the machine's order), the name, the value. None: not
    of the lane's kind, or too long a head (the general path's)."""
    cdef Lines h
    if _scan(p, n, &h) != LANE:
        return None
    cdef Py_ssize_t k, j, a, total = 8 + 7 + 3, count = 1
    cdef list added = None
    cdef bytes name, value
    for k in range(1, h.count):
        if h.keep[k]:
            total += 8 + h.names[k] + h.vend[k] - h.vstart[k]
            count += 1
    for field in extra:
        name = <bytes>field[0]
        for k in range(1, h.count):
            if h.keep[k] and _named(p + h.starts[k], h.names[k], name, len(name)):
                break
        else:
            if added is None:
                added = []
            added.append(field)
            total += 8 + len(name) + len(<bytes>field[1])
            count += 1
    cdef bytes block = PyBytes_FromStringAndSize(NULL, total)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(block)
    cdef Py_ssize_t i = _pack(o, 0, <const unsigned char*>b":status", 7, NULL, 3)
    o[i - 3] = 48 + h.status // 100
    o[i - 2] = 48 + h.status // 10 % 10
    o[i - 1] = 48 + h.status % 10
    for k in range(1, h.count):
        if h.keep[k]:
            a = h.starts[k]
            i = _pack(o, i, p + a, h.names[k], p + h.vstart[k], h.vend[k] - h.vstart[k])
            for j in range(h.names[k]):
                o[i - (h.vend[k] - h.vstart[k]) - h.names[k] + j] = _lower(p[a + j])
    if added is not None:
        for field in added:
            name = <bytes>field[0]
            value = <bytes>field[1]
            i = _pack(o, i, <const unsigned char*>PyBytes_AS_STRING(name), len(name),
                      <const unsigned char*>PyBytes_AS_STRING(value), len(value))
    out.status = h.status
    out.size = h.size
    out.keep = not h.close
    out.count = count
    return block


cdef inline Py_ssize_t _pack(unsigned char* o, Py_ssize_t i, const unsigned char* name, Py_ssize_t namelen,
                             const unsigned char* value, Py_ssize_t valuelen) noexcept:
    """One field into a packed header list at `i` (a NULL value: its bytes are left to the caller)."""
    cdef uint32_t sizes[2]
    sizes[0] = <uint32_t>namelen
    sizes[1] = <uint32_t>valuelen
    memcpy(o + i, sizes, 8)
    memcpy(o + i + 8, name, namelen)
    if value != NULL:
        memcpy(o + i + 8 + namelen, value, valuelen)
    return i + 8 + namelen + valuelen


cdef bint _hop_by_hop(const unsigned char* p, Py_ssize_t n, set tokens):
    if tokens is None and n != 2 and n != 7 and n != 10 and n != 14 and n != 16 and n != 17:
        return False  # not the length of any name in _ALWAYS (the common case: no bytes object made)
    cdef bytes name = _lowered(p, n)
    return name in _ALWAYS or (tokens is not None and name in tokens)


def request_head(bytes method, bytes target, list headers, *, bytes client_ip, bytes upstream_host, prefix,
                 bint allow_underscores, bint secure=False, bytes received=b"1.1"):
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
    via.append(_VIA if received == b"1.1" else received + b" fastroute")
    out += [b"via: ", b", ".join(via), b"\r\n\r\n"]
    return b"".join(out)


from ._plain_c import plain_request, plain_upstream_head  # noqa: E402 (the twin's whole API here)
