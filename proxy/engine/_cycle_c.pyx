# cython: language_level=3, boundscheck=False, wraparound=False
# The compiled cycle (see _cycle.py for what it serves and how it hands
# over): functions over one client connection's fields (ConnectionFields,
# declared in _cycle_c.pxd: _exchange.NativeClient is built on them). Each
# serves what it can and returns what came of it: SERVED, or the kind of
# hand-over (STEPS) with its arguments in `handed`, which the connection
# carries out (NativeClient.resume). It calls nothing of the connection's.
#
# Rules: a step either completes as the general path would have completed
# it (the same bytes to the backend and the client, the same counts, pool
# and deadlines), or it changes nothing the general path reads before
# handing over. No Python object per request but the head's bytes and its
# target, the route's tuple and the two heads the lane writes: a plain head
# (protocol/_lane.plain_request) is read into offsets on the stack and its
# upstream head written from them; any other is checked into a RequestHead
# (check_head) first. The general path makes the RequestHead of a plain one
# if it takes the exchange over (NativeClient._take_over).

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy

from ._sys cimport (CLOCK_MONOTONIC, EAGAIN, EINTR, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLRDHUP, MSG_NOSIGNAL,
                    clock_gettime, errno, iovec, memmem, recv, send, timespec, writev)

from .._errors import ClientProtocolError
from ..protocol._compiled import check_head, lane_request_head, lane_response_head
from ..protocol._head import host_of
from ..protocol._lane import with_fields as lane_with_fields
from ..protocol._plain_c cimport Plain, scan_plain, write_plain
from ..protocol._rewrite import strip_target
from ..routing._record import Exchange
from ._pipe import SPLICE_AVAILABLE, SPLICE_MIN
from ._route_c cimport LoopParts, _head_end, _pick, _plain, arm, keep, loop_parts, take, watch
from ._route_c import forward_of

cdef enum:
    HEAD = 0
    CONNECT = 1
    SEND = 2
    RESPONSE = 3
    SPLICE = 4
    CLOSED = 5
    FAST = 6
    HANDSHAKE = 7  # the general path's only (the cycle serves nothing before the first head)

STEPS = {"SERVED": SERVED, "ROUTED": ROUTED, "SENDING": SENDING, "READ": READ, "LANE": LANE, "READY": READY,
         "PARSE": PARSE, "ROUTE": ROUTE, "READ_AHEAD": READ_AHEAD, "CLOSE": CLOSE}  # the test: they are _cycle.py's

STATES = {"HEAD": HEAD, "CONNECT": CONNECT, "SEND": SEND, "RESPONSE": RESPONSE, "SPLICE": SPLICE,
          "CLOSED": CLOSED, "FAST": FAST, "HANDSHAKE": HANDSHAKE}  # for the test that they are _cycle.py's

cdef enum:
    READ_MAX = 65536  # bytes per read, as _socket.READ_MAX
    _TLS_WAITS = -1  # _send_lane: over TLS, what the socket did not take waits in the transport

cdef int _IN = EPOLLIN | EPOLLRDHUP  # a client between requests, an upstream in flight, and _upstream.IDLE_MASK
IDLE_MASK = _IN  # for the test that it is _upstream.IDLE_MASK
cdef char _buf[READ_MAX]  # one read at a time: the engine runs in one thread


cdef inline double _monotonic() noexcept:
    """time.monotonic(): the same clock (CLOCK_MONOTONIC)."""
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + now.tv_nsec * 1e-9


cdef inline bint _would_block() noexcept:
    """The last call failed for want of data or room (EWOULDBLOCK is EAGAIN on Linux), or a signal."""
    cdef int code = errno
    return code == EAGAIN or code == EINTR


