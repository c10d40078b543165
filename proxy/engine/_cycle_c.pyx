# cython: language_level=3, boundscheck=False, wraparound=False
# The compiled cycle (see _cycle.py for what it serves and how it hands
# over): the base class of _exchange.NativeClient. Its attributes are that
# class's state, typed; ready() serves the cycle's steps and calls the
# general path (self._ready and the _adopt* methods) for everything else.
#
# Rules: a step either completes as the general path would have completed
# it (the same bytes to the backend and the client, the same counts, pool
# and deadlines), or it changes nothing the general path reads before
# handing over. No Python object per request but the head's bytes and its
# target, the route's tuple and the two heads the lane writes: a plain head
# (protocol/_lane.plain_request) is read into offsets on the stack and its
# upstream head written from them; any other is checked into a RequestHead
# (check_head) first. The general path makes the RequestHead of a plain one
# if it takes the exchange over (NativeClient._routed_head).

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
from ..routing._pool import IDLE_UPSTREAM_MAX_AGE
from ._pipe import SPLICE_AVAILABLE, SPLICE_MIN
from ._route_c cimport _head_end, _pick, _plain
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

cdef enum:  # how the cycle hands over: NativeClient.resume(kind, ...), _cycle.py's RESUMES
    ROUTED = 0
    SENDING = 1
    READ = 2
    LANE = 3

RESUMES = {"ROUTED": ROUTED, "SENDING": SENDING, "READ": READ, "LANE": LANE}  # for the test that they are _cycle.py's

STATES = {"HEAD": HEAD, "CONNECT": CONNECT, "SEND": SEND, "RESPONSE": RESPONSE, "SPLICE": SPLICE,
          "CLOSED": CLOSED, "FAST": FAST, "HANDSHAKE": HANDSHAKE}  # for the test that they are _cycle.py's

cdef enum:
    READ_MAX = 65536  # bytes per read, as _socket.READ_MAX
    _TLS_WAITS = -1  # _send_lane: over TLS, what the socket did not take waits in the transport

cdef int _IN = EPOLLIN | EPOLLRDHUP  # a client between requests, an upstream in flight, and _upstream.IDLE_MASK
IDLE_MASK = _IN  # for the test that it is _upstream.IDLE_MASK
cdef double _MAX_AGE = IDLE_UPSTREAM_MAX_AGE
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


