/* The byte classes of HTTP/1.1, one definition for the compiled head checks
 * (_head_c.pyx) and wire functions (_wire_c.pyx); declared for Cython in
 * _bytes.pxd. The pure-Python twins (_head.py, _wire.py) say the same with
 * regular expressions.
 *
 * Range designators ([a ... b]) and overriding designators are GCC and Clang
 * extensions; both compilers build this project.
 */
#ifndef FASTROUTE_BYTES_H
#define FASTROUTE_BYTES_H

/* RFC 9110 section 5.6.2: tchar, the bytes of a token (a method, a field name). */
static const unsigned char FR_TCHAR[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/* RFC 3986 section 2.3: unreserved, the bytes a path never needs to escape. */
static const unsigned char FR_UNRESERVED[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

/* The value of a hex digit, or FR_NOT_HEX. */
#define FR_NOT_HEX 255
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
static const unsigned char FR_HEXVAL[256] = {
    [0 ... 255] = FR_NOT_HEX,
    ['0'] = 0, ['1'] = 1, ['2'] = 2, ['3'] = 3, ['4'] = 4, ['5'] = 5, ['6'] = 6, ['7'] = 7, ['8'] = 8, ['9'] = 9,
    ['A'] = 10, ['B'] = 11, ['C'] = 12, ['D'] = 13, ['E'] = 14, ['F'] = 15,
    ['a'] = 10, ['b'] = 11, ['c'] = 12, ['d'] = 13, ['e'] = 14, ['f'] = 15,
};
#pragma GCC diagnostic pop

#endif
