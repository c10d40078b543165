# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
#
# The compiled route table: same class API and same answers as
# fastroute._table_py.PyRouteTable, which is the specification; read that
# first.
#
# Layout: nodes are numbered, 0 is the root. Every edge (parent node, segment
# bytes) -> child lives in one open-addressing hash table of C structs, keyed
# by an FNV-1a hash of the segment seeded with the parent's number, with the
# segment bytes kept in one shared buffer. A lookup scans the path once,
# hashing each segment as it goes, probes the table, and compares bytes with
# memcmp: no Python object is created on a hit or a miss for an ASCII str or a
# bytes path. Results are the (prefix, value) tuples, built once at
# construction. The arrays are sized up front from the keys (a key's "/"
# count bounds its segments) and never change after __cinit__.

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from ._hosts import group_by_host, normalise_host, normalise_host_routes, request_host, wildcard_suffix
from ._keys import normalise_prefix, normalise_routes

cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    char* PyBytes_AS_STRING(object o)
    Py_ssize_t PyBytes_GET_SIZE(object o)
    bytes PyBytes_FromStringAndSize(const char* s, Py_ssize_t n)

cdef extern from *:
    """
    #define FR_FNV_OFFSET 14695981039346656037ULL
    #define FR_FNV_PRIME 1099511628211ULL
    #define FR_SEED_PRIME 0x9E3779B97F4A7C15ULL
    """
    const uint64_t FNV_OFFSET "FR_FNV_OFFSET"
    const uint64_t FNV_PRIME "FR_FNV_PRIME"
    const uint64_t SEED_PRIME "FR_SEED_PRIME"

ctypedef struct Edge:
    uint64_t hash
    int32_t parent      # -1: empty slot
    int32_t child
    uint32_t offset     # of the segment in the shared buffer
    uint32_t length


cdef inline uint64_t _seed(int32_t parent) nogil:
    return FNV_OFFSET ^ (<uint64_t>parent * SEED_PRIME)