cdef class ConnectionFields:
    """One client connection's fields, typed (declared in _cycle_c.pxd): what the cycle reads and
    writes."""

    def configure(self):
        """Read what the cycle uses of the engine's configuration (once engine is set), and
        set the cycle's own fields."""
        # The exchange the cycle serves (state FAST). The checked head of the request it routed; None
        # when it read it as plain (protocol/_lane.plain_request: check_head accepts it as it is), then
        # made on a hand-over (NativeClient._take_over).
        self.head = None
        self.head_bytes = b""  # the request's head as the client sent it
        self.arrived = 0.0  # time.monotonic() when the cycle routed it
        self.pool = None  # its route's pool, and the prefix it matched
        self.prefix = ""
        self.upstream = None  # its backend connection, counted on the backend for counted_route
        self.counted = False
        self.counted_route = ""
        self.lane_left = -1  # body bytes of its response still to come (-1: not in the lane)
        self.lane_keep = False  # the backend keeps its connection after that response
        self.status = 0  # of a lane response the cycle passes on in several reads
        self.body_out = 0  # its body bytes written so far
        self.body_length = 0  # its Content-Length
        self.handed = None  # what comes with a hand-over
        engine = self.engine
        config = engine.config
        timeouts = config.timeouts
        self.gateway = engine.gateway
        self.loop = engine.loop
        self.pools = engine.pools
        self.epoll = engine.loop._epoll
        self.masks = engine.loop._masks
        self.handlers = engine.loop._handlers
        self.idle = engine.pools._idle
        self.by_fd = engine.pools._by_fd
        self.parts = loop_parts(engine)
        self.limits = config.limits
        self.max_target = config.limits.max_target
        self.max_headers = config.limits.max_headers
        self.max_header_bytes = config.limits.max_header_bytes
        self.request_head_timeout = timeouts.request_head
        self.keepalive_timeout = timeouts.keepalive
        self.response_head_timeout = timeouts.response_head
        self.body_idle_timeout = timeouts.body_idle
        self.max_idle_upstream = config.limits.max_idle_upstream
        self.allow_underscores = config.allow_underscores

    def loop_watch(self, int fd, handler, int mask):
        """_watch, for the tests."""
        _watch(self, fd, handler, mask)

    def pools_take(self, backend):
        """_take, for the tests."""
        return _take(self, backend)

    def pools_keep(self, upstream):
        """_keep, for the tests."""
        _keep(self, upstream)



# --- the entry points: what the connection calls --------------------------------

def ready(ConnectionFields c, int fd, int mask):
    """`fd` is ready for `mask` (select.EPOLL* bits): SERVED, or the hand-over (STEPS) to carry out."""
    return ready_c(c, fd, mask)


cdef int ready_c(ConnectionFields c, int fd, int mask) except -1:
    upstream = c.upstream
    if c.state == HEAD and c.fast and fd == c.fd:
        return _read_head_fast(c)
    if c.state == FAST and upstream is not None and fd == <int>upstream.fd:
        return _read_response_fast(c, upstream)
    if c.state == FAST and fd == c.fd and not mask & (EPOLLERR | EPOLLHUP):
        # Bytes after the request in flight: the general path's read ahead (into inbuf, nothing of the
        # exchange's), or nothing at all.
        return READ_AHEAD if mask & EPOLLIN and c.reading else SERVED
    return READY


def parse(ConnectionFields c):
    """The head in inbuf, if it is whole: SERVED, or the hand-over (PARSE: the general path reads it)."""
    return _parse_fast(c) if c.fast else PARSE


cdef inline int _hand(ConnectionFields c, int kind, data, int code=0, bytes unsent=b"", bint started=True) except -1:
    """READ or LANE, with what comes with it (NativeClient.resume reads `handed`)."""
    c.handed = (data, code, unsent, started)
    return kind


# --- the request ---------------------------------------------------------

cdef int _read_head_fast(ConnectionFields c) except -1:
    if c.tls is not None:
        return READY  # the general path's read (TLS records in, plaintext out), then parse()
    cdef Py_ssize_t n = recv(c.fd, _buf, READ_MAX, 0)
    if n < 0:
        if _would_block():
            return SERVED
        return CLOSE
    if n == 0:
        return CLOSE  # the client closed, mid-head or between requests
    cdef bytearray inbuf = c.inbuf
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(inbuf)
    PyByteArray_Resize(inbuf, size + n)
    memcpy(PyByteArray_AS_STRING(inbuf) + size, _buf, n)
    return _parse_fast(c)

