# The native engine's backend connections: a non-blocking socket with the
# fast connection (CLIENT role) on it, and the pool of idle ones per backend.
#
# Rules:
# - an idle pooled connection stays in the epoll set; anything it becomes
#   ready for (EOF, bytes nobody asked for, an error) closes it at once, so
#   a connection taken from the pool needs no liveness check;
# - a connection is pooled only after an exchange that ended cleanly on both
#   sides with nothing left over, to a backend still in some route, while
#   its pool has room (--max-idle-upstream); IDLE_UPSTREAM_MAX_AGE as the
#   trio path.

from __future__ import annotations

import select
import socket
import time

from .._config import Address
from ..protocol._events import DONE
from ..protocol._fastconn import FastConnection
from ..routing._pool import IDLE_UPSTREAM_MAX_AGE, UPSTREAM_MAX_INCOMPLETE_EVENT, BackendState
from ._loop import Loop

__all__ = ["IDLE_MASK", "READ_MAX", "Pools", "Upstream", "connect", "read", "socket_error", "write"]

IDLE_MASK = select.EPOLLIN | select.EPOLLRDHUP  # an idle connection: anything at all closes it


class Upstream:
    """One backend connection of the engine."""

    __slots__ = ("sock", "fd", "conn", "backend", "reused", "idle_since", "pending", "received")

    def __init__(self, sock: socket.socket, backend: BackendState) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.conn = FastConnection.client(max_head=UPSTREAM_MAX_INCOMPLETE_EVENT)
        self.backend = backend
        self.reused = False
        self.idle_since = 0.0
        self.pending = b""  # request bytes not written yet
        self.received = 0  # bytes of the response in flight (0: a pooled connection may be stale)

    def close(self, loop: Loop) -> None:
        loop.forget(self.fd)
        self.sock.close()


def connect(backend: BackendState) -> tuple[Upstream, int]:
    """Start a non-blocking connect to `backend`: (the connection, errno).

    errno is 0 (connected), EINPROGRESS (wait for writable, then SO_ERROR),
    or the connect's error.
    """
    address: Address = backend.address
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Upstream(sock, backend), sock.connect_ex((address.host, address.port))


class Pools:
    """The idle connections of every backend, most recent last."""

    def __init__(self, loop: Loop) -> None:
        self._loop = loop
        self._idle: dict[BackendState, list[Upstream]] = {}
        self._by_fd: dict[int, Upstream] = {}

    def take(self, backend: BackendState) -> Upstream | None:
        idle = self._idle.get(backend)
        now = time.monotonic()
        while idle:
            upstream = idle.pop()
            del self._by_fd[upstream.fd]
            if now - upstream.idle_since < IDLE_UPSTREAM_MAX_AGE:
                upstream.reused = True
                return upstream
            upstream.close(self._loop)
        return None

    def give(self, upstream: Upstream, max_idle: int) -> None:
        """Pool `upstream` after its exchange if it may carry another; else close it."""
        conn = upstream.conn
        if conn.our_state is DONE and conn.their_state is DONE and not conn.trailing_data[0]:
            conn.start_next_cycle()
            self.keep(upstream, max_idle)
            return
        upstream.close(self._loop)

    def keep(self, upstream: Upstream, max_idle: int) -> None:
        """Pool `upstream`, whose exchange ended cleanly on both sides with nothing left over (its
        connection object ready for the next), if its backend is still routed and its pool has room."""
        backend = upstream.backend
        idle = self._idle.setdefault(backend, [])
        if backend.retired or len(idle) >= max_idle:
            upstream.close(self._loop)
            return
        upstream.idle_since = time.monotonic()
        idle.append(upstream)
        self._by_fd[upstream.fd] = upstream
        self._loop.watch(upstream.fd, self, IDLE_MASK)

    def count(self, backend: BackendState) -> int:
        return len(self._idle.get(backend, ()))

    def idle_of(self, backend: BackendState) -> tuple[Upstream, ...]:
        """The idle connections to `backend`, most recent last (for tests and the admin)."""
        return tuple(self._idle.get(backend, ()))

    # An idle connection became ready: the backend closed it, or sent
    # something unasked. Either way it is done.
    def ready(self, fd: int, mask: int) -> None:
        upstream = self._by_fd.pop(fd, None)
        if upstream is None:
            self._loop.forget(fd)
            return
        idle = self._idle.get(upstream.backend)
        if idle is not None and upstream in idle:
            idle.remove(upstream)
        upstream.close(self._loop)

    def expired(self) -> None:
        pass

    def fail(self) -> None:
        pass

    def close_all(self) -> None:
        for idle in self._idle.values():
            for upstream in idle:
                upstream.close(self._loop)
            idle.clear()
        self._by_fd.clear()