cdef class RouteTable:
    """An immutable longest-prefix route table over path segments (compiled).

    Args:
        routes: a mapping of prefix ("/steve/foo", "/") to any value, or an
            iterable of (prefix, value) pairs. It is copied.

    Raises:
        TypeError: a prefix is not a str.
        fastroute.InvalidPrefix: a prefix is invalid or given twice.
    """

    cdef dict _routes
    cdef list _results             # (prefix, value) tuples, indexed by node_result
    cdef unsigned char* _buffer    # every edge's segment bytes, back to back
    cdef uint32_t _buffer_used
    cdef Edge* _edges
    cdef uint64_t _mask
    cdef int32_t* _node_result     # per node: index into _results, or -1
    cdef int32_t* _node_children   # per node: number of children
    cdef int32_t _node_count

    def __cinit__(self, routes=()):
        self._routes = normalise_routes(routes)
        self._results = list(self._routes.items())
        # Valid keys hold no lone surrogates, so plain UTF-8 always works.
        cdef list encoded = [prefix.encode("utf-8") for prefix in self._routes]
        # Every segment of a key follows one of its "/", so the number of
        # "/" bounds the number of edges (and nodes, less the root).
        cdef Py_ssize_t total_bytes = 0, total_slashes = 0
        cdef bytes key
        for key in encoded:
            total_bytes += len(key)
            total_slashes += key.count(b"/")
        if total_bytes >= 0x7FFFFFFF:
            raise OverflowError("route prefixes too long in total for one table")
        cdef uint64_t slots = 8
        while slots < 2 * <uint64_t>total_slashes:
            slots *= 2
        self._mask = slots - 1
        self._edges = <Edge*>PyMem_Malloc(slots * sizeof(Edge))
        self._buffer = <unsigned char*>PyMem_Malloc(total_bytes + 1)
        self._node_result = <int32_t*>PyMem_Malloc((total_slashes + 1) * sizeof(int32_t))
        self._node_children = <int32_t*>PyMem_Malloc((total_slashes + 1) * sizeof(int32_t))
        if not (self._edges and self._buffer and self._node_result and self._node_children):
            raise MemoryError()
        cdef uint64_t slot
        for slot in range(slots):
            self._edges[slot].parent = -1
        self._node_count = 1
        self._node_result[0] = -1
        self._node_children[0] = 0
        cdef Py_ssize_t index
        for index in range(len(encoded)):
            self._insert(<const unsigned char*>PyBytes_AS_STRING(encoded[index]),
                         PyBytes_GET_SIZE(encoded[index]), <int32_t>index)

    def __dealloc__(self):
        PyMem_Free(self._edges)
        PyMem_Free(self._buffer)
        PyMem_Free(self._node_result)
        PyMem_Free(self._node_children)

    cdef void _insert(self, const unsigned char* s, Py_ssize_t n, int32_t result) noexcept:
        # Walks a valid normalised key ("/" or "/seg/..."), adding the edges it
        # lacks, and marks its last node with `result`.
        cdef int32_t node = 0, child
        cdef Py_ssize_t i = 1, start
        cdef uint64_t h, slot
        if n > 1:
            while True:
                start = i
                h = _seed(node)
                while i < n and s[i] != b'/':
                    h = (h ^ s[i]) * FNV_PRIME
                    i += 1
                child = self._child(node, h, s + start, i - start)
                if child == -1:
                    child = self._node_count
                    self._node_count += 1
                    self._node_result[child] = -1
                    self._node_children[child] = 0
                    self._node_children[node] += 1
                    slot = h & self._mask
                    while self._edges[slot].parent != -1:
                        slot = (slot + 1) & self._mask
                    self._edges[slot].hash = h
                    self._edges[slot].parent = node
                    self._edges[slot].child = child
                    self._edges[slot].offset = self._buffer_used
                    self._edges[slot].length = <uint32_t>(i - start)
                    memcpy(self._buffer + self._buffer_used, s + start, i - start)
                    self._buffer_used += <uint32_t>(i - start)
                node = child
                if i >= n:
                    break
                i += 1
        self._node_result[node] = result

    cdef inline int32_t _child(self, int32_t parent, uint64_t h,
                               const unsigned char* s, Py_ssize_t n) noexcept nogil:
        cdef uint64_t slot = h & self._mask
        cdef Edge* edge
        while True:
            edge = &self._edges[slot]
            if edge.parent == -1:
                return -1
            if (edge.hash == h and edge.parent == parent and edge.length == n
                    and memcmp(self._buffer + edge.offset, s, n) == 0):
                return edge.child
            slot = (slot + 1) & self._mask

    cdef int32_t _walk(self, const unsigned char* s, Py_ssize_t n) noexcept nogil:
        # Returns the index of the best result, or -1.
        if n == 0 or s[0] != b'/':
            return -1
        cdef int32_t node = 0
        cdef int32_t best = self._node_result[0]
        cdef Py_ssize_t i = 1, start
        cdef uint64_t h
        cdef unsigned char c
        while self._node_children[node]:
            start = i
            h = _seed(node)
            while i < n:
                c = s[i]
                if c == b'/' or c == b'?' or c == b'#':
                    break
                h = (h ^ c) * FNV_PRIME
                i += 1
            node = self._child(node, h, s + start, i - start)
            if node == -1:
                break
            if self._node_result[node] != -1:
                best = self._node_result[node]
            if i >= n or s[i] != b'/':
                break
            i += 1
        return best

    cpdef lookup(self, path):
        """Find the longest prefix that matches `path` on whole segments.

        Args:
            path: a request path or target (str or bytes), optionally with a
                query string and fragment: "/steve/foo/x?q=1".

        Returns:
            (prefix, value) for the longest matching prefix, or None.

        Raises:
            TypeError: `path` is neither str nor bytes.
        """
        cdef int32_t best
        cdef bytes raw
        if type(path) is bytes or isinstance(path, bytes):
            best = self._walk(<const unsigned char*>PyBytes_AS_STRING(path),
                              PyBytes_GET_SIZE(path))
        elif isinstance(path, str):
            if PyUnicode_IS_COMPACT_ASCII(path):
                best = self._walk(<const unsigned char*>PyUnicode_DATA(path),
                                  PyUnicode_GET_LENGTH(path))
            else:
                raw = (<str>path).encode("utf-8", "surrogatepass")
                best = self._walk(<const unsigned char*>PyBytes_AS_STRING(raw),
                                  PyBytes_GET_SIZE(raw))
        else:
            raise TypeError(f"path must be str or bytes, not {type(path).__name__}")
        if best == -1:
            return None
        return self._results[best]

    def routes(self):
        """A new dict of every normalised prefix and its value."""
        return dict(self._routes)

    def __len__(self):
        return len(self._routes)

    def __contains__(self, prefix):
        if isinstance(prefix, bytes):
            try:
                prefix = prefix.decode("utf-8")
            except UnicodeDecodeError:
                return False
        try:
            return normalise_prefix(prefix) in self._routes
        except (TypeError, ValueError):
            return False

    def __iter__(self):
        return iter(list(self._routes))

    def __reduce__(self):
        return (type(self), (self._routes,))

    def __repr__(self):
        return f"{type(self).__name__}({self._routes!r})"


# --- the host table (the specification is _hosttable_py.PyHostTable) ------------

