# The response half of one exchange: the backend's response to the client,
# under one cancel scope whose deadline moves with the phase (the response
# head, each write to the client, each read of the body); a long body of
# known length is spliced in the kernel; a 101 the client asked for becomes
# a tunnel (_tunnel.py).
#
# Rules:
# - what goes on, rewritten how, and what a failure means: the rules of
#   routing/_response_rules.py, which the engine follows too;
# - until the response head went to the client, a failure is a ProxyError
#   (502 or 504), Stale (a pooled connection that was dead: retry) or
#   Unanswered (the backend failed before any response byte: the retry
#   rules decide);
# - after it, any failure is Abort: a truncated body is never framed as whole.

from __future__ import annotations

from collections.abc import Callable

import trio

from ..protocol import _events as ev
from .._config import Config
from .._errors import GatewayTimeout, ProxyError
from ..routing._record import Exchange
from ..routing._response_rules import MORE, SPLICE, STALE, TUNNEL, UNANSWERED, Failed, ResponseRelay, early_failure
from ..engine._errors import SinkFailed, SourceFailed
from ._errors import Abort, Stale, Unanswered
from ._http import ClientSide, HttpStream
from ._splice import SPLICE_AVAILABLE, SPLICE_MIN, splice
from ._tunnel import tunnel

__all__ = ["relay_response"]


# What a timeout of relay_response's one cancel scope means, by phase.
_HEAD, _TO_CLIENT, _FROM_BACKEND = range(3)


async def relay_response(
    conn: HttpStream,
    reused: bool,
    client: ClientSide,
    upgrade: bool,
    config: Config,
    exchange: Exchange,
    closing: Callable[[], bool],
) -> None:
    """The backend's response to the client, by the rules (routing/_response_rules.py).

    Raises ProxyError, Stale or Unanswered before the response head went
    out, Abort after it.
    """
    timeouts = config.timeouts
    splice = (SPLICE_AVAILABLE and isinstance(conn.stream, trio.SocketStream)
              and isinstance(client.stream, trio.SocketStream))
    relay = ResponseRelay(exchange, client.response_extra, upgrade=upgrade, splice_from=SPLICE_MIN if splice else None)
    # One cancel scope for the whole response (scopes, one per operation,
    # showed in profiles): its deadline moves with the phase (the response
    # head, then each write to the client and each read of the body), and
    # exchange.phase says what a timeout means once the scope has caught it.
    scope = trio.CancelScope(deadline=trio.current_time() + timeouts.response_head)
    exchange.phase = _HEAD
    outcome = MORE
    try:
        with scope:
            outcome = await _relay(conn, client, relay, timeouts.body_idle, exchange, closing, scope)
    except Failed as failed:
        raise _meaning(failed, conn, reused, exchange) from None
    if scope.cancelled_caught:
        if exchange.phase == _HEAD:
            raise GatewayTimeout("backend did not answer in time")
        raise Abort("client stopped reading the response" if exchange.phase == _TO_CLIENT
                    else "backend response body stalled")
    if outcome == SPLICE:
        await _splice_rest(conn, client, relay.splice_left, timeouts.body_idle, exchange)
    elif outcome == TUNNEL:  # 101, asked for: the tunnel has its own idle timeout
        assert relay.switch is not None and isinstance(client, HttpStream)  # (HTTP/2 asks for no upgrade)
        await tunnel(conn, client, relay.switch, timeouts.tunnel_idle, exchange)


async def _relay(
    conn: HttpStream,
    client: ClientSide,
    relay: ResponseRelay,
    idle: float,
    exchange: Exchange,
    closing: Callable[[], bool],
    scope: trio.CancelScope,
) -> int:
    """The response's events to the client until it is whole (END), or asks for a splice or a tunnel.

    Sets exchange.phase and the scope's deadline before each wait once the
    head went out. What the parser holds goes out in one write: a small
    response costs one send, not one per event.
    """
    batch: list[ev.Event] = []
    eof = False
    while True:
        try:
            outcome = relay.pull(conn.conn, batch, closing())
            if outcome == MORE and eof:  # the parser took the end as a pause (never, with ours: a guard)
                raise relay.closed()
        except Failed:
            await _flush(client, batch, idle, exchange, scope, relay.head_out)  # what came before, then the end
            raise
        await _flush(client, batch, idle, exchange, scope, relay.head_out)
        if outcome != MORE:
            return outcome
        batch.clear()
        if relay.head_out:
            exchange.phase = _FROM_BACKEND
            scope.deadline = trio.current_time() + idle
        try:
            eof = not await conn.receive()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise relay.broke(str(error)) from None


def _meaning(failed: Failed, conn: HttpStream, reused: bool, exchange: Exchange) -> Exception:
    """What the connection handler is told of a response that failed (see relay_response)."""
    if failed.answer is None:
        return Abort(failed.why)
    meaning = early_failure(failed.answer, received=conn.bytes_received, reused=reused,
                            body_started=exchange.body_started)
    if meaning is STALE:
        return Stale()
    if meaning is UNANSWERED:
        return Unanswered(failed.answer)
    assert isinstance(meaning, ProxyError)
    return meaning


async def _splice_rest(conn: HttpStream, client: ClientSide, count: int, idle: float, exchange: Exchange) -> None:
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
    client: ClientSide, batch: list[ev.Event], idle: float, exchange: Exchange, scope: trio.CancelScope,
    head_out: bool,
) -> None:
    """Send the batched response events to the client in one write, under `scope` (see relay_response)."""
    if not batch:
        return
    # A client that stops reading blocks this send (backpressure: nothing
    # piles up here); one that reads nothing for the body timeout is cut
    # off, which frees the backend connection too. Before the head (1xx
    # only), the response head's deadline holds.
    if head_out:
        exchange.phase = _TO_CLIENT
        scope.deadline = trio.current_time() + idle
    try:
        await client.send_many(*batch)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        raise Abort("client went away during the response") from None
    if head_out:
        exchange.response_started = True
