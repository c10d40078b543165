# cython: language_level=3, boundscheck=False, wraparound=False
# The compiled HTTP/2 stream (see _h2cycle.py for what it serves and how it
# hands over): the commonest request of an HTTP/2 connection of the engine
# (_h2.NativeH2), from its header list to its response in the session,
# with no Python object per request but the head's bytes, the stream, the
# response's header list (packed in one bytes object) and its record. The
# HTTP/1.1 cycle's pieces serve it: the plain head's scan and upstream head
# (protocol/_plain_c), the route and the pick (_route_c), the lane's
# response head read in place (protocol/_lane_c, which packs it for the
# compiled session's respond_packed()), the pools.
#
# Rules: a step either completes as the general path (an H2Leg under a
# StreamShell, _h2leg.py) would have completed it, the same bytes to the
# backend and the same response, counts, pool and deadlines; or it changes
# nothing that path reads before it hands over (mux.resume(), once, with
# the kind of hand-over and what comes with it).

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t
from libc.string cimport memcpy

from ._sys cimport CLOCK_MONOTONIC, EAGAIN, EINTR, EPOLLIN, EPOLLRDHUP, MSG_NOSIGNAL, clock_gettime, errno, memmem, recv, send, timespec
from ..protocol._bytes cimport FR_TCHAR
from ..protocol._lane_c cimport LaneResponse, response_packed
from ..protocol._plain_c cimport Plain, scan_plain, write_plain
from ._route_c cimport LoopParts, _pick, arm, disarm, loop_parts, take, watch
from ._route_c cimport keep as pool_keep

from ..protocol._h2_head import CONNECTION_SPECIFIC
from ..protocol._h2session import INTERNAL_ERROR, StreamClosed
from ..protocol._rewrite import strip_target
from ..routing._record import Exchange
from ._loop import Timed
from ._route_c import forward_of

cdef enum:  # the hand-overs (_h2cycle.py's HANDOVERS)
    ROUTED = 1  # routed, nothing sent (handed: the backend, None when none was up)
    SENDING = 2  # the backend took part of the request head (handed: the rest)
    READ = 3  # the request went out; a read of the response that is not the cycle's (handed: (data, errno))
    EXPIRED = 4  # the request went out; no response came in time

HANDOVERS = {"ROUTED": ROUTED, "SENDING": SENDING, "READ": READ, "EXPIRED": EXPIRED}

cdef enum:  # a stream's steps
    OPEN = 0  # routed; its request not sent yet (start())
    SENT = 1  # its request went out on its backend connection
    DONE = 2  # its response is in the session (its bytes may wait: mux.blocked)
    OVER = 3  # ended, reset, or handed over

cdef enum:
    READ_MAX = 65536  # bytes per read, as _socket.READ_MAX

cdef int _IN = EPOLLIN | EPOLLRDHUP
cdef bytes _VIA = b"2 fastroute"  # Via's value for a client that spoke HTTP/2
cdef frozenset _SPECIFIC = CONNECTION_SPECIFIC | frozenset((b"te",))
cdef char _buf[READ_MAX]  # one read at a time: the engine runs in one thread


cdef inline double _monotonic() noexcept:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + now.tv_nsec * 1e-9


# --- the request ----------------------------------------------------------------

cdef inline bint _lower_token(bytes name) noexcept:
    """A regular field's name as HTTP/2 carries it: a token in lowercase (RFC 9113 section 8.2.1)."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(name)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(name)
    if n == 0:
        return False
    for i in range(n):
        if not FR_TCHAR[p[i]] or 65 <= p[i] <= 90:
            return False
    return True


cdef inline bint _clean_value(bytes value) noexcept:
    """No NUL, CR or LF, no whitespace at either end (section 8.2.1)."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(value)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(value)
    if n and (p[0] == 32 or p[0] == 9 or p[n - 1] == 32 or p[n - 1] == 9):
        return False
    for i in range(n):
        if p[i] == 0 or p[i] == 13 or p[i] == 10:
            return False
    return True


