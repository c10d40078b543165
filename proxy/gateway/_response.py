# The response half of one exchange: the backend's response to the client,
# under one cancel scope whose deadline moves with the phase (the response
# head, each write to the client, each read of the body); a long body of
# known length is spliced in the kernel; a 101 the client asked for becomes
# a tunnel (_tunnel.py).
#
# Rules:
# - until the response head went to the client, a failure is a ProxyError
#   (502 or 504), Stale (a pooled connection that was dead: retry) or
#   Unanswered (the backend failed before any response byte: the retry
#   rules decide);
# - after it, any failure is Abort: a truncated body is never framed as whole.

from __future__ import annotations

import math
from collections.abc import Callable

import trio

from ..protocol import _events as ev
from .._config import Config
from .._errors import BadGateway, GatewayTimeout
from ..protocol._head import body_length
from ..protocol._reader import MAX_INTERIM_RESPONSES
from ..protocol._rewrite import response_headers, with_fields
from ..routing._record import Exchange
from ..engine._errors import SinkFailed, SourceFailed
from ._errors import Abort, Stale, Unanswered
from ._http import HttpStream
from ._splice import SPLICE_AVAILABLE, SPLICE_MIN, splice
from ._tunnel import tunnel

__all__ = ["relay_response"]


# What a timeout of relay_response's one cancel scope means, by phase.
_HEAD, _TO_CLIENT, _FROM_BACKEND, _SPLICING = range(4)


async def relay_response(
    conn: HttpStream,
    reused: bool,
    client: HttpStream,
    upgrade: bool,
    config: Config,
    exchange: Exchange,
    closing: Callable[[], bool],
) -> None:
    timeouts = config.timeouts
    interim = 0
    event: ev.Event | None = None
    # One cancel scope for the whole response (scopes, one per operation,
    # showed in profiles): its deadline moves with the phase (the response
    # head, then each write to the client and each read of the body), and
    # exchange.phase says what a timeout means once the scope has caught it.
    scope = trio.CancelScope(deadline=trio.current_time() + timeouts.response_head)
    exchange.phase = _HEAD
    try:
        with scope:
            while True:
                event = await conn.next_event()
                if type(event) is ev.InformationalResponse:
                    interim += 1
                    if interim > MAX_INTERIM_RESPONSES:
                        raise BadGateway(f"backend sent over {MAX_INTERIM_RESPONSES} 1xx responses")
                    if event.status_code == 101:
                        if not upgrade:
                            raise BadGateway("backend switched protocols unasked")
                        break
                    await client.send(ev.InformationalResponse(event.status_code, response_headers(event.headers), event.reason))
                    continue
                break
            if type(event) is ev.Response:
                exchange.phase = _TO_CLIENT
                await _relay_body(conn, client, event, config, exchange, closing, scope)
                return
    except (ev.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError) as error:
        if exchange.phase != _HEAD:
            raise
        if conn.bytes_received == 0:
            if reused and not exchange.body_started:
                raise Stale() from None
            raise Unanswered(BadGateway(f"backend failed before its response: {error}")) from None
        raise BadGateway(f"backend failed before its response: {error}") from None
    if scope.cancelled_caught:
        if exchange.phase == _HEAD:
            raise GatewayTimeout("backend did not answer in time")
        raise Abort("client stopped reading the response" if exchange.phase == _TO_CLIENT
                    else "backend response body stalled")
    if type(event) is ev.InformationalResponse:  # 101, asked for: the tunnel has its own idle timeout
        await tunnel(conn, client, event, timeouts.tunnel_idle, exchange)
        return
    if type(event) is ev.ConnectionClosed:
        if reused and not exchange.body_started:
            raise Stale()
        closed = BadGateway("backend closed the connection without a response")
        raise Unanswered(closed) if conn.bytes_received == 0 else closed
    raise AssertionError(f"unexpected {event!r}")


