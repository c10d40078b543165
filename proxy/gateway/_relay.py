# One proxied exchange: pick a backend, send the request head, stream the
# body up and the response back, relay an upgrade. Trio code that still
# holds the retry and failover rules below (the architecture issue moves
# them into a pure function); header decisions live in protocol/_rewrite.py,
# pool decisions in routing/_pool.py.
#
# Failure rules:
# - nothing reached a backend (connect failed): retry once on another
#   backend of the pool; none left: 502 (503 if none was up to begin with);
# - a refused connect to a container that became ready moments ago is not a
#   failure: `not_ready` (the watcher) takes it out of the table to be
#   probed again, and the request tries another backend, or (none left) is
#   routed again on the new table (BackendNotReady), where it may wait;
# - a pooled connection turned out dead before any response byte, no request
#   body byte was read from the client, and the method is idempotent: retry
#   once on a new connection (the backend closed an idle keep-alive, a
#   normal race); otherwise 502;
# - after the response head went to the client, any failure closes the
#   client connection (Abort): a truncated body is never framed as whole.

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import trio

from ..protocol import _events as ev
from .._config import Address, Config
from .._errors import (
    BadGateway,
    ClientProtocolError,
    GatewayTimeout,
    NoBackendAvailable,
    PayloadTooLarge,
    ProxyError,
    RequestTimeout,
    UpstreamConnectError,
    UpstreamConnectTimeout,
)
from ._http import HttpStream
from ..routing._pool import BackendState, Upstream
from ._splice import SPLICE_AVAILABLE, SPLICE_MIN, SinkFailed, SourceFailed, splice
from ..protocol._rewrite import is_upgrade_request, request_headers, response_headers, strip_target
from ._upstream import BackendNotReady, acquire, release

__all__ = ["Abort", "Exchange", "has_body", "relay"]

MAX_INTERIM_RESPONSES = 16  # 1xx responses before a final one; more is a broken backend (502)
# RFC 9110 section 9.2.2: safe to send twice when unsure the first arrived.
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


class Abort(Exception):
    """Close the client connection now; no response can be sent any more."""


class _Stale(Exception):
    """A reused upstream connection was dead before it answered."""


@dataclass(slots=True)
class Exchange:
    """One request's record: what the access log and the metrics say about it,
    and the state the relay and the server steer by (whether the response
    started, the client connection may be kept, which phase a timeout hit)."""

    method: bytes = b"-"
    target: bytes = b"-"
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    backend: str = "-"
    started: float = field(default_factory=time.monotonic)
    response_started: bool = False
    body_started: bool = False  # a request body byte was read from the client
    keep_client: bool = True
    route: str = ""  # the matched prefix, for metrics
    connect_errors: int = 0  # failed backend connects (refused, reset, unreachable), for metrics
    connect_timeouts: int = 0  # backend connects that timed out, for metrics
    phase: int = 0  # what the response relay waits on (_relay_response), so a timeout can say what stalled


def _content_length(headers: Any) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)  # the head checks validated it
    return None


def has_body(headers: Any) -> bool:
    """Whether a request head announces a body (the head checks validated the framing)."""
    for name, value in headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value != b"0":
            return True
    return False


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    # The exchange's nursery can fail in two tasks at once; the client gets
    # the most specific answer: a ProxyError or Abort over anything else.
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    for kind in (Abort, ProxyError, _Stale):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    for leaf in leaves:
        if not isinstance(leaf, trio.Cancelled):
            return leaf
    return leaves[0]


