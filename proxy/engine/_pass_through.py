# A response passed on to an HTTP/1.1 client as it came, without the
# backend's parser, for a stream (_stream_shell.StreamShell):
#
# - the lane: a response whose head came whole in its first read and is of
#   the lane's kind (protocol/_lane.py: a Content-Length, nothing to
#   rewrite but the hop-by-hop fields) goes out with its head rewritten in
#   one step and its body counted down, read by read;
# - the splice: the rest of a long Content-Length body moves backend to
#   client in the kernel (_pipe.py), from the response rules' bound on.
#
# Both are HTTP/1.1's on both sides; a stream of another protocol never
# takes them (its lane is False and its rules have no splice bound).

from __future__ import annotations

import select
from typing import TYPE_CHECKING, Protocol

from ..protocol._compiled import lane_response_head
from ..protocol._lane import with_fields as lane_with_fields
from ._errors import SinkFailed, SourceFailed
from ._loop import Handler
from ._pipe import SplicePipe
from ._states import SPLICE

if TYPE_CHECKING:
    from ..routing._record import Exchange
    from ..routing._response_rules import ResponseRelay
    from ._handover import EngineParts
    from ._contract import Connection
    from ._upstream import Upstream

__all__ = ["Passing", "adopt_lane", "lane_body", "lane_head", "splice"]

_IN = select.EPOLLIN | select.EPOLLRDHUP


class Passing(Handler, Protocol):
    """What these steps read and change of a stream (_stream_shell.StreamShell), the loop's handler of
    its backend's socket."""

    client: Connection
    engine: EngineParts
    exchange: Exchange | None
    relay: ResponseRelay
    upstream: Upstream | None
    response_done: bool
    lane_left: int  # body bytes of a response in the lane still to come (-1: not in the lane)
    lane_keep: bool  # the backend keeps its connection after that response
    splice_left: int  # the splice's length
    pipe: SplicePipe | None

    def drop(self) -> None:
        """Close the backend connection (and the pipe)."""


def adopt_lane(shell: Passing, status: int, keep: bool, body_out: int, left: int, unsent: bytes,
               started: bool) -> None:
    """The cycle wrote a lane response's head and `body_out` bytes of its body (`unsent`: what the
    client did not take of them; `started`: a byte went out), `left` to come: on as the lane."""
    exchange = shell.exchange
    upstream = shell.upstream
    assert exchange is not None and upstream is not None
    shell.engine.laned += 1
    exchange.status = status
    exchange.bytes_out = body_out
    exchange.response_started = started
    shell.relay.head_out = True
    shell.client.front.client.response_spliced()
    shell.client.outbuf += unsent
    shell.lane_keep = keep
    if left:
        shell.lane_left = left
    else:
        upstream.conn.response_read_around(keep)
        shell.response_done = True


def lane_head(shell: Passing, data: bytes) -> bool:
    """The response's first read, `data`: if its head is whole and of the lane's kind, the head and
    what came of the body go to the client (no events). False: the response rules read it."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    simple = lane_response_head(data[:end + 4])
    if simple is None:
        return False
    client = shell.client
    status, length, shell.lane_keep, head = simple
    if client.extra:
        head = lane_with_fields(head, client.extra)
    shell.engine.laned += 1
    assert shell.exchange is not None
    shell.exchange.status = status
    shell.relay.head_out = True
    client.outbuf += head
    shell.lane_left = length
    client.front.client.response_spliced()  # the client's connection sees none of it
    body = data[end + 4:]
    if body or not length:
        lane_body(shell, body)
    else:  # the body comes in later reads
        client.deadline(shell.engine.config.timeouts.body_idle)
        client.flush()
    return True


def lane_body(shell: Passing, data: bytes) -> None:
    """A read of a lane response's body (b"": the backend closed), on to the client."""
    exchange = shell.exchange
    upstream = shell.upstream
    client = shell.client
    assert exchange is not None and upstream is not None
    left = shell.lane_left
    if not data and left:
        client.abort("backend closed during its response body")
        return
    if len(data) > left:
        data = data[:left]
        shell.lane_keep = False  # bytes past the response: the connection is not reused (as the rules say)
    client.outbuf += data
    exchange.bytes_out += len(data)
    left = shell.lane_left = left - len(data)
    client.deadline(shell.engine.config.timeouts.body_idle)  # every byte of the body is progress
    if not left:
        upstream.conn.response_read_around(shell.lane_keep)
        shell.lane_left = -1
        shell.response_done = True
    elif (splice_from := shell.relay.splice_from) is not None and exchange.bytes_out + left >= splice_from:
        # A long body: the rest moves in the kernel, as the rules' bound says.
        shell.splice_left = left
        shell.lane_left = -1
        client.enter(SPLICE)  # once what is in outbuf is out (flushed)
    client.flush()


def splice(shell: Passing) -> None:
    """The rest of a long Content-Length body, backend to client, in the kernel.

    The backend connection is not reused afterwards (its parser never saw
    the body); the client connection is, since exactly the announced
    length went out (HttpStream.reusable, as on the trio path).
    """
    upstream = shell.upstream
    exchange = shell.exchange
    assert upstream is not None and exchange is not None
    client = shell.client
    pipe = shell.pipe
    if pipe is None:
        pipe = shell.pipe = SplicePipe(shell.splice_left)
    try:
        written = pipe.step(upstream.fd, client.fd)
    except SourceFailed as error:
        client.abort(f"backend failed during its response body: {error}")
        return
    except SinkFailed:
        client.abort("client went away during the response")
        return
    if written > 0:
        exchange.bytes_out += written
    if written >= 0:
        client.deadline(shell.engine.config.timeouts.body_idle)
    if pipe.done:
        pipe.close()
        shell.pipe = None
        shell.splice_left = 0
        shell.drop()
        client.front.client.response_spliced()
        shell.response_done = True
        client.watch(writing=False)
        client.finished()
        return
    shell.engine.loop.watch(upstream.fd, shell, _IN if pipe.left and pipe.in_pipe < pipe.capacity else 0)
    client.watch(writing=bool(pipe.in_pipe))  # the client's socket written to while the pipe holds bytes