async def _relay_body(
    conn: HttpStream,
    client: HttpStream,
    event: ev.Response,
    config: Config,
    exchange: Exchange,
    closing: Callable[[], bool],
    scope: trio.CancelScope,
) -> None:
    """The response head and body to the client, inside relay_response's scope.

    Sets exchange.phase and the scope's deadline before each wait; raises
    Abort or ProxyError for everything else.
    """
    idle = config.timeouts.body_idle
    headers = with_fields(response_headers(event.headers), client.response_extra)
    if closing():  # draining: this is the connection's last response
        headers.append((b"connection", b"close"))
    exchange.status = event.status_code
    # The head and whatever body the parser already holds go out in one
    # write: a small response costs one send, not one per event. Only
    # when the parser holds nothing more is the batch sent and the backend
    # read again.
    batch: list[ev.Event] = [ev.Response(event.status_code, headers, event.reason)]
    # A long body of known length bypasses the parser and Python: spliced in the
    # kernel once the head (and what the parser already holds) is out.
    length = body_length(event.headers)
    splice_left = None
    if (SPLICE_AVAILABLE and length is not None and length >= SPLICE_MIN and exchange.method != b"HEAD"
            and event.status_code not in (204, 304)
            and isinstance(conn.stream, trio.SocketStream) and isinstance(client.stream, trio.SocketStream)):
        splice_left = length
    while True:
        try:
            piece = conn.conn.next_event()
        except ev.RemoteProtocolError as error:
            await _flush(client, batch, idle, exchange, scope)
            raise Abort(f"backend failed during its response body: {error}") from None
        if type(piece) is ev.Data:
            exchange.bytes_out += len(piece.data)
            batch.append(piece)
            if splice_left is not None:
                splice_left -= len(piece.data)
            continue
        if type(piece) is ev.EndOfMessage:
            batch.append(ev.END_OF_MESSAGE)
            await _flush(client, batch, idle, exchange, scope)
            return
        if piece is not ev.NEED_DATA:
            await _flush(client, batch, idle, exchange, scope)
            raise Abort(f"unexpected {type(piece).__name__} in the response body")
        await _flush(client, batch, idle, exchange, scope)
        batch = []
        if splice_left:
            exchange.phase = _SPLICING
            scope.deadline = math.inf  # the splice keeps its own idle timeout
            await _splice_rest(conn, client, splice_left, idle, exchange)
            return
        exchange.phase = _FROM_BACKEND
        scope.deadline = trio.current_time() + idle
        try:
            await conn.receive()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise Abort(f"backend failed during its response body: {error}") from None


async def _splice_rest(conn: HttpStream, client: HttpStream, count: int, idle: float, exchange: Exchange) -> None:
    """The rest of a Content-Length body, backend to client, in the kernel.

    The backend connection is not reused afterwards (its parser never saw
    the body); the client connection is, since its next request gets a fresh
    parser and exactly the announced length went out.
    """
    try:
        assert isinstance(conn.stream, trio.SocketStream) and isinstance(client.stream, trio.SocketStream)
        await splice(conn.stream, client.stream, count, idle)
    except SourceFailed as error:
        raise Abort(f"backend failed during its response body: {error}") from None
    except SinkFailed:
        raise Abort("client went away during the response") from None
    except trio.TooSlowError:
        raise Abort("response body stalled (backend or client)") from None
    exchange.bytes_out += count
    client.response_spliced()


async def _flush(
    client: HttpStream, batch: list[ev.Event], idle: float, exchange: Exchange, scope: trio.CancelScope
) -> None:
    """Send the batched response events to the client in one write, under `scope` (see relay_response)."""
    if not batch:
        return
    # A client that stops reading blocks this send (backpressure: nothing
    # piles up here); one that reads nothing for the body timeout is cut
    # off, which frees the backend connection too.
    exchange.phase = _TO_CLIENT
    scope.deadline = trio.current_time() + idle
    try:
        await client.send_many(*batch)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        raise Abort("client went away during the response") from None
    exchange.response_started = True
