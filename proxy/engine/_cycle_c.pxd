# The compiled cycle's class (_cycle_c.pyx implements it): the state of one
# client connection of the engine, typed, and the cycle's steps. The loop's
# compiled batch (_dispatch_c.pyx) calls a cycle's readiness through it
# with no Python call.

from ..protocol._plain_c cimport Plain


cdef class Cycle:
    cdef public object engine, front, done, result, timed, leg, head, pool
    cdef public object upstream, prefix, tls, counted_route, handshake, transport
    cdef public list extra  # fields the gateway adds to every response (HSTS): front.client.response_extra
    cdef public bytes head_bytes, client_ip_b
    cdef public bytearray inbuf, outbuf
    cdef public int fd, state
    cdef public Py_ssize_t lane_left
    cdef public bint started, counted, reading, eof, lane_keep, fast
    cdef public double arrived
    # A lane response whose body comes in later reads (lane_left >= 0 in FAST): its status, the body
    # bytes written so far and its length.
    cdef public int status
    cdef public Py_ssize_t body_out, body_length
    # The configuration, read once (it is frozen): engine.config's and engine.gateway's.
    cdef object gateway, loop, pools, limits, epoll
    cdef dict masks, handlers, idle, by_fd  # the loop's and the pools' (see _watch, _take and _keep)
    cdef bytes target  # the routed request's target (head.target, when there is a head)
    cdef Py_ssize_t max_target, max_headers, max_header_bytes
    cdef double request_head_timeout, keepalive_timeout, response_head_timeout, body_idle_timeout
    cdef Py_ssize_t max_idle_upstream
    cdef bint allow_underscores

    cdef void _ready_c(self, int fd, int mask) except *
    cdef void _read_head_fast(self) except *
    cdef void _parse_fast(self) except *
    cdef void _send_fast(self, upstream, backend, const Plain* plain) except *
    cdef void _read_response_fast(self, upstream) except *
    cdef Py_ssize_t _send_lane(self, bytes head, Py_ssize_t end, Py_ssize_t n) except -2
    cdef void _body_fast(self, upstream, Py_ssize_t n) except *
    cdef void _lane_over(self, int status, bint keep, Py_ssize_t body, Py_ssize_t left, bytes unsent,
                         bint started) except *
    cdef void _finish_fast(self, upstream, int status, Py_ssize_t length, bint keep) except *
    cdef void _watch(self, int fd, handler, int mask) except *
    cdef object _take(self, backend)
    cdef void _keep(self, upstream) except *
    cdef void _deadline(self, double seconds) except *