cdef class Cycle:
    """The state of one client connection of the engine (declared in _cycle_c.pxd), and the cycle's steps
    on it."""

    def configure(self):
        """Read what the cycle uses of the engine's configuration (once engine is set), and
        set the cycle's own fields."""
        # The exchange the cycle serves (state FAST). The checked head of the request it routed; None
        # when it read it as plain (protocol/_lane.plain_request: check_head accepts it as it is), then
        # made on a hand-over (NativeClient._routed_head).
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

    def ready(self, int fd, int mask):
        """`fd` is ready for `mask` (select.EPOLL* bits)."""
        self._ready_c(fd, mask)

    cdef void _ready_c(self, int fd, int mask) except *:
        upstream = self.upstream
        if self.state == HEAD and self.fast and fd == self.fd:
            self._read_head_fast()
        elif self.state == FAST and upstream is not None and fd == <int>upstream.fd:
            self._read_response_fast(upstream)
        elif self.state == FAST and fd == self.fd and not mask & (EPOLLERR | EPOLLHUP):
            if mask & EPOLLIN and self.reading:
                self._read_ahead()  # the general path's: it reads into inbuf, and nothing of the exchange
        else:
            self._ready(fd, mask)

    def parse(self):
        """The head in inbuf, if it is whole: the cycle's, or the general path's (_parse)."""
        if self.fast:
            self._parse_fast()
        else:
            self._parse()

    # --- the request ---------------------------------------------------------

    cdef void _read_head_fast(self) except *:
        if self.tls is not None:
            self._read_head()  # the general path's read (TLS records in, plaintext out), then parse()
            return
        cdef Py_ssize_t n = recv(self.fd, _buf, READ_MAX, 0)
        if n < 0:
            if _would_block():
                return
            self._close()
            return
        if n == 0:
            self._close()  # the client closed, mid-head or between requests
            return
        cdef bytearray inbuf = self.inbuf
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(inbuf)
        PyByteArray_Resize(inbuf, size + n)
        memcpy(PyByteArray_AS_STRING(inbuf) + size, _buf, n)
        self._parse_fast()

    cdef void _parse_fast(self) except *:
        """The head in inbuf: the cycle's, or the general path's (_parse) from the same bytes."""
        cdef bytearray inbuf = self.inbuf
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(inbuf)
        cdef char first = PyByteArray_AS_STRING(inbuf)[0] if size else 0
        if first == 13 or first == 10:
            self._parse()  # empty lines first, which do not start a head (RFC 9112 section 2.2)
            return
        if not self.started and size:
            self.started = True
            self._deadline(self.request_head_timeout)
        limits = self.limits
        cdef Py_ssize_t end = _head_end(PyByteArray_AS_STRING(inbuf), PyByteArray_GET_SIZE(inbuf), limits)
        if end < 0:
            self._parse()
            return
        cdef bytes head_bytes = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(inbuf), end)
        cdef Plain plain
        cdef bint is_plain = scan_plain(<const unsigned char*>PyBytes_AS_STRING(head_bytes), end, self.max_target,
                                        self.max_headers, self.max_header_bytes, &plain)
        gateway = self.gateway
        if is_plain:
            head = None
            target = PyBytes_FromStringAndSize(PyBytes_AS_STRING(head_bytes) + plain.target_start,
                                               plain.target_end - plain.target_start)
            table = gateway.table
            host = PyBytes_FromStringAndSize(PyBytes_AS_STRING(head_bytes) + plain.host_start,
                                             plain.host_end - plain.host_start) if table.by_host else None
            found = forward_of(table, host, target) if not gateway.draining else None
            if found is None:
                self._route(check_head(head_bytes, limits), head_bytes, end)  # accepted as it is
                return
        else:
            try:
                head = check_head(head_bytes, limits)
            except ClientProtocolError:
                self._parse()  # which answers it
                return
            target = head.target
            found = (forward_of(gateway.table, host_of(head.headers), target) if _plain(head) and not gateway.draining
                     else None)
            if found is None:
                self._route(head, head_bytes, end)  # the general path, from the checked head
                return
        del inbuf[:end]
        cdef double now = _monotonic()
        self.head = head
        self.head_bytes = head_bytes
        self.target = target
        self.prefix, self.pool = found
        self.arrived = now
        backend = _pick(self.pool, now)
        if backend is None:
            self.resume(ROUTED, None)
            return
        upstream = self._take(backend)
        if upstream is None:
            self.resume(ROUTED, backend)  # it connects
            return
        self._send_fast(upstream, backend, &plain if is_plain else NULL)

    cdef void _send_fast(self, upstream, backend, const Plain* plain) except *:
        self.upstream = upstream
        self._watch(upstream.fd, self, _IN)  # its mask in the pool: no system call
        if backend.failures or backend.down_until:
            backend.mark_ok()
        strip = self.prefix if self.pool.route.strip_prefix else None
        target = self.target if strip is None else strip_target(self.target, strip)
        prefix = None if strip is None else (<str>strip).encode("utf-8")
        cdef bytes data
        if plain != NULL:
            data = write_plain(<const unsigned char*>PyBytes_AS_STRING(self.head_bytes), plain, target,
                               self.client_ip_b, prefix, self.tls is not None)
        else:
            head = self.head
            data = lane_request_head(head.method, target, head.headers, client_ip=self.client_ip_b,
                                     upstream_host=backend.host_header, prefix=prefix,
                                     allow_underscores=self.allow_underscores, secure=self.tls is not None)
        upstream.received = 0
        self.counted_route = self.pool.route.name
        backend.begin(self.counted_route)
        self.counted = True
        self.state = FAST
        self._deadline(self.response_head_timeout)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef Py_ssize_t sent = send(<int>upstream.fd, PyBytes_AS_STRING(data), n, MSG_NOSIGNAL)
        if sent == n:
            return  # the response comes to ready()
        # The rest as the general path: it writes what is left, and sees the error if there was one.
        self.resume(SENDING, data=data[sent if sent > 0 else 0:])

    # --- the response ----------------------------------------------------------

    cdef void _read_response_fast(self, upstream) except *:
        cdef Py_ssize_t n = recv(<int>upstream.fd, _buf, READ_MAX, 0)
        if n < 0 and _would_block():
            return
        if self.lane_left >= 0:
            self._body_fast(upstream, n)
            return
        if n < 0:
            self.resume(READ, code=errno)
            return
        cdef const char* blank = <const char*>memmem(_buf, n, b"\r\n\r\n", 4) if n else NULL
        if blank == NULL or self.gateway.draining:
            self.resume(READ, data=PyBytes_FromStringAndSize(_buf, n))
            return
        cdef Py_ssize_t end = blank - _buf + 4
        simple = lane_response_head(PyBytes_FromStringAndSize(_buf, end))
        cdef Py_ssize_t length = -1 if simple is None else simple[1]
        if length < n - end or (length > n - end and SPLICE_AVAILABLE and length >= SPLICE_MIN):
            # Not of the lane's kind, bytes past its body, or a body long enough to splice: the
            # general path reads it.
            self.resume(READ, data=PyBytes_FromStringAndSize(_buf, n))
            return
        status, _, keep, head = simple
        if self.extra:
            head = lane_with_fields(head, self.extra)
        upstream.received += n
        cdef Py_ssize_t total = PyBytes_GET_SIZE(head) + n - end
        cdef Py_ssize_t sent = self._send_lane(head, end, n)
        if sent == _TLS_WAITS:  # the rest waits in the transport for the general path, as ciphertext
            self._lane_over(status, keep, n - end, length - (n - end), b"", True)
            return
        if sent != total:
            self._lane_over(status, keep, n - end, length - (n - end),
                            (head + PyBytes_FromStringAndSize(_buf + end, n - end))[sent:], sent > 0)
            return
        if length == n - end:
            self._finish_fast(upstream, status, length, keep)
            return
        # The rest of the body comes in later reads (_body_fast).
        self.status = status
        self.lane_keep = keep
        self.body_out = n - end
        self.body_length = length
        self.lane_left = length - (n - end)
        self._deadline(self.body_idle_timeout)

    cdef Py_ssize_t _send_lane(self, bytes head, Py_ssize_t end, Py_ssize_t n) except -2:
        """A lane response's `head` and the body after `end` in _buf[:n], written to the client: the
        bytes the socket took (0 on an error: the general path meets it again), or _TLS_WAITS."""
        cdef Py_ssize_t size = PyBytes_GET_SIZE(head), total = size + n - end, sent
        cdef iovec parts[2]
        if self.tls is not None:  # encrypted whole
            if self.transport.send_tls(head + PyBytes_FromStringAndSize(_buf + end, n - end), self.outbuf):
                return total
            return _TLS_WAITS
        if size <= end:
            # The client's head in place of the backend's, ending where the body starts: one send of one
            # buffer (the rewrite only drops fields, so it is never longer but for an empty reason's space).
            memcpy(_buf + end - size, PyBytes_AS_STRING(head), size)
            sent = send(self.fd, _buf + end - size, total, MSG_NOSIGNAL)
        else:
            parts[0].iov_base = PyBytes_AS_STRING(head)
            parts[0].iov_len = size
            parts[1].iov_base = _buf + end
            parts[1].iov_len = n - end
            sent = writev(self.fd, parts, 2)
        return sent if sent > 0 else 0

    cdef void _body_fast(self, upstream, Py_ssize_t n) except *:
        """One read (n bytes in _buf, 0 at EOF, -1 an error) of a lane response's body: on to the client
        as it came, counted down; the general path's lane for anything else."""
        cdef int code = errno
        if n <= 0 or n > self.lane_left:
            # It closes, fails, or sends past the body, as the lane says.
            if n < 0:
                self.resume(LANE, code=code)
            else:
                self.resume(LANE, data=PyBytes_FromStringAndSize(_buf, n))
            return
        cdef Py_ssize_t sent
        cdef bint whole = True
        if self.tls is not None:
            whole = self.transport.send_tls(PyBytes_FromStringAndSize(_buf, n), self.outbuf)
            sent = n
        else:
            sent = send(self.fd, _buf, n, MSG_NOSIGNAL)
        if sent < 0:
            sent = 0
        upstream.received += sent
        self.lane_left -= sent
        self.body_out += sent
        if not whole:
            self.resume(LANE)  # the client takes no more now: the rest waits in the transport
            return
        if sent != n:
            self.resume(LANE, data=PyBytes_FromStringAndSize(_buf + sent, n - sent))  # the rest as the lane's
            return
        self._deadline(self.body_idle_timeout)  # every byte of the body is progress
        if not self.lane_left:
            self.lane_left = -1
            self._finish_fast(upstream, self.status, self.body_length, self.lane_keep)

    cdef void _lane_over(self, int status, bint keep, Py_ssize_t body, Py_ssize_t left, bytes unsent,
                         bint started) except *:
        """A lane response's head and first `body` bytes of its body written in part (`unsent` not
        taken), `left` to come: on as the general path's lane."""
        self.status = status
        self.lane_keep = keep
        self.body_out = body
        self.lane_left = left
        self.resume(LANE, unsent=unsent, started=started)

    cdef void _finish_fast(self, upstream, int status, Py_ssize_t length, bint keep) except *:
        """The response went out whole: the backend connection back to its pool, the next head."""
        engine = self.engine
        gateway = self.gateway
        engine.laned += 1
        engine.cycled += 1
        self.upstream = None
        backend = upstream.backend
        self.counted = False
        backend.end(self.counted_route)
        if backend.errors:
            backend.mark_answered()
        cdef double now = _monotonic()
        backend.last_done = now
        if keep:
            self._keep(upstream)
        else:
            upstream.close(self.loop)
        if gateway.records():
            head = self.head
            head_bytes = self.head_bytes
            method = head.method if head is not None else head_bytes[:head_bytes.index(b" ")]
            exchange = Exchange(self.arrived, method=method, target=self.target, route=self.pool.route.name,
                                status=status, bytes_out=length, backend=str(backend.address), response_started=True)
            gateway.record(self.front.client_ip, exchange)
        engine.served += 1
        self.head = None
        self.target = None
        self.pool = None
        if gateway.draining:
            self._close()
            return
        self.state = HEAD
        self.started = False
        if not self.reading:  # it read ahead as far as it may, or to the client's EOF
            self.reading = not self.eof
            self._watch(self.fd, self, _IN if self.reading else 0)
        self._deadline(self.keepalive_timeout)
        if PyByteArray_GET_SIZE(self.inbuf) or self.eof:
            self._parse_fast()  # a request read with this one (pipelined); or the client closed: close now

    # --- the loop's interest and the pools, compiled ------------------------------------
    # Loop.watch, Pools.take and Pools.keep: the same steps over the same dicts (tests/proxy/engine/
    # test_cycle.py runs both on the same states), without an interpreted frame per call.

    cdef void _watch(self, int fd, handler, int mask) except *:
        """Loop.watch."""
        known = self.masks.get(fd)
        if known is None:
            self.epoll.register(fd, mask)
        elif <int>known != mask:
            self.epoll.modify(fd, mask)
        self.masks[fd] = mask
        self.handlers[fd] = handler

    cdef object _take(self, backend):
        """Pools.take."""
        cdef list idle = self.idle.get(backend)
        cdef double now = _monotonic()
        while idle:
            upstream = idle.pop()
            del self.by_fd[upstream.fd]
            if now - <double>upstream.idle_since < _MAX_AGE:
                upstream.reused = True
                return upstream
            upstream.close(self.loop)
        return None

    cdef void _keep(self, upstream) except *:
        """Pools.keep, with --max-idle-upstream."""
        backend = upstream.backend
        cdef list idle = self.idle.get(backend)
        if idle is None:
            idle = self.idle.setdefault(backend, [])
        if backend.retired or len(idle) >= self.max_idle_upstream:
            upstream.close(self.loop)
            return
        upstream.idle_since = _monotonic()
        idle.append(upstream)
        self.by_fd[upstream.fd] = upstream
        self._watch(upstream.fd, self.pools, _IN)

    def loop_watch(self, int fd, handler, int mask):
        """_watch, for the tests."""
        self._watch(fd, handler, mask)

    def pools_take(self, backend):
        """_take, for the tests."""
        return self._take(backend)

    def pools_keep(self, upstream):
        """_keep, for the tests."""
        self._keep(upstream)

    # --- deadlines ---------------------------------------------------------------

    cdef void _deadline(self, double seconds) except *:
        """As _exchange.NativeClient._deadline (Loop.at): a deadline moved later costs no heap entry."""
        loop = self.loop
        cdef double deadline = loop.now + seconds
        timed = self.timed
        queued = timed.queued
        if queued is not None and deadline >= <double>queued:
            timed.deadline = deadline
            timed.handler = self
        else:
            loop.at(deadline, self, timed)