async def relay(
    client: HttpStream,
    request: ev.Request,
    upstream: Upstream,
    prefix: str,
    config: Config,
    exchange: Exchange,
    *,
    client_ip: str,
    trusted: bool,
    closing: Callable[[], bool],
    not_ready: Callable[[Address], bool] | None = None,
) -> None:
    """Forward `request` to a backend of `upstream` and its response to the client.

    not_ready(address): called when a backend refuses a connection; True
    means it is booting again (taken out of the table), not failing.

    Raises:
        ProxyError: nothing was sent to the client yet; it gets that status.
        Abort: the response is under way and cannot be completed.
        BackendNotReady: every backend left to try was booting again; route anew.
    """
    limits = config.limits
    length = _content_length(request.headers)
    if limits.max_body is not None and length is not None and length > limits.max_body:
        raise PayloadTooLarge(f"request body of {length} bytes is over the limit of {limits.max_body}")
    with_body = has_body(request.headers)
    upgrade = is_upgrade_request(request.headers)
    route = upstream.route
    target = strip_target(request.target, prefix) if route.strip_prefix else request.target

    tried: list[BackendState] = []
    failed = 0
    unready = False
    stale_retried = False
    last_error: ProxyError | None = None
    while True:
        now = time.monotonic()
        backend = upstream.pick(now, exclude=tried)
        if backend is None:
            if unready:
                raise BackendNotReady(f"{prefix!r}: the backends tried are booting again")
            if last_error is not None:
                raise last_error
            if not upstream.backends:
                raise NoBackendAvailable(f"no backend serves {prefix!r} now", retry_after=5)
            back_in = min(b.down_until for b in upstream.backends) - now
            raise NoBackendAvailable(
                f"every backend of {prefix!r} is out of rotation", retry_after=max(1, math.ceil(back_in))
            )
        exchange.backend = str(backend.address)
        try:
            conn, reused = await acquire(backend, config.timeouts, config.parser)
        except UpstreamConnectError as error:
            tried.append(backend)
            if error.refused and not_ready is not None and not_ready(backend.address):
                unready = True  # still booting: out of the table, probed again; not a failure
                continue
            if isinstance(error, UpstreamConnectTimeout):
                exchange.connect_timeouts += 1
            else:
                exchange.connect_errors += 1
            backend.mark_failed(time.monotonic())
            last_error = error
            failed += 1
            if failed >= 2:
                raise
            continue
        backend.mark_ok()
        headers = request_headers(
            request.headers,
            client_ip=client_ip,
            trusted=trusted,
            upstream_host=backend.host_header,
            prefix=prefix if route.strip_prefix else None,
            upgrade=upgrade,
            allow_underscores=config.allow_underscores,
        )
        if with_body and length is None:
            headers.append((b"transfer-encoding", b"chunked"))  # the client's body was chunked
        head = ev.Request(request.method, target, headers)
        backend.outstanding += 1
        try:
            await _exchange_on(conn, reused, client, head, with_body, upgrade, config, exchange, closing, length)
        except _Stale:
            await conn.aclose()
            if stale_retried or request.method not in IDEMPOTENT:
                raise BadGateway(f"backend {backend.address} closed the connection") from None
            stale_retried = True
            continue
        except BaseException:
            await conn.aclose()
            raise
        finally:
            backend.outstanding -= 1
            backend.last_done = time.monotonic()
        await release(backend, conn, limits)
        return


async def _exchange_on(
    conn: HttpStream,
    reused: bool,
    client: HttpStream,
    head: ev.Request,
    with_body: bool,
    upgrade: bool,
    config: Config,
    exchange: Exchange,
    closing: Callable[[], bool],
    length: int | None = None,
) -> None:
    try:
        if with_body:
            await conn.send(head)
        else:
            await conn.send_many(head, ev.END_OF_MESSAGE)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        if reused:
            raise _Stale() from None
        raise BadGateway("backend closed the connection") from None
    if not with_body:
        await _relay_response(conn, reused, client, upgrade, config, exchange, closing)
        return
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump_request_body, client, conn, config, exchange, length)
            await _relay_response(conn, reused, client, upgrade, config, exchange, closing)
            # The backend answered before reading the whole body: stop
            # reading it; the client connection cannot be reused now.
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _first_error(group) from None
    if client.conn.their_state is not ev.DONE and not client.request_bypassed:
        exchange.keep_client = False


async def _pump_request_body(
    client: HttpStream, conn: HttpStream, config: Config, exchange: Exchange, length: int | None = None
) -> None:
    max_body = config.limits.max_body
    # A long body of known length is spliced in the kernel once what the
    # parser already holds is forwarded (the length passed --max-body before).
    splicing = (SPLICE_AVAILABLE and length is not None and length >= SPLICE_MIN
                and isinstance(conn.stream, trio.SocketStream) and isinstance(client.stream, trio.SocketStream))
    while True:
        try:
            if splicing:
                event = client.conn.next_event()
                if event is ev.NEED_DATA:
                    assert length is not None
                    await _splice_request_rest(client, conn, length - exchange.bytes_in, config, exchange)
                    return
            else:
                with trio.fail_after(config.timeouts.body_idle):
                    event = await client.next_event()
        except trio.TooSlowError:
            raise RequestTimeout("request body stalled") from None
        except ev.RemoteProtocolError as error:
            raise ClientProtocolError(f"malformed request body: {error}") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise Abort("client went away during the request body") from None
        if type(event) is ev.Data:
            exchange.body_started = True
            exchange.bytes_in += len(event.data)
            if max_body is not None and exchange.bytes_in > max_body:
                raise PayloadTooLarge(f"request body is over the limit of {max_body} bytes")
            try:
                with trio.fail_after(config.timeouts.body_idle):
                    await conn.send(ev.Data(event.data))
            except trio.TooSlowError:
                raise Abort("backend stopped reading the request body") from None
            except (trio.BrokenResourceError, trio.ClosedResourceError, ev.LocalProtocolError):
                return  # the backend stopped reading; its response (or lack of one) decides
        elif type(event) is ev.EndOfMessage:
            try:
                await conn.send(ev.END_OF_MESSAGE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, ev.LocalProtocolError):
                pass
            return
        elif type(event) is ev.ConnectionClosed:
            raise Abort("client closed the connection during the request body")


