# Zero-copy body relay: os.splice moves bytes socket -> pipe -> socket inside
# the kernel, never through Python. Used for request and response bodies of
# a known, large length (SPLICE_MIN or more) once their head has gone out: per
# 64 KiB, two system calls and no Python objects, instead of a receive, an
# h11 event and a framed send.
#
# Linux only (os.splice); where it is missing, SPLICE_AVAILABLE is False and
# the relay copies as before.

from __future__ import annotations

import fcntl
import os

import trio

from ._errors import SinkFailed, SourceFailed

__all__ = ["SPLICE_AVAILABLE", "SPLICE_MIN", "splice"]

SPLICE_AVAILABLE = hasattr(os, "splice")
SPLICE_MIN = 1024 * 1024  # bytes: bodies at least this long are spliced
PIPE_SIZE = 1024 * 1024  # bytes asked of the kernel for the pipe in between
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


async def splice(source: trio.SocketStream, sink: trio.SocketStream, count: int, idle: float) -> None:
    """Move exactly `count` bytes from `source` to `sink`.

    Raises:
        SourceFailed: the source ended early or broke.
        SinkFailed: the sink broke.
        trio.TooSlowError: neither side moved for `idle` seconds.
    """
    src, dst = source.socket.fileno(), sink.socket.fileno()
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        try:
            capacity = fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            capacity = 64 * 1024  # the default pipe size
        left, in_pipe = count, 0
        while left or in_pipe:
            moved = False
            if left and in_pipe < capacity:
                try:
                    n = os.splice(src, write_end, min(left, capacity - in_pipe), flags=_FLAGS)
                except BlockingIOError:
                    n = -1
                except OSError as error:
                    raise SourceFailed(str(error)) from None
                if n == 0:
                    raise SourceFailed(f"the source ended {left} bytes early")
                if n > 0:
                    left -= n
                    in_pipe += n
                    moved = True
            if in_pipe:
                try:
                    m = os.splice(read_end, dst, in_pipe, flags=_FLAGS)
                except BlockingIOError:
                    m = -1
                except OSError as error:
                    raise SinkFailed(str(error)) from None
                if m > 0:
                    in_pipe -= m
                    moved = True
            if moved:
                await trio.lowlevel.checkpoint()
                continue
            # Nothing moved: wait for the side that holds things up.
            with trio.fail_after(idle):
                if in_pipe:
                    await trio.lowlevel.wait_writable(dst)
                else:
                    await trio.lowlevel.wait_readable(src)
    finally:
        os.close(read_end)
        os.close(write_end)