cdef bytes _http11(list fields):
    """The HTTP/1.1 head protocol/_h2_head.request_head writes for a header list of the plainest kind
    (the four request pseudo-headers once each and first, :path a path, regular fields that are
    lowercase tokens with clean values, none connection-specific and no TE, Host or Cookie, which
    that function merges or drops); None for any other list (the general path checks it)."""
    cdef Py_ssize_t count = len(fields), i, total = 0
    cdef tuple field
    cdef bytes name, value, method = None, scheme = None, path = None, authority = None
    if count < 4:
        return None
    for i in range(4):
        field = <tuple>fields[i]
        name = <bytes>field[0]
        value = <bytes>field[1]
        if not _clean_value(value):
            return None
        if name == b":method" and method is None:
            method = value
        elif name == b":scheme" and scheme is None:
            scheme = value
        elif name == b":path" and path is None:
            path = value
        elif name == b":authority" and authority is None:
            authority = value
        else:
            return None
    if PyBytes_GET_SIZE(path) == 0 or PyBytes_AS_STRING(path)[0] != 47:  # "/"
        return None
    total = PyBytes_GET_SIZE(method) + 1 + PyBytes_GET_SIZE(path) + 11 + 6 + PyBytes_GET_SIZE(authority) + 2 + 2
    for i in range(4, count):
        field = <tuple>fields[i]
        name = <bytes>field[0]
        value = <bytes>field[1]
        if not _lower_token(name) or not _clean_value(value) or name in _SPECIFIC:
            return None
        if name == b"host" or name == b"cookie":
            return None
        total += PyBytes_GET_SIZE(name) + 2 + PyBytes_GET_SIZE(value) + 2
    cdef bytes out = PyBytes_FromStringAndSize(NULL, total)
    cdef char* o = PyBytes_AS_STRING(out)
    cdef Py_ssize_t at = _put(o, 0, method)
    o[at] = 32
    at = _put(o, at + 1, path)
    memcpy(o + at, b" HTTP/1.1\r\nhost: ", 17)
    at = _put(o, at + 17, authority)
    o[at] = 13
    o[at + 1] = 10
    at += 2
    for i in range(4, count):
        field = <tuple>fields[i]
        at = _put(o, at, <bytes>field[0])
        o[at] = 58
        o[at + 1] = 32
        at = _put(o, at + 2, <bytes>field[1])
        o[at] = 13
        o[at + 1] = 10
        at += 2
    o[at] = 13
    o[at + 1] = 10
    return out


cdef inline Py_ssize_t _put(char* o, Py_ssize_t at, bytes data) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    memcpy(o + at, PyBytes_AS_STRING(data), n)
    return at + n


def http11(list fields):
    """_http11, for the test that it is protocol/_h2_head.request_head's head where it says one."""
    return _http11(fields)


def open(mux, int stream_id, list fields):
    """The stream of a request whose HEADERS ended it, if the cycle serves it (routed, not started:
    start() sends it); None: the general path checks the list and serves it."""
    cdef bytes head = _http11(fields)
    if head is None:
        return None
    engine = mux.engine
    gateway = engine.gateway
    if gateway.draining:
        return None
    limits = engine.config.limits
    cdef Plain plain
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(head)
    if not scan_plain(p, PyBytes_GET_SIZE(head), limits.max_target, limits.max_headers, limits.max_header_bytes,
                      &plain):
        return None
    cdef bytes target = PyBytes_FromStringAndSize(<const char*>p + plain.target_start,
                                                  plain.target_end - plain.target_start)
    table = gateway.table
    host = (PyBytes_FromStringAndSize(<const char*>p + plain.host_start, plain.host_end - plain.host_start)
            if table.by_host else None)
    found = forward_of(table, host, target)
    if found is None:
        return None
    prefix, pool = found
    strip = prefix if pool.route.strip_prefix else None
    upstream_target = target if strip is None else strip_target(target, strip)
    cdef H2Fast stream = H2Fast.__new__(H2Fast)
    stream.mux = mux
    stream.engine = engine
    stream.loop = engine.loop
    stream.parts = loop_parts(engine)
    stream.stream_id = stream_id
    stream.ended = True
    stream.fields = fields
    stream.method = PyBytes_FromStringAndSize(<const char*>p, plain.method_end)
    stream.target = target
    stream.prefix = prefix
    stream.pool = pool
    stream.request = write_plain(p, &plain, upstream_target, mux.client_ip_b,
                                 None if strip is None else (<str>strip).encode("utf-8"), mux.tls is not None, _VIA)
    stream.arrived = _monotonic()
    spare = mux.spare_timed
    stream.timed = spare.pop() if spare else Timed()
    return stream


