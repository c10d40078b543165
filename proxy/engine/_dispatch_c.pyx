# cython: language_level=3, boundscheck=False, wraparound=False
# The engine loop's batch, compiled (_loop.py's _dispatch and
# _wait_dispatch, _idle.py's _poll_pair are the twins): each ready
# descriptor's handler once, a client connection's readiness through the
# compiled cycle (_cycle_c.pxd) as a C call, its hand-over if the cycle
# returns one, and any other handler's as a Python call; the waits
# without the GIL.

from libc.math cimport ceil

from ._cycle_c cimport SERVED, ConnectionFields, ready_c
from ._sys cimport EINTR, POLLIN, epoll_event, epoll_wait, errno, poll, pollfd

cdef enum:
    MAX_EVENTS = 512  # as _loop.MAX_EVENTS

cdef epoll_event _events[MAX_EVENTS]
BATCH = MAX_EVENTS  # for the test that it is _loop.MAX_EVENTS


def dispatch(epoll, dict handlers, failed):
    """_loop.dispatch, compiled: a client connection's readiness is the cycle's C call first."""
    cdef int n = epoll_wait(epoll.fileno(), _events, MAX_EVENTS, 0)
    if n < 0:
        if errno == EINTR:
            return 0
        raise OSError(errno, "epoll_wait failed")
    _handle(n, handlers, failed, -1)
    return n


def wait_dispatch(epoll, dict handlers, failed, int trio_fd, double timeout, tick):
    """_loop._wait_dispatch, compiled: the wait without the GIL, then each ready handler as dispatch."""
    cdef int epoll_fd = epoll.fileno()
    cdef int ms = <int>ceil(timeout * 1000.0) if timeout < 86400.0 else 86400000
    cdef int n, error
    with nogil:
        n = epoll_wait(epoll_fd, _events, MAX_EVENTS, ms if ms > 0 else 0)
        error = errno
    tick()
    if n < 0:
        if error == EINTR:
            return 0
        raise OSError(error, "epoll_wait failed")
    if n == 0:
        return 0
    return 2 if _handle(n, handlers, failed, trio_fd) else 1


cdef bint _handle(int n, dict handlers, failed, int trio_fd):
    """Each of the first `n` events' handler once; true when `trio_fd` was among them."""
    cdef int i, fd, mask, kind
    cdef bint trios = False
    for i in range(n):
        fd = _events[i].data.fd
        if fd == trio_fd:
            trios = True
            continue
        mask = _events[i].events
        handler = handlers.get(fd)
        if handler is None:
            continue
        try:
            if isinstance(handler, ConnectionFields):
                kind = ready_c(<ConnectionFields>handler, fd, mask)
                if kind != SERVED:
                    handler.resume(kind, fd, mask)  # as NativeClient.ready
            else:
                handler.ready(fd, mask)
        except Exception:
            failed(handler)
    return trios


cdef enum:
    MAX_POLLED = 64  # descriptors poll_pair watches: the engines of one trio run, and trio's


def poll_pair(list fds, int trio_fd, double timeout):
    """_idle._poll_pair, without the GIL: up to `timeout` seconds for one of `fds` or `trio_fd` to be
    readable; TRIOS (2) when `trio_fd` is, OURS (1) when one of `fds` alone is, IDLE (0) when none or
    a signal came."""
    cdef pollfd polled[MAX_POLLED]
    cdef Py_ssize_t count = len(fds), i
    if count >= MAX_POLLED:
        raise ValueError(f"{count} engine loops in one trio run: poll_pair watches {MAX_POLLED - 1} at most")
    for i in range(count):
        polled[i].fd = fds[i]
        polled[i].events = POLLIN
        polled[i].revents = 0
    polled[count].fd = trio_fd
    polled[count].events = POLLIN
    polled[count].revents = 0
    cdef int ms = <int>ceil(timeout * 1000.0) if timeout < 86400.0 else 86400000
    cdef int n
    with nogil:
        n = poll(polled, count + 1, ms if ms > 0 else 0)
    if n <= 0:
        return 0
    if polled[count].revents:
        return 2
    return 1
