# cython: language_level=3, boundscheck=False, wraparound=False
# The compiled cycles' routing (_cycle_c.pyx and _h2cycle_c.pyx cimport
# these): where a whole head ends, whether a checked head asks for nothing
# but a forward, decide()'s Forward (forward_of), and Pool.pick, compiled;
# and the loop's interest and the pools' take and keep (Loop.watch,
# Pools.take and Pools.keep: the same steps over the same dicts, without an
# interpreted frame per call). Each is the general path's step, made
# stricter where that is simpler; tests compare them with decide(),
# Pool.pick, Loop.watch and the Pools (tests/proxy/engine/test_cycle.py).

from ._sys cimport memchr, memmem

from ..protocol._head import LINE_SLACK
from ..routing._pool import IDLE_UPSTREAM_MAX_AGE
from ._sys cimport CLOCK_MONOTONIC, EPOLLIN, EPOLLRDHUP, clock_gettime, timespec

cdef double _MAX_AGE = IDLE_UPSTREAM_MAX_AGE
cdef int _IDLE = EPOLLIN | EPOLLRDHUP  # _upstream.IDLE_MASK


cdef inline double _monotonic() noexcept:
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + now.tv_nsec * 1e-9


cdef Py_ssize_t _head_end(const char* p, Py_ssize_t n, object limits) except -2:
    """Where a head whole in p[:n] ends (the index after its blank line), when _head.find_head would say
    so and check nothing else; -1 for anything else (an incomplete head, one over a limit, TLS, HTTP/2,
    empty lines first): the general path's find_head then reads it."""
    if n == 0 or p[0] == 13 or p[0] == 10 or p[0] == 0x16:
        return -1
    if n >= 14 and memcmp_pri(p):
        return -1
    cdef const char* blank = <const char*>memmem(p, n, b"\r\n\r\n", 4)
    if blank == NULL:
        return -1
    cdef Py_ssize_t end = blank - p + 4
    cdef Py_ssize_t max_target = limits.max_target
    if end > max_target + <Py_ssize_t>limits.max_header_bytes + LINE_SLACK:
        return -1
    cdef const char* newline = <const char*>memchr(p, 10, n)
    cdef Py_ssize_t first_line = newline - p
    if first_line > max_target + LINE_SLACK:
        return -1
    cdef Py_ssize_t i, spaces = 0
    for i in range(first_line):
        if p[i] == 32:
            spaces += 1
    if spaces < 2:
        return -1
    return end


cdef inline bint memcmp_pri(const char* p) noexcept:
    cdef const char* pri = b"PRI * HTTP/2.0"
    cdef int i
    for i in range(14):
        if p[i] != pri[i]:
            return False
    return True


cdef bint _plain(object head):
    """The head asks for nothing but a forward on a kept-alive connection: HTTP/1.1, not HEAD, not
    OPTIONS *, no body, no upgrade, no Connection but keep-alive, no Expect (the general path's
    conditions for the lane, made stricter where that is simpler)."""
    if head.version != b"1.1" or head.method == b"HEAD" or head.target == b"*":
        return False
    cdef tuple field
    cdef bytes name
    for field in head.headers:
        name = field[0]
        if name == b"content-length" or name == b"transfer-encoding" or name == b"upgrade" or name == b"expect":
            return False
        if name == b"connection" and (<bytes>field[1]).lower() != b"keep-alive":
            return False
    return True


cdef object _pick(pool, double now):
    """Pool.pick(now), compiled: the up backend with the fewest outstanding requests, from next_index on."""
    cdef tuple backends = pool.backends
    cdef Py_ssize_t count = len(backends), start = pool.next_index, offset
    best = None
    cdef long best_outstanding = 0, outstanding
    for offset in range(count):
        backend = backends[(start + offset) % count]
        if now < <double>backend.down_until:
            continue
        outstanding = backend.outstanding
        if best is None or outstanding < best_outstanding:
            best = backend
            best_outstanding = outstanding
    pool.next_index = (start + 1) % count if count else 0
    return best


def pick(pool, double now):
    """_pick, for the test that it is Pool.pick."""
    return _pick(pool, now)


def forward_of(table, host, bytes target):
    """decide()'s Forward for `target` on `host` as (prefix, pool), or None where decide() says anything else."""
    found = table.lookup(host, target)
    if found is None:
        return None
    prefix, pool = found
    if not pool.backends:
        return None
    route = pool.route
    if route.strip_prefix and prefix != "/" and target.partition(b"?")[0] == (<str>prefix).encode("utf-8"):
        return None  # decide() redirects it (slash_redirect)
    return found


cdef class LoopParts:
    """What the compiled steps read of the engine's loop and pools (their dicts, shared)."""

    def __init__(self, engine):
        loop = engine.loop
        self.loop = loop
        self.epoll = loop._epoll
        self.masks = loop._masks
        self.handlers = loop._handlers
        self.pools = engine.pools
        self.idle = engine.pools._idle
        self.by_fd = engine.pools._by_fd
        self.max_idle_upstream = engine.config.limits.max_idle_upstream


cdef LoopParts loop_parts(engine):
    """The engine's LoopParts, made once."""
    parts = getattr(engine, "loop_parts", None)
    if parts is None:
        parts = LoopParts(engine)
        engine.loop_parts = parts
    return <LoopParts>parts


cdef void watch(LoopParts parts, int fd, handler, int mask) except *:
    """Loop.watch."""
    known = parts.masks.get(fd)
    if known is None:
        parts.epoll.register(fd, mask)
    elif <int>known != mask:
        parts.epoll.modify(fd, mask)
    parts.masks[fd] = mask
    parts.handlers[fd] = handler


cdef object take(LoopParts parts, backend):
    """Pools.take."""
    cdef list idle = parts.idle.get(backend)
    cdef double now = _monotonic()
    while idle:
        upstream = idle.pop()
        del parts.by_fd[upstream.fd]
        if now - <double>upstream.idle_since < _MAX_AGE:
            upstream.reused = True
            return upstream
        upstream.close(parts.loop)
    return None


cdef void keep(LoopParts parts, upstream) except *:
    """Pools.keep, with --max-idle-upstream."""
    backend = upstream.backend
    cdef list idle = parts.idle.get(backend)
    if idle is None:
        idle = parts.idle.setdefault(backend, [])
    if backend.retired or len(idle) >= parts.max_idle_upstream:
        upstream.close(parts.loop)
        return
    upstream.idle_since = _monotonic()
    idle.append(upstream)
    parts.by_fd[upstream.fd] = upstream
    watch(parts, upstream.fd, parts.pools, _IDLE)


cdef void arm(LoopParts parts, double deadline, handler, timed) except *:
    """Loop.at, with no Python call while the Timed has an entry in the heap at or before `deadline`
    (a deadline moved later, or a Timed used again: the entry is pushed again when it comes due)."""
    queued = timed.queued
    if queued is not None and deadline >= <double>queued:
        timed.deadline = deadline
        timed.handler = handler
    else:
        parts.loop.at(deadline, handler, timed)


cdef void disarm(timed) except *:
    """Loop.cancel."""
    timed.deadline = None
    timed.handler = None
