# The trio path's splice (see engine/_pipe.py, which both paths use): exactly
# `count` bytes from one trio socket stream to another, waiting for readiness
# through trio and giving up after the body timeout.

from __future__ import annotations

import trio

from ..engine._pipe import SPLICE_AVAILABLE, SPLICE_MIN, SplicePipe

__all__ = ["SPLICE_AVAILABLE", "SPLICE_MIN", "splice"]



async def splice(source: trio.SocketStream, sink: trio.SocketStream, count: int, idle: float) -> None:
    """Move exactly `count` bytes from `source` to `sink`.

    Raises:
        SourceFailed: the source ended early or broke.
        SinkFailed: the sink broke.
        trio.TooSlowError: neither side moved for `idle` seconds.
    """
    src, dst = source.socket.fileno(), sink.socket.fileno()
    pipe = SplicePipe(count)
    try:
        while not pipe.done:
            if pipe.step(src, dst) >= 0:
                await trio.lowlevel.checkpoint()
                continue
            # Nothing moved: wait for the side that holds things up.
            with trio.fail_after(idle):
                if pipe.in_pipe:
                    await trio.lowlevel.wait_writable(dst)
                else:
                    await trio.lowlevel.wait_readable(src)
    finally:
        pipe.close()
