# The compiled cycle's declarations (_cycle_c.pyx implements them): the
# fields of one client connection of the engine, typed, and the entry the
# loop's compiled batch (_dispatch_c.pyx) calls with no Python call. The
# cycle returns what came of a step: SERVED, or the kind of hand-over the
# connection carries out (NativeClient.resume; _cycle.py lists them).

cdef enum:  # what a step of the cycle comes to: _cycle.py's STEPS
    SERVED = 0  # nothing for the general path
    ROUTED = 1  # routed (handed: the backend, None when none was up); nothing sent
    SENDING = 2  # the backend took part of the request head (handed: the rest)
    READ = 3  # the request went out; a read of the response, or its error (handed: data, code, b"", True)
    LANE = 4  # a lane response went out in part (handed: data, code, unsent, started)
    READY = 5  # the general path's readiness, for the same descriptor and mask
    PARSE = 6  # the general path reads the head in inbuf
    ROUTE = 7  # the general path routes a checked head (handed: head, head_bytes, end)
    READ_AHEAD = 8  # the general path reads what the client sent after the request in flight
    CLOSE = 9  # the client closed, or the gateway drains: the connection closes


from ._route_c cimport LoopParts


cdef class ConnectionFields:
    cdef public object engine, front, done, result, timed, leg, head, pool
    cdef public object handed  # what comes with a hand-over (see the kinds above)
    cdef public object upstream, prefix, tls, counted_route, handshake, transport
    cdef public list extra  # fields the gateway adds to every response (HSTS): front.client.response_extra
    cdef public bytes head_bytes, client_ip_b
    cdef public bytearray inbuf, outbuf
    cdef public int fd, state
    cdef public Py_ssize_t lane_left
    cdef public bint started, counted, reading, eof, lane_keep, fast
    cdef public bint http2  # a plain connection that read no head yet: the HTTP/2 preface may start it
    cdef public double arrived
    # A lane response whose body comes in later reads (lane_left >= 0 in FAST): its status, the body
    # bytes written so far and its length.
    cdef public int status
    cdef public Py_ssize_t body_out, body_length
    # The configuration, read once (it is frozen): engine.config's and engine.gateway's.
    cdef object gateway, loop, pools, limits, epoll
    cdef dict masks, handlers, idle, by_fd  # the loop's and the pools'
    cdef LoopParts parts  # the same, for _route_c's watch, take and keep
    cdef bytes target  # the routed request's target (head.target, when there is a head)
    cdef Py_ssize_t max_target, max_headers, max_header_bytes
    cdef double request_head_timeout, keepalive_timeout, response_head_timeout, body_idle_timeout
    cdef Py_ssize_t max_idle_upstream
    cdef bint allow_underscores


cdef int ready_c(ConnectionFields c, int fd, int mask) except -1