cdef enum:
    HOST_MAX = 1024  # bytes of a request host lowercased on the stack (a longer one takes the twin's steps)


cdef class HostTable:
    """An immutable route table by host name, then longest path prefix (compiled).

    Args:
        routes: a mapping of (host or None, prefix) to any value, or an
            iterable of such pairs. It is copied.

    Raises:
        TypeError: a key is not a (host or None, prefix) pair of str.
        fastroute.InvalidHost, fastroute.InvalidPrefix: a part of a key is
            invalid, or two keys normalise alike.
    """

    cdef dict _routes
    cdef dict _exact  # request host (bytes) -> RouteTable
    cdef dict _wild   # wildcard suffix (bytes) -> RouteTable
    cdef RouteTable _anywhere
    cdef bint _hosts  # any host-specific route at all

    def __cinit__(self, routes=()):
        self._routes = normalise_host_routes(routes)
        exact, wild, anywhere = group_by_host(self._routes)
        self._exact = {host: RouteTable(group) for host, group in exact.items()}
        self._wild = {suffix: RouteTable(group) for suffix, group in wild.items()}
        self._anywhere = RouteTable(anywhere)
        self._hosts = bool(self._exact) or bool(self._wild)

    cpdef lookup(self, host, path):
        """The route for a request to `host` (its Host header as sent, port and all; None: none sent).

        Returns:
            (prefix, value) of the route that serves `path` on `host`, or None.

        Raises:
            TypeError: `path` is neither str nor bytes.
        """
        cdef unsigned char key[HOST_MAX]
        cdef const unsigned char* p
        cdef Py_ssize_t n, i, end, dot
        cdef bytes raw
        cdef unsigned char c
        if self._hosts and host is not None:
            if isinstance(host, bytes):
                raw = host
            elif isinstance(host, str):
                raw = (<str>host).encode("utf-8", "surrogatepass")
            else:
                raise TypeError(f"host must be bytes, str or None, not {type(host).__name__}")
            p = <const unsigned char*>PyBytes_AS_STRING(raw)
            n = PyBytes_GET_SIZE(raw)
            # _hosts.request_host: up to the port (a bracketed literal whole), lowercase, one trailing dot off.
            end = n
            if n and p[0] == b'[':
                for i in range(n):
                    if p[i] == b']':
                        end = i + 1
                        break
            else:
                for i in range(n - 1, -1, -1):
                    if p[i] == b':':
                        end = i
                        break
            if end and p[end - 1] == b'.':
                end -= 1
            if end > HOST_MAX:
                return self._long(raw, path)
            if end > 0:
                dot = -1
                for i in range(end):
                    c = p[i]
                    key[i] = c + 32 if 65 <= c <= 90 else c
                    if c == b'.' and dot == -1:
                        dot = i
                found = self._in(self._exact, key, end, path)
                if found is not None:
                    return found
                # _hosts.wildcard_suffix: the host less its first label (not a literal, not empty).
                if dot > 0 and dot < end - 1 and key[0] != b'[':
                    found = self._in(self._wild, key + dot + 1, end - dot - 1, path)
                    if found is not None:
                        return found
        return self._anywhere.lookup(path)

    cdef object _long(self, bytes raw, path):
        """lookup() for a host too long for the stack, with the twin's steps."""
        key = request_host(raw)
        table = self._exact.get(key)
        if table is not None:
            found = (<RouteTable>table).lookup(path)
            if found is not None:
                return found
        suffix = wildcard_suffix(key)
        table = None if suffix is None else self._wild.get(suffix)
        if table is not None:
            found = (<RouteTable>table).lookup(path)
            if found is not None:
                return found
        return self._anywhere.lookup(path)

    cdef object _in(self, dict tables, const unsigned char* key, Py_ssize_t n, path):
        if not tables:
            return None
        table = tables.get(PyBytes_FromStringAndSize(<const char*>key, n))
        if table is None:
            return None
        return (<RouteTable>table).lookup(path)

    @property
    def by_host(self):
        """Whether any route names a host (else lookup() never reads the host)."""
        return self._hosts

    def routes(self):
        """A new dict of every normalised (host, prefix) and its value."""
        return dict(self._routes)

    def __len__(self):
        return len(self._routes)

    def __contains__(self, key):
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        try:
            pair = (None if key[0] is None else normalise_host(key[0]), normalise_prefix(key[1]))
        except (TypeError, ValueError):
            return False
        return pair in self._routes

    def __iter__(self):
        return iter(list(self._routes))

    def __reduce__(self):
        return (type(self), (self._routes,))

    def __repr__(self):
        return f"{type(self).__name__}({self._routes!r})"