cdef int _parse_fast(ConnectionFields c) except -1:
    """The head in inbuf: the cycle's, or the general path's (_parse) from the same bytes."""
    cdef bytearray inbuf = c.inbuf
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(inbuf)
    cdef char first = PyByteArray_AS_STRING(inbuf)[0] if size else 0
    if first == 13 or first == 10:
        return PARSE  # empty lines first, which do not start a head (RFC 9112 section 2.2)
    if not c.started and size:
        c.started = True
        _deadline(c, c.request_head_timeout)
    limits = c.limits
    cdef Py_ssize_t end = _head_end(PyByteArray_AS_STRING(inbuf), PyByteArray_GET_SIZE(inbuf), limits)
    if end < 0:
        return PARSE
    c.http2 = False  # a request head: HTTP/1.1 from here
    cdef bytes head_bytes = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(inbuf), end)
    cdef Plain plain
    cdef bint is_plain = scan_plain(<const unsigned char*>PyBytes_AS_STRING(head_bytes), end, c.max_target,
                                    c.max_headers, c.max_header_bytes, &plain)
    gateway = c.gateway
    if is_plain:
        head = None
        target = PyBytes_FromStringAndSize(PyBytes_AS_STRING(head_bytes) + plain.target_start,
                                           plain.target_end - plain.target_start)
        table = gateway.table
        host = PyBytes_FromStringAndSize(PyBytes_AS_STRING(head_bytes) + plain.host_start,
                                         plain.host_end - plain.host_start) if table.by_host else None
        found = forward_of(table, host, target) if not gateway.draining else None
        if found is None:
            c.handed = (check_head(head_bytes, limits), head_bytes, end)  # accepted as it is
            return ROUTE
    else:
        try:
            head = check_head(head_bytes, limits)
        except ClientProtocolError:
            return PARSE  # which answers it
        target = head.target
        found = (forward_of(gateway.table, host_of(head.headers), target) if _plain(head) and not gateway.draining
                 else None)
        if found is None:
            c.handed = (head, head_bytes, end)  # the general path routes the checked head
            return ROUTE
    del inbuf[:end]
    cdef double now = _monotonic()
    c.head = head
    c.head_bytes = head_bytes
    c.target = target
    c.prefix, c.pool = found
    c.arrived = now
    backend = _pick(c.pool, now)
    c.handed = backend  # for ROUTED: None when none is up
    if backend is None:
        return ROUTED
    upstream = _take(c, backend)
    if upstream is None:
        return ROUTED  # the general path connects
    c.handed = None
    return _send_fast(c, upstream, backend, &plain if is_plain else NULL)

cdef int _send_fast(ConnectionFields c, upstream, backend, const Plain* plain) except -1:
    c.upstream = upstream
    _watch(c, upstream.fd, c, _IN)  # its mask in the pool: no system call
    if backend.failures or backend.down_until:
        backend.mark_ok()
    strip = c.prefix if c.pool.route.strip_prefix else None
    target = c.target if strip is None else strip_target(c.target, strip)
    prefix = None if strip is None else (<str>strip).encode("utf-8")
    cdef bytes data
    if plain != NULL:
        data = write_plain(<const unsigned char*>PyBytes_AS_STRING(c.head_bytes), plain, target,
                           c.client_ip_b, prefix, c.tls is not None)
    else:
        head = c.head
        data = lane_request_head(head.method, target, head.headers, client_ip=c.client_ip_b,
                                 upstream_host=backend.host_header, prefix=prefix,
                                 allow_underscores=c.allow_underscores, secure=c.tls is not None)
    upstream.received = 0
    c.counted_route = c.pool.route.name
    backend.begin(c.counted_route)
    c.counted = True
    c.state = FAST
    _deadline(c, c.response_head_timeout)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t sent = send(<int>upstream.fd, PyBytes_AS_STRING(data), n, MSG_NOSIGNAL)
    if sent == n:
        return SERVED  # the response comes to ready()
    # The rest as the general path: it writes what is left, and sees the error if there was one.
    c.handed = data[sent if sent > 0 else 0:]
    return SENDING

