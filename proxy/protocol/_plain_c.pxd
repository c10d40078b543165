# What the engine's cycle (_cycle_c.pyx) reads of _plain_c.pyx without a Python call: a plain
# request head read once into offsets, and its upstream head written from them.

cdef enum:
    PLAIN_MAX_FIELDS = 64  # a head with more fields is not plain (it goes to check_head)

cdef struct Plain:
    Py_ssize_t method_end, target_start, target_end, host_start, host_end, fields
    Py_ssize_t name_start[PLAIN_MAX_FIELDS]
    Py_ssize_t name_end[PLAIN_MAX_FIELDS]
    Py_ssize_t value_start[PLAIN_MAX_FIELDS]
    Py_ssize_t value_end[PLAIN_MAX_FIELDS]
    bint dropped[PLAIN_MAX_FIELDS]  # Connection: keep-alive, which the rewrite drops

cdef bint scan_plain(const unsigned char* p, Py_ssize_t n, Py_ssize_t max_target, Py_ssize_t max_headers,
                     Py_ssize_t max_header_bytes, Plain* out) noexcept
cdef bytes write_plain(const unsigned char* p, const Plain* plain, bytes target, bytes client_ip, bytes prefix,
                       bint secure, bytes via=*)
