# One proxied exchange, in the trio shell: pick a backend, send the request
# head, stream the body up and the response back, relay an upgrade. It only
# carries decisions out: what to try after a failure is routing/_retry.py's,
# header changes are protocol/_rewrite.py's, the pick is routing/_pool.py's.
#
# Rules:
# - I/O errors are translated where they happen, once, into a ProxyError
#   (nothing went to the client yet: it gets that status), Abort (the
#   response is under way: close the client connection, so a truncated body
#   is never framed as whole) or Stale (a pooled connection was dead);
# - no timeouts are passed in: each wait runs under a deadline from
#   config.timeouts, and the one scope of the response says which phase
#   stalled (exchange.phase).

from __future__ import annotations

import time
from collections.abc import Callable

import trio

from ..protocol import _events as ev
from .._config import Address, Config
from .._errors import (
    BadGateway,
    ClientProtocolError,
    PayloadTooLarge,
    ProxyError,
    RequestTimeout,
    UpstreamConnectError,
)
from ..protocol._head import body_length, has_body
from ..protocol._rewrite import is_upgrade_request, request_headers, strip_target
from ..routing._record import Exchange
from ..routing._pool import BackendState, Pool
from ..routing._retry import REROUTE, Attempts, Waiting, keyed
from ..routing._stream import Stream
from ..engine._errors import SinkFailed, SourceFailed
from ._errors import Abort, BackendNotReady, Resend, Stale, Unanswered
from ._http import ClientSide, HttpStream
from ._splice import SPLICE_AVAILABLE, SPLICE_MIN, splice
from ._response import relay_response
from ._upstream import acquire, release

__all__ = ["relay"]



def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
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
    for kind in (Abort, ProxyError, Stale, Unanswered):
        for leaf in leaves:
            if isinstance(leaf, kind):
                return leaf
    for leaf in leaves:
        if not isinstance(leaf, trio.Cancelled):
            return leaf
    return leaves[0]


async def relay(
    client: ClientSide,
    request: ev.Request,
    pool: Pool,
    prefix: str,
    config: Config,
    exchange: Exchange,
    *,
    client_ip: str,
    trusted: bool,
    closing: Callable[[], bool],
    not_ready: Callable[[Address], bool] | None = None,
    waited: bool = False,
    failed: ProxyError | None = None,
) -> None:
    """Forward `request` to a backend of `pool` and its response to the client.

    not_ready(address): called when a backend refuses a connection; True
    means it is booting again (taken out of the table), not failing.
    waited: the request failed on a backend before and waited (Resend); it
    is not sent again after another failure, and gets `failed` (the error
    it had) if no backend is up.

    Raises:
        ProxyError: nothing was sent to the client yet; it gets that status.
        Abort: the response is under way and cannot be completed.
        BackendNotReady: every backend left to try was booting again; route anew.
        Resend: it failed on a container and may go again, but no backend
            is left: route it again once those tried left the table.
    """
    length = _body_length(request, config.limits.max_body)
    attempts = Attempts(prefix, request.method, keyed=keyed(request.headers), leaving=pool.route.containers,
                        waited=waited, last_error=failed)
    stream = Stream(exchange, pool, attempts, not_ready)
    action = stream.next_backend(time.monotonic())
    while isinstance(action, BackendState):
        backend = action
        try:
            conn, reused = await acquire(backend, config.timeouts, config.parser)
        except UpstreamConnectError as error:
            action = stream.connect_failed(backend, error, time.monotonic())
            continue
        backend.mark_ok()
        strip = prefix if pool.route.strip_prefix else None
        try:
            await _exchange_with(backend, conn, reused, client, request, strip, length, config, exchange,
                                 client_ip=client_ip, trusted=trusted, closing=closing)
            return
        except Stale:
            action = stream.stale(backend, time.monotonic())
        except Unanswered as failed:
            action = stream.unanswered(backend, failed.error, body_read=exchange.body_started, now=time.monotonic())
    if action is REROUTE:
        raise BackendNotReady(f"{prefix!r}: the backends tried are booting again")
    if isinstance(action, Waiting):
        raise Resend(action)
    assert isinstance(action, ProxyError)
    raise action


def _body_length(request: ev.Request, max_body: int | None) -> int | None:
    """The request body's Content-Length (None: chunked, or none), within --max-body or refused."""
    length = body_length(request.headers)
    if max_body is not None and length is not None and length > max_body:
        raise PayloadTooLarge(f"request body of {length} bytes is over the limit of {max_body}")
    return length


async def _exchange_with(
    backend: BackendState,
    conn: HttpStream,
    reused: bool,
    client: ClientSide,
    request: ev.Request,
    prefix: str | None,
    length: int | None,
    config: Config,
    exchange: Exchange,
    *,
    client_ip: str,
    trusted: bool,
    closing: Callable[[], bool],
) -> None:
    """The exchange on one backend connection (prefix: the one to strip, if any).

    Raises (besides relay's): Stale (the pooled connection was dead: nothing
    happened) or Unanswered (the backend failed before any response byte).
    """
    with_body = has_body(request.headers)
    upgrade = is_upgrade_request(request.headers)
    headers = request_headers(
        request.headers,
        client_ip=client_ip,
        trusted=trusted,
        upstream_host=backend.host_header,
        prefix=prefix,
        upgrade=upgrade,
        allow_underscores=config.allow_underscores,
        scheme=b"https" if client.secure else b"http",
        received=b"2" if request.http_version == b"2" else b"1.1",
    )
    if with_body and length is None:
        headers.append((b"transfer-encoding", b"chunked"))  # the client's body was chunked
    target = request.target if prefix is None else strip_target(request.target, prefix)
    head = ev.Request(request.method, target, headers)
    backend.begin(exchange.route)
    try:
        await _exchange_on(conn, reused, client, head, with_body, upgrade, config, exchange, closing, length)
    except BaseException:
        await conn.aclose()
        raise
    finally:
        backend.end(exchange.route)
        backend.last_done = time.monotonic()
    if backend.errors:
        backend.mark_answered()
    await release(backend, conn, config.limits)


async def _exchange_on(
    conn: HttpStream,
    reused: bool,
    client: ClientSide,
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
            raise Stale() from None
        raise Unanswered(BadGateway("backend closed the connection")) from None
    if not with_body:
        await relay_response(conn, reused, client, upgrade, config, exchange, closing)
        return
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump_request_body, client, conn, config, exchange, length)
            await relay_response(conn, reused, client, upgrade, config, exchange, closing)
            # The backend answered before reading the whole body: stop
            # reading it; the client connection cannot be reused now.
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _first_error(group) from None
    if not client.request_complete():
        exchange.keep_client = False


async def _pump_request_body(
    client: ClientSide, conn: HttpStream, config: Config, exchange: Exchange, length: int | None = None
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


async def _splice_request_rest(
    client: ClientSide, conn: HttpStream, count: int, config: Config, exchange: Exchange
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
    client.request_spliced()
