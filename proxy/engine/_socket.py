# The engine's non-blocking socket calls, the same for a client and a
# backend: one read, one write, a connect's result. Nothing here waits.

from __future__ import annotations

import os
import socket

__all__ = ["READ_MAX", "read", "socket_error", "write"]


def socket_error(sock: socket.socket) -> int:
    """The pending error of a socket whose connect finished (0: connected)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)


READ_MAX = 64 * 1024  # bytes per read


def read(fd: int) -> bytes | None:
    """One read: the bytes, b"" at EOF, None when it would block.

    Raises OSError (ECONNRESET...) when the peer is gone.
    """
    try:
        return os.read(fd, READ_MAX)
    except BlockingIOError:
        return None


def write(fd: int, data: bytes | bytearray | memoryview) -> int:
    """Write what the socket takes now; returns the count (0 when it would block).

    Raises OSError (EPIPE, ECONNRESET...) when the peer is gone.
    """
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
