# Listening sockets. trio.open_tcp_listeners cannot set SO_REUSEPORT, which
# --workers needs: every worker process binds the same address and the
# kernel spreads new connections among them.

from __future__ import annotations

import errno
import os
import resource
import socket
from typing import Any

import trio

from .._config import Address

__all__ = ["ACCEPT_BURST", "BACKLOG", "FDS_RESERVED", "Backlog", "bind_sockets", "connection_slots", "open_listeners",
           "probe", "raise_nofile", "start_listening"]

BACKLOG = 1024  # connections the kernel queues before accept()
# Connections taken from the backlog per turn of the accept loop (HAProxy's
# tune.maxaccept is 64 too). trio's accept() is a checkpoint: one accept
# per scheduling round let 512 connections opened at once wait seconds
# behind the busy ones (p99 over 1 s, and wrk's 2 s timeouts).
ACCEPT_BURST = 64


# accept() errors that mean only that this connection is gone (reset while
# queued, or refused by a firewall rule): take the next one.
_GONE_BEFORE_ACCEPT = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM}

FDS_RESERVED = 32  # descriptors kept aside: listeners, epoll sets, Docker, the admin, logs, a pipe or two


def connection_slots(max_connections: int, nofile: int) -> int:
    """How many client connections to serve at once: --max-connections, or fewer when the
    descriptor limit would not let each have a backend connection too (HAProxy derives its
    maxconn from `ulimit -n` the same way). Past it, connections wait in the backlog.
    """
    return max(1, min(max_connections, (nofile - FDS_RESERVED) // 2))


def raise_nofile() -> int:
    """Raise this process's descriptor limit to its hard limit (as Go programs and HAProxy do);
    returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass  # (an unlimited hard limit is more than the kernel lets a soft one be)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class Backlog:
    """What a listener has queued, taken without waiting (after an accept() said it has some).

    Holds a duplicate of the listening descriptor: the same socket, read
    with plain non-blocking accept() calls, so that a burst of connections
    needs no trio checkpoint each.
    """

    def __init__(self, listener: trio.SocketListener) -> None:
        self._sock = socket.socket(fileno=os.dup(listener.socket.fileno()))
        self._sock.setblocking(False)

    def take(self) -> trio.SocketStream | None:
        """One queued connection, or None when the backlog is empty.

        Raises:
            OSError: accept failed (out of descriptors, say: the connection stays queued).
        """
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as error:
            if error.errno in _GONE_BEFORE_ACCEPT:
                return None  # (trio's accept() skips these too)
            raise
        return trio.SocketStream(trio.socket.from_stdlib_socket(conn))

    def close(self) -> None:
        self._sock.close()


def _sockets_for(address: Address) -> list[tuple[int, Any]]:  # Any: a socket address, its shape the family's
    host = None if address.host in ("", "*") else address.host
    infos = socket.getaddrinfo(host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    seen: set[tuple[int, Any]] = set()  # Any: as below
    found: list[tuple[int, Any]] = []  # Any: as below
    for family, _, _, _, sockaddr in infos:
        if (family, sockaddr) not in seen:
            seen.add((family, sockaddr))
            found.append((family, sockaddr))
    return found


def _prepare(sock: socket.socket | trio.socket.SocketType, family: int, reuse_port: bool) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


async def bind_sockets(address: Address, *, reuse_port: bool = False) -> list[trio.socket.SocketType]:
    """Bound sockets, not listening yet, for every address `address.host` resolves to.

    Bound is enough to hold the address (and to fail now if it is in use);
    until listen(), the kernel refuses connections to it, and with
    SO_REUSEPORT hands none to it: a worker that is not ready takes no
    connection from the others.

    Raises:
        OSError: one cannot be bound (in use, say).
    """
    sockets: list[trio.socket.SocketType] = []
    try:
        for family, sockaddr in _sockets_for(address):
            sock = trio.socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            _prepare(sock, family, reuse_port)
            await sock.bind(sockaddr)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def start_listening(sockets: list[trio.socket.SocketType]) -> list[trio.SocketListener]:
    """listen() on bound sockets: from now on the kernel queues connections for them."""
    for sock in sockets:
        sock.listen(BACKLOG)
    return [trio.SocketListener(sock) for sock in sockets]


async def open_listeners(address: Address, *, reuse_port: bool = False) -> list[trio.SocketListener]:
    """Listening sockets for every address `address.host` resolves to.

    Raises:
        OSError: one cannot be bound (in use, say).
    """
    return start_listening(await bind_sockets(address, reuse_port=reuse_port))


def probe(address: Address, *, reuse_port: bool = True) -> None:
    """Bind (and close) what the workers will bind, so that an address in use
    is one error in the supervisor rather than one in every worker.

    Raises:
        OSError: it cannot be bound.
    """
    for family, sockaddr in _sockets_for(address):
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            _prepare(sock, family, reuse_port=reuse_port)
            sock.bind(sockaddr)