# What a timeout of _relay_response's one cancel scope means, by phase.
_HEAD, _TO_CLIENT, _FROM_BACKEND, _SPLICING = range(4)


async def _relay_response(
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
    event: Any = None
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
        if reused and conn.bytes_received == 0 and not exchange.body_started:
            raise _Stale() from None
        raise BadGateway(f"backend failed before its response: {error}") from None
    if scope.cancelled_caught:
        if exchange.phase == _HEAD:
            raise GatewayTimeout("backend did not answer in time")
        raise Abort("client stopped reading the response" if exchange.phase == _TO_CLIENT
                    else "backend response body stalled")
    if type(event) is ev.InformationalResponse:  # 101, asked for: the tunnel has its own idle timeout
        await _tunnel(conn, client, event, timeouts.tunnel_idle, exchange)
        return
    if type(event) is ev.ConnectionClosed:
        if reused and not exchange.body_started:
            raise _Stale()
        raise BadGateway("backend closed the connection without a response")
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
    """The response head and body to the client, inside _relay_response's scope.

    Sets exchange.phase and the scope's deadline before each wait; raises
    Abort or ProxyError for everything else.
    """
    idle = config.timeouts.body_idle
    headers = response_headers(event.headers)
    if closing():  # draining: this is the connection's last response
        headers.append((b"connection", b"close"))
    exchange.status = event.status_code
    # The head and whatever body the parser already holds go out in one
    # write: a small response costs one send, not one per event. Only
    # when the parser holds nothing more is the batch sent and the backend
    # read again.
    batch: list[Any] = [ev.Response(event.status_code, headers, event.reason)]
    # A long body of known length bypasses the parser and Python: spliced in the
    # kernel once the head (and what the parser already holds) is out.
    length = _content_length(event.headers)
    splice_left = None
    if (SPLICE_AVAILABLE and length is not None and length >= SPLICE_MIN and exchange.method != b"HEAD"
            and event.status_code not in (204, 304)
            and isinstance(conn.stream, trio.SocketStream) and isinstance(client.stream, trio.SocketStream)):
        splice_left = length
    while True:
        try:
            piece: Any = conn.conn.next_event()
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


async def _splice_request_rest(
    client: HttpStream, conn: HttpStream, count: int, config: Config, exchange: Exchange
) -> None:
    """The rest of a Content-Length request body, client to backend, in the kernel.

    The backend connection is not reused afterwards; the client connection
    may be, once exactly the announced length came in.
    """
    exchange.body_started = True
    assert isinstance(conn.stream, trio.SocketStream) and isinstance(client.stream, trio.SocketStream)
    try:
        await splice(client.stream, conn.stream, count, config.timeouts.body_idle)
    except SourceFailed:
        raise Abort("client went away during the request body") from None
    except SinkFailed:
        return  # the backend stopped reading; its response (or lack of one) decides
    except trio.TooSlowError:
        raise Abort("request body stalled (client or backend)") from None
    exchange.bytes_in += count
    client.request_bypassed = True


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
    client.response_bypassed = True


async def _flush(
    client: HttpStream, batch: list[Any], idle: float, exchange: Exchange, scope: trio.CancelScope
) -> None:
    """Send the batched response events to the client in one write, under `scope` (see _relay_response)."""
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


async def _tunnel(
    conn: HttpStream, client: HttpStream, switch: ev.InformationalResponse, idle: float, exchange: Exchange
) -> None:
    """Relay an upgraded connection's bytes both ways until one side is done."""
    exchange.status = 101
    await client.send(ev.InformationalResponse(101, response_headers(switch.headers, upgrade=True), switch.reason))
    exchange.response_started = True
    exchange.keep_client = False
    early_up = client.conn.trailing_data[0]
    early_down = conn.conn.trailing_data[0]
    if early_up:
        await conn.stream.send_all(early_up)
    if early_down:
        await client.stream.send_all(early_down)
    exchange.bytes_in += len(early_up)
    exchange.bytes_out += len(early_down)

    async with trio.open_nursery() as nursery:
        scope = nursery.cancel_scope
        scope.deadline = trio.current_time() + idle

        async def pump(source: trio.abc.Stream, sink: trio.abc.Stream, up: bool) -> None:
            try:
                while True:
                    data = await source.receive_some(64 * 1024)
                    if not data:
                        break
                    scope.deadline = trio.current_time() + idle
                    if up:
                        exchange.bytes_in += len(data)
                    else:
                        exchange.bytes_out += len(data)
                    await sink.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            # One side is done: so is the tunnel (most upgraded protocols,
            # WebSocket included, end with a close from either side).
            scope.cancel()

        nursery.start_soon(pump, client.stream, conn.stream, True)
        nursery.start_soon(pump, conn.stream, client.stream, False)
