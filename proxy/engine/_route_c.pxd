# What the compiled cycle (_cycle_c.pyx) calls of _route_c.pyx without a Python call.

cdef Py_ssize_t _head_end(const char* p, Py_ssize_t n, object limits) except -2
cdef bint _plain(object head)
cdef object _pick(pool, double now)