# --- the response ----------------------------------------------------------

cdef int _read_response_fast(ConnectionFields c, upstream) except -1:
    cdef Py_ssize_t n = recv(<int>upstream.fd, _buf, READ_MAX, 0)
    if n < 0 and _would_block():
        return SERVED
    if c.lane_left >= 0:
        return _body_fast(c, upstream, n)
    if n < 0:
        return _hand(c, READ, None, errno)
    cdef const char* blank = <const char*>memmem(_buf, n, b"\r\n\r\n", 4) if n else NULL
    if blank == NULL or c.gateway.draining:
        return _hand(c, READ, PyBytes_FromStringAndSize(_buf, n))
    cdef Py_ssize_t end = blank - _buf + 4
    simple = lane_response_head(PyBytes_FromStringAndSize(_buf, end))
    cdef Py_ssize_t length = -1 if simple is None else simple[1]
    if length < n - end or (length > n - end and SPLICE_AVAILABLE and length >= SPLICE_MIN):
        # Not of the lane's kind, bytes past its body, or a body long enough to splice: the
        # general path reads it.
        return _hand(c, READ, PyBytes_FromStringAndSize(_buf, n))
    status, _, keep, head = simple
    if c.extra:
        head = lane_with_fields(head, c.extra)
    upstream.received += n
    cdef Py_ssize_t total = PyBytes_GET_SIZE(head) + n - end
    cdef Py_ssize_t sent = _send_lane(c, head, end, n)
    if sent == _TLS_WAITS:  # the rest waits in the transport for the general path, as ciphertext
        return _lane_over(c, status, keep, n - end, length - (n - end), b"", True)
    if sent != total:
        return _lane_over(c, status, keep, n - end, length - (n - end),
                          (head + PyBytes_FromStringAndSize(_buf + end, n - end))[sent:], sent > 0)
    if length == n - end:
        return _finish_fast(c, upstream, status, length, keep)
    # The rest of the body comes in later reads (_body_fast).
    c.status = status
    c.lane_keep = keep
    c.body_out = n - end
    c.body_length = length
    c.lane_left = length - (n - end)
    _deadline(c, c.body_idle_timeout)
    return SERVED

cdef Py_ssize_t _send_lane(ConnectionFields c, bytes head, Py_ssize_t end, Py_ssize_t n) except -2:
    """A lane response's `head` and the body after `end` in _buf[:n], written to the client: the
    bytes the socket took (0 on an error: the general path meets it again), or _TLS_WAITS."""
    cdef Py_ssize_t size = PyBytes_GET_SIZE(head), total = size + n - end, sent
    cdef iovec parts[2]
    if c.tls is not None:  # encrypted whole
        if c.transport.send_tls(head + PyBytes_FromStringAndSize(_buf + end, n - end), c.outbuf):
            return total
        return _TLS_WAITS
    if size <= end:
        # The client's head in place of the backend's, ending where the body starts: one send of one
        # buffer (the rewrite only drops fields, so it is never longer but for an empty reason's space).
        memcpy(_buf + end - size, PyBytes_AS_STRING(head), size)
        sent = send(c.fd, _buf + end - size, total, MSG_NOSIGNAL)
    else:
        parts[0].iov_base = PyBytes_AS_STRING(head)
        parts[0].iov_len = size
        parts[1].iov_base = _buf + end
        parts[1].iov_len = n - end
        sent = writev(c.fd, parts, 2)
    return sent if sent > 0 else 0

