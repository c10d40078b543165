# Zero-copy body relay: os.splice moves bytes socket -> pipe -> socket inside
# the kernel, never through Python. Both paths use it (the trio path's
# gateway/_splice.py around it, the engine directly) for bodies of a known,
# large length (SPLICE_MIN or more) once their head has gone out: per 64 KiB,
# two system calls and no Python objects.
#
# Linux only (os.splice); where it is missing, SPLICE_AVAILABLE is False and
# the relay copies as before.

from __future__ import annotations

import fcntl
import os

from ._errors import SinkFailed, SourceFailed

__all__ = ["PIPE_SIZE", "SPLICE_AVAILABLE", "SPLICE_MIN", "SplicePipe"]

SPLICE_AVAILABLE = hasattr(os, "splice")
SPLICE_MIN = 1024 * 1024  # bytes: bodies at least this long are spliced
PIPE_SIZE = 1024 * 1024  # bytes asked of the kernel for the pipe in between
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class SplicePipe:
    """Exactly `count` bytes from one socket to another through a kernel pipe, moved
    as far as both sockets allow now (step); the caller waits for readiness.

    Raises (from step): SourceFailed, the source ended early or broke;
    SinkFailed, the sink broke.
    """

    __slots__ = ("read_end", "write_end", "capacity", "left", "in_pipe")

    def __init__(self, count: int) -> None:
        self.read_end, self.write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self.capacity = fcntl.fcntl(self.write_end, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            self.capacity = 64 * 1024  # the default pipe size
        self.left = count  # bytes still to read from the source
        self.in_pipe = 0  # bytes read, not written to the sink yet

    @property
    def done(self) -> bool:
        return not self.left and not self.in_pipe

    def step(self, src: int, dst: int) -> int:
        """Move what moves now, both ways; returns the bytes written to the sink (-1: nothing moved)."""
        written = 0
        moved = False
        while self.left or self.in_pipe:
            progressed = False
            if self.left and self.in_pipe < self.capacity:
                try:
                    n = os.splice(src, self.write_end, min(self.left, self.capacity - self.in_pipe), flags=_FLAGS)
                except BlockingIOError:
                    n = -1
                except OSError as error:
                    raise SourceFailed(str(error)) from None
                if n == 0:
                    raise SourceFailed(f"the source ended {self.left} bytes early")
                if n > 0:
                    self.left -= n
                    self.in_pipe += n
                    progressed = True
            if self.in_pipe:
                try:
                    m = os.splice(self.read_end, dst, self.in_pipe, flags=_FLAGS)
                except BlockingIOError:
                    m = -1
                except OSError as error:
                    raise SinkFailed(str(error)) from None
                if m > 0:
                    self.in_pipe -= m
                    written += m
                    progressed = True
            if not progressed:
                break
            moved = True
            if written >= 4 * self.capacity:
                break  # enough for one turn: the caller lets the rest of its loop run
        return written if moved else -1

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)