@cython.freelist(128)
cdef class H2Fast:
    """One stream the cycle serves (a MuxStream of protocol/_h2_mux.py)."""

    cdef public int stream_id
    cdef public bint ended, reset, by_client
    cdef public object mux, pool, upstream, timed
    cdef public list fields  # the request's header list as it came (the general path checks it on a hand-over)
    cdef public str prefix, counted_route
    cdef public double arrived
    cdef object engine, loop, backend
    cdef LoopParts parts  # the loop's and the pools' dicts
    cdef bytearray got  # the response's bytes so far, when they came in more than one read
    cdef bytes method, target, request
    cdef bint counted, recorded
    cdef int step

    # --- the request ---------------------------------------------------------------

    def start(self):
        """The request to a backend of its route, on a pooled connection (else the general path's)."""
        if self.step != OPEN or self.reset:
            return
        backend = _pick(self.pool, _monotonic())
        if backend is None:
            self._hand(ROUTED, None)
            return
        upstream = take(self.parts, backend)
        if upstream is None:
            self._hand(ROUTED, backend)  # the general path connects
            return
        self.upstream = upstream
        self.backend = backend
        loop = self.loop
        watch(self.parts, upstream.fd, self, _IN)  # its mask in the pool: no system call
        if backend.failures or backend.down_until:
            backend.mark_ok()
        upstream.received = 0
        self.counted_route = self.pool.route.name
        backend.begin(self.counted_route)
        self.counted = True
        self.step = SENT
        arm(self.parts, <double>loop.now + self.engine.config.timeouts.response_head, self, self.timed)
        cdef bytes data = self.request
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef Py_ssize_t sent = send(<int>upstream.fd, PyBytes_AS_STRING(data), n, MSG_NOSIGNAL)
        if sent != n:  # the rest as the general path: it writes it, and sees the error if there was one
            self._hand(SENDING, data[sent if sent > 0 else 0:])

    # --- the response --------------------------------------------------------------

    def ready(self, int fd, int mask):
        """The backend's socket is ready: a response of the lane's kind, whole within READ_MAX bytes
        (in one read, or in a few kept in `got`), to the session; anything else to the general path."""
        if self.step != SENT:
            return
        cdef Py_ssize_t n = recv(fd, _buf, READ_MAX, 0)
        cdef int code = errno
        if n < 0 and (code == EAGAIN or code == EINTR):
            return
        got = self.got
        if n <= 0:  # an error, or the backend's close: the general path's (after what came before)
            if got is not None:
                self._hand(READ, (bytes(got), 0))
            else:
                self._hand(READ, (None, code) if n < 0 else (b"", 0))
            return
        cdef const char* p = _buf
        cdef Py_ssize_t size = n
        if got is not None:
            got += PyBytes_FromStringAndSize(_buf, n)
            p = PyByteArray_AS_STRING(got)
            size = PyByteArray_GET_SIZE(got)
        cdef const char* blank = <const char*>memmem(p, size, b"\r\n\r\n", 4)
        if self.engine.gateway.draining or (blank == NULL and size >= READ_MAX):
            self._hand(READ, (PyBytes_FromStringAndSize(p, size), 0))
            return
        if blank == NULL:
            self._hold(p, size)  # the head in parts
            return
        cdef Py_ssize_t end = blank - p + 4
        cdef LaneResponse lane
        block = response_packed(<const unsigned char*>p, end, self.mux.response_extra, &lane)
        if block is None or lane.size < size - end or end + lane.size > READ_MAX:
            # Not of the lane's kind, bytes past its body, or a body past what the cycle keeps.
            self._hand(READ, (PyBytes_FromStringAndSize(p, size), 0))
            return
        if lane.size > size - end:  # the body in parts: every byte of it is progress
            self._hold(p, size)
            loop = self.loop
            arm(self.parts, <double>loop.now + self.engine.config.timeouts.body_idle, self, self.timed)
            return
        self.upstream.received += size
        self._respond(lane.status, lane.size, lane.keep, block, lane.count,
                      PyBytes_FromStringAndSize(p + end, lane.size) if lane.size else b"")

    cdef _hold(self, const char* p, Py_ssize_t size):
        """What came of the response so far, kept for the next read (in `got`)."""
        if self.got is None:
            self.got = PyByteArray_FromStringAndSize(p, size)

    cdef _respond(self, int status, Py_ssize_t length, bint keep, bytes block, Py_ssize_t count, bytes body):
        """The whole response to the session; the stream ends once its bytes are out."""
        self._backend_done(keep)
        self.got = None
        self.step = DONE
        mux = self.mux
        session = mux.conn
        stream_id = self.stream_id
        try:
            session.respond_packed(stream_id, block, count, not length)
            if length:
                session.send_data(stream_id, body, end_stream=True)
        except StreamClosed:  # the session has the stream no more: as the general path's abort
            self._record(status, length, True)
            self._end(INTERNAL_ERROR)
            return
        self._record(status, length, True)
        engine = self.engine
        engine.served += 1
        engine.cycled += 1
        mux.write()
        if self.step != DONE:  # the write found the client gone
            return
        if mux.backlogged or session.pending(stream_id):
            mux.blocked[stream_id] = self  # it ends once its bytes are out (unblocked())
            return
        self._end(-1, True)

    def unblocked(self):
        """The connection wrote what waited, this stream's bytes too: it ends."""
        if self.step == DONE:
            self._end(-1, True)

    def expired(self):
        """No response in time, or its body stalled: the general path's (504, the next backend, or
        the response it relays from what came)."""
        if self.step == SENT:
            if self.got is not None:
                self._hand(READ, (bytes(self.got), 0))
            else:
                self._hand(EXPIRED, None)

    def fail(self):
        """A handler raised (a bug, logged): this stream alone ends (the general path's, if it was
        handed over by then)."""
        if self.step == OVER:
            taken = self.mux.streams.get(self.stream_id)
            if taken is not None and taken is not self:
                taken.fail()
            return
        self._record(0, 0, False)
        self._end(INTERNAL_ERROR)

    # --- MuxStream ---------------------------------------------------------------------

    def data(self, data, flow):  # (never: the request ended on its HEADERS)
        raise AssertionError("DATA after END_STREAM is the session's to refuse")

    def end(self):  # (never, as data())
        raise AssertionError("the request ended on its HEADERS")

    def cancel(self, *, bint by_client):
        """The stream was reset (by the client, or as the connection ends): its exchange stops here."""
        if self.step == OVER:
            return
        self.reset = True
        self.by_client = by_client
        self._record(0, 0, False)
        self._end(-1)

    # --- the end, and the hand-over -------------------------------------------------------

    cdef _backend_done(self, bint keep):
        """The backend's part is over: its connection pooled (`keep`) or closed, its count ended."""
        upstream = self.upstream
        backend = upstream.backend
        if self.counted:
            self.counted = False
            backend.end(self.counted_route)
            backend.last_done = _monotonic()
        if keep:
            if backend.errors:
                backend.mark_answered()
            pool_keep(self.parts, upstream)
        else:
            upstream.close(self.loop)
        self.upstream = None  # (a bug above leaves it to _end, which closes it)

    cdef _record(self, int status, Py_ssize_t length, bint started):
        """The exchange on the gateway's record (once), as the general path's."""
        if self.recorded:
            return
        self.recorded = True
        gateway = self.engine.gateway
        if gateway.records():
            backend = self.backend
            gateway.record(self.mux.front.client_ip, Exchange(
                self.arrived, method=self.method, target=self.target, route=self.pool.route.name, status=status,
                bytes_out=length, backend="-" if backend is None else str(backend.address),
                response_started=started, protocol="HTTP/2"))

    cdef _end(self, long code, bint framed=False):
        """The stream is over (reset with `code` unless it is -1): the backend connection closed if it
        is still ours, and the mux told (`framed`: its last frames are written already)."""
        if self.step == OVER:
            return
        self.step = OVER
        mux = self.mux
        self._spare_timed()
        mux.blocked.pop(self.stream_id, None)
        if self.upstream is not None:
            self._backend_done(False)
        if code >= 0 and not self.reset:
            self.reset = True
            mux.conn.reset(self.stream_id, code)
        if framed:
            mux.stream_done(self)
        else:
            mux.leg_over(self)

    cdef _spare_timed(self):
        """The stream's deadline cancelled, its Timed left to the connection's next compiled stream
        (the entry it has in the heap serves that stream's later deadline: no push)."""
        timed = self.timed
        disarm(timed)
        self.mux.spare_timed.append(timed)

    cdef _hand(self, int kind, handed):
        """The general path goes on from here (mux.resume: _h2cycle.resume)."""
        deadline = self.timed.deadline
        self._spare_timed()
        self.step = OVER
        self.got = None
        upstream, self.upstream = self.upstream, None
        self.counted = False  # (the general path's count from here)
        self.mux.resume(self, kind, handed, upstream, deadline)


def response_fields(bytes head, list extra):
    """What the cycle gives the session for a backend's response head: (status, Content-Length,
    whether the connection is kept, the header list unpacked), or None (not the cycle's); for the
    test that the list is the general path's (protocol/_h2_head.response_fields)."""
    cdef LaneResponse lane
    block = response_packed(<const unsigned char*>PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head), extra, &lane)
    if block is None:
        return None
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(block)
    cdef uint32_t sizes[2]
    cdef Py_ssize_t at = 0, i
    fields = []
    for i in range(lane.count):
        memcpy(sizes, p + at, 8)
        at += 8
        fields.append((PyBytes_FromStringAndSize(<const char*>p + at, sizes[0]),
                       PyBytes_FromStringAndSize(<const char*>p + at + sizes[0], sizes[1])))
        at += sizes[0] + sizes[1]
    assert at == PyBytes_GET_SIZE(block)
    return lane.status, lane.size, lane.keep, fields
