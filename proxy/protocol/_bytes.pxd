# The byte classes both compiled modules use, defined once in _bytes.h.

cdef extern from "_bytes.h":
    const unsigned char FR_TCHAR[256]
    const unsigned char FR_UNRESERVED[256]
    const unsigned char FR_HEXVAL[256]
    unsigned char FR_NOT_HEX


cdef inline bint is_control(unsigned char c):
    """A control byte a field value must not hold (all but horizontal tab, RFC 9110 section 5.5)."""
    return (c < 0x20 and c != 0x09) or c == 0x7F
