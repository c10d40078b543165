# The byte classes both compiled modules use, defined once in _bytes.h.

cdef extern from "_bytes.h":
    const unsigned char FR_TCHAR[256]
    const unsigned char FR_UNRESERVED[256]
    const unsigned char FR_HEXVAL[256]
    unsigned char FR_NOT_HEX


cdef inline bint is_control(unsigned char c):
    """A control byte a field value must not hold (all but horizontal tab, RFC 9110 section 5.5)."""
    return (c < 0x20 and c != 0x09) or c == 0x7F


cdef inline unsigned char lower(unsigned char c) noexcept:
    """An ASCII letter in lowercase; any other byte as it is."""
    return c + 32 if 65 <= c <= 90 else c


cdef inline bint named(const unsigned char* p, Py_ssize_t n, const char* lower_name, Py_ssize_t size) noexcept:
    """The bytes p[:n] spell lower_name, in any case."""
    cdef Py_ssize_t i
    if n != size:
        return False
    for i in range(n):
        if lower(p[i]) != <unsigned char>lower_name[i]:
            return False
    return True


cdef inline bint space(unsigned char c) noexcept:
    """A space or a horizontal tab (RFC 9110's OWS)."""
    return c == 32 or c == 9
