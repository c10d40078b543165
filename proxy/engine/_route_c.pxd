# What the compiled cycles (_cycle_c.pyx, _h2cycle_c.pyx) call of _route_c.pyx without a Python call.

cdef Py_ssize_t _head_end(const char* p, Py_ssize_t n, object limits) except -2
cdef bint _plain(object head)
cdef object _pick(pool, double now)


cdef class LoopParts:
    cdef object loop, epoll, pools
    cdef dict masks, handlers, idle, by_fd
    cdef Py_ssize_t max_idle_upstream

cdef LoopParts loop_parts(engine)
cdef void watch(LoopParts parts, int fd, handler, int mask) except *
cdef object take(LoopParts parts, backend)
cdef void keep(LoopParts parts, upstream) except *
cdef void arm(LoopParts parts, double deadline, handler, timed) except *
cdef void disarm(timed) except *