cdef int _body_fast(ConnectionFields c, upstream, Py_ssize_t n) except -1:
    """One read (n bytes in _buf, 0 at EOF, -1 an error) of a lane response's body: on to the client
    as it came, counted down; the general path's lane for anything else."""
    cdef int code = errno
    if n <= 0 or n > c.lane_left:
        # It closes, fails, or sends past the body, as the lane says.
        if n < 0:
            return _hand(c, LANE, None, code)
        return _hand(c, LANE, PyBytes_FromStringAndSize(_buf, n))
    cdef Py_ssize_t sent
    cdef bint whole = True
    if c.tls is not None:
        whole = c.transport.send_tls(PyBytes_FromStringAndSize(_buf, n), c.outbuf)
        sent = n
    else:
        sent = send(c.fd, _buf, n, MSG_NOSIGNAL)
    if sent < 0:
        sent = 0
    upstream.received += sent
    c.lane_left -= sent
    c.body_out += sent
    if not whole:
        return _hand(c, LANE, None)  # the client takes no more now: the rest waits in the transport
    if sent != n:
        return _hand(c, LANE, PyBytes_FromStringAndSize(_buf + sent, n - sent))  # the rest as the lane's
    _deadline(c, c.body_idle_timeout)  # every byte of the body is progress
    if not c.lane_left:
        c.lane_left = -1
        return _finish_fast(c, upstream, c.status, c.body_length, c.lane_keep)
    return SERVED

cdef int _lane_over(ConnectionFields c, int status, bint keep, Py_ssize_t body, Py_ssize_t left, bytes unsent,
                     bint started) except -1:
    """A lane response's head and first `body` bytes of its body written in part (`unsent` not
    taken), `left` to come: on as the general path's lane."""
    c.status = status
    c.lane_keep = keep
    c.body_out = body
    c.lane_left = left
    return _hand(c, LANE, None, 0, unsent, started)

cdef int _finish_fast(ConnectionFields c, upstream, int status, Py_ssize_t length, bint keep) except -1:
    """The response went out whole: the backend connection back to its pool, the next head."""
    engine = c.engine
    gateway = c.gateway
    engine.laned += 1
    engine.cycled += 1
    c.upstream = None
    backend = upstream.backend
    c.counted = False
    backend.end(c.counted_route)
    if backend.errors:
        backend.mark_answered()
    cdef double now = _monotonic()
    backend.last_done = now
    if keep:
        _keep(c, upstream)
    else:
        upstream.close(c.loop)
    if gateway.records():
        head = c.head
        head_bytes = c.head_bytes
        method = head.method if head is not None else head_bytes[:head_bytes.index(b" ")]
        exchange = Exchange(c.arrived, method=method, target=c.target, route=c.pool.route.name,
                            status=status, bytes_out=length, backend=str(backend.address), response_started=True)
        gateway.record(c.front.client_ip, exchange)
    engine.served += 1
    c.head = None
    c.target = None
    c.pool = None
    if gateway.draining:
        return CLOSE
    c.state = HEAD
    c.started = False
    if not c.reading:  # it read ahead as far as it may, or to the client's EOF
        c.reading = not c.eof
        _watch(c, c.fd, c, _IN if c.reading else 0)
    _deadline(c, c.keepalive_timeout)
    if PyByteArray_GET_SIZE(c.inbuf) or c.eof:
        return _parse_fast(c)  # a request read with this one (pipelined); or the client closed: close now
    return SERVED

# --- the loop's interest and the pools, compiled ------------------------------------
# Loop.watch, Pools.take and Pools.keep (_route_c.pyx's, shared with the HTTP/2 cycle; tests/proxy/
# engine/test_cycle.py runs them and the Python ones on the same states).

cdef inline void _watch(ConnectionFields c, int fd, handler, int mask) except *:
    watch(c.parts, fd, handler, mask)

cdef inline object _take(ConnectionFields c, backend):
    return take(c.parts, backend)

cdef inline void _keep(ConnectionFields c, upstream) except *:
    keep(c.parts, upstream)

# --- deadlines ---------------------------------------------------------------

cdef void _deadline(ConnectionFields c, double seconds) except *:
    """As _exchange.NativeClient._deadline (Loop.at): a deadline moved later costs no heap entry."""
    arm(c.parts, <double>c.loop.now + seconds, c, c.timed)
