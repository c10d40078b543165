# The gateway's trio shell: listeners, the per-connection loop, the route
# table swap, and graceful drain.
#
# Rules:
# - the route table is replaced whole, by one assignment (set_routes); a
#   request reads self.table once and keeps that snapshot;
# - a connection slot is taken before accept(), so past --max-connections
#   new connections wait in the kernel's listen backlog, never accepted and
#   then dropped;
# - the peer going away is a normal end; anything else escaping a connection
#   is a bug, logged once, and ends that connection only.

from __future__ import annotations

import errno
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import trio

from fastroute import RouteTable

from ..protocol import _events as ev
from ._accesslog import AccessLog
from .._config import Address, Config, Route
from ..protocol._wire import encode_response_head
from ..routing._answer import error_answer
from ..routing._decide import Answer, Forward, Hold, Wake, decide
from .._errors import (
    BadGateway,
    ClientProtocolError,
    ConfigError,
    ProxyError,
)
from ..protocol._head import Refused, find_head
from ..protocol._compiled import check_head
from ._http import MAX_RECV, PARSERS, HttpStream, receive_some
from ._listen import bind_sockets, start_listening
from ..admin._metrics import Stats
from ..routing._pool import Registry
from ._relay import Abort, Exchange, has_body, relay
from ._upstream import BackendLeft, BackendNotReady, close_idle

__all__ = ["Gateway"]

log = logging.getLogger("fastroute")

ALLOW = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"  # the answer to OPTIONS *
ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
ACCEPT_RETRY = 0.1  # seconds between accept attempts while out of descriptors
REROUTES = 2  # times a request is routed again when its backend leaves during the connect
# Times a request is routed again when the backends it tried were booting
# again (each time, a probe must have found one ready in between).
REROUTES_NOT_READY = 8


class _Connection:
    __slots__ = ("idle_scope",)

    def __init__(self) -> None:
        self.idle_scope: trio.CancelScope | None = None


class Gateway:
    """The proxy: serve() listens, set_routes() swaps the table, drain() stops."""

    def __init__(self, config: Config, *, access_log: AccessLog | None = None) -> None:
        self.config = config
        self.registry = Registry()
        self.table: Any = RouteTable({})
        self.draining = False
        self.addresses: list[tuple[str, int]] = []
        self._access = access_log or AccessLog(config.access_log)
        self._slots = trio.Semaphore(config.limits.max_connections)
        self._connections: set[_Connection] = set()
        self._idle_again = trio.Event()
        self._accepting: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._bound: list[trio.socket.SocketType] = []
        self._listeners: list[trio.SocketListener] = []
        self._last_capacity_warning = 0.0
        self._trusted = config.trusted_proxies
        limits = config.limits
        self._max_head = limits.max_header_bytes + limits.max_target + 1024
        self._parser = PARSERS[config.parser]
        self.swaps = 0
        self.watcher: Any = None  # the DockerWatcher feeding this gateway, if any
        self.waker: Any = None  # the Waker that starts fastroute.wake containers, if any
        self.stats: Stats | None = None  # per-request counts, kept only with --admin
        # Whether the table holds every source's routes. False while the
        # first Docker listing is awaited: a request no route matches waits.
        self.routes_complete = True
        # Called with a backend that refused a connection; True if it was a
        # container that is booting again (the watcher's refused()).
        self.not_ready: Callable[[Address], bool] | None = None
        self._table_changed = trio.Event()  # set (and replaced) on every swap

    # --- routes ------------------------------------------------------------

    def set_routes(self, routes: Iterable[Route]) -> None:
        """Build a new table for `routes` and swap it in (one assignment)."""
        values, gone = self.registry.build(routes)
        table = RouteTable(values)
        self.table = table
        self.swaps += 1
        self._table_changed.set()
        self._table_changed = trio.Event()
        if gone and self._nursery is not None:
            for state in gone:
                self._nursery.start_soon(close_idle, state)

    def mark_routes_complete(self) -> None:
        """Every source's routes are in the table now: requests that wait for them look again."""
        self.routes_complete = True
        self._table_changed.set()
        self._table_changed = trio.Event()

    # --- serving -----------------------------------------------------------

    async def bind(self) -> None:
        """Bind every configured address, without listening yet (see _listen.bind_sockets).

        Raises:
            ConfigError: an address cannot be bound (in use, say).
        """
        if self._bound:
            return
        bound: list[trio.socket.SocketType] = []
        for address in self.config.listen:
            try:
                bound += await bind_sockets(address, reuse_port=self.config.workers > 1)
            except OSError as error:
                for sock in bound:
                    sock.close()
                raise ConfigError(f"cannot listen on {address}: {error.strerror or error}") from None
        self._bound = bound
        self.addresses = [sock.getsockname()[:2] for sock in bound]

    @property
    def listening(self) -> bool:
        """Whether it accepts connections (it binds at once, listens once its routes are known)."""
        return bool(self._listeners)

    def close_sockets(self) -> None:
        """Close every listening (or only bound) socket."""
        for sock in self._bound:
            sock.close()

    async def listen(self) -> None:
        """Bind (unless bind() did) and listen on every configured address.

        Raises:
            ConfigError: an address cannot be bound (in use, say).
        """
        await self.bind()
        if not self._listeners:
            self._listeners = start_listening(self._bound)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Accept and serve connections until drained or cancelled.

        Listens first unless listen() did. task_status.started() gets the
        bound (host, port) pairs.
        """
        try:
            await self.listen()
        except BaseException:
            for sock in self._bound:
                sock.close()
            raise
        listeners = self._listeners
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                with trio.CancelScope() as accepting:
                    self._accepting = accepting
                    if self.draining:
                        accepting.cancel()  # told to stop before it opened
                    async with trio.open_nursery() as accept_nursery:
                        for listener in listeners:
                            accept_nursery.start_soon(self._accept_loop, listener, nursery)
                        task_status.started(self.addresses)
                for listener in listeners:
                    listener.socket.close()
                # Draining: the connection tasks in `nursery` finish by themselves.
        finally:
            for listener in listeners:
                listener.socket.close()
            for state in self.registry.states.values():
                while state.idle:
                    conn, _ = state.idle.pop()
                    conn.stream.socket.close()

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            await self._slots.acquire()
            try:
                stream = await listener.accept()
            except OSError as error:
                self._slots.release()
                if error.errno not in ACCEPT_CAPACITY_ERRNOS:
                    raise
                # Out of file descriptors or memory: the connection stays in
                # the backlog; serve what is open and try again shortly.
                now = time.monotonic()
                if now - self._last_capacity_warning > 5:
                    self._last_capacity_warning = now
                    log.error("accept failed (%s); retrying every %gs", error.strerror, ACCEPT_RETRY)
                await trio.sleep(ACCEPT_RETRY)
                continue
            except BaseException:
                self._slots.release()
                raise
            nursery.start_soon(self._handle, stream)

    async def drain(self) -> None:
        """Stop accepting, close idle connections, wait for in-flight requests.

        Waits at most the drain timeout; the caller then cancels what is left.
        """
        self.draining = True
        if self._accepting is not None:
            self._accepting.cancel()
        for connection in list(self._connections):
            if connection.idle_scope is not None:
                connection.idle_scope.cancel()
        with trio.move_on_after(self.config.timeouts.drain):
            while self._connections:
                await self._idle_again.wait()
                self._idle_again = trio.Event()

    # --- one client connection ---------------------------------------------

    async def _handle(self, stream: trio.SocketStream) -> None:
        connection = _Connection()
        self._connections.add(connection)
        client = HttpStream(stream, None)
        try:
            peer = stream.socket.getpeername()
            client_ip = peer[0] if isinstance(peer, tuple) else str(peer)
            trusted = self._is_trusted(client_ip)
            first = True
            while not self.draining or first:
                request = await self._read_head(client, connection, first, client_ip)
                if request is None:
                    break
                first = False
                if not await self._serve_request(client, request, client_ip, trusted):
                    break
                # What the client sent after this request starts the next head.
                client.pending += client.conn.trailing_data[0]
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("bug: unexpected error on a client connection; closing it")
        finally:
            await client.aclose()
            self._connections.discard(connection)
            self._slots.release()
            self._idle_again.set()

    def _record(self, client_ip: str, exchange: Exchange) -> None:
        self._access.write(client_ip, exchange)
        stats = self.stats
        if stats is not None:
            route = exchange.route
            stats.observe(route, exchange.status, time.monotonic() - exchange.started)
            for _ in range(exchange.connect_errors):
                stats.connect_failed(route, timed_out=False)
            for _ in range(exchange.connect_timeouts):
                stats.connect_failed(route, timed_out=True)

    def _is_draining(self) -> bool:
        return self.draining

    def _is_trusted(self, ip: str) -> bool:
        if not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

    async def _read_head(
        self, client: HttpStream, connection: _Connection, first: bool, client_ip: str
    ) -> ev.Request | None:
        """The next request head, checked (_head.py), or None to just close.

        A client that sends nothing within the idle time (the head timeout for
        a new connection, the keep-alive timeout after a response) is closed
        without a word; one that starts a head and does not finish it within
        the head timeout gets 408. A head that breaks a rule gets its 4xx/5xx
        and the connection closes. The checked head, and whatever followed
        it, go to a fresh connection object (the --parser's) for this one
        request.
        """
        timeouts = self.config.timeouts
        limits = self.config.limits
        buffer = client.pending
        deadline = trio.current_time() + (timeouts.request_head if first else timeouts.keepalive)
        started = False
        while True:
            while buffer[:2] == b"\r\n":
                del buffer[:2]  # RFC 9112 section 2.2: ignore empty lines before a request
            if buffer and not started:
                started = True
                deadline = trio.current_time() + timeouts.request_head
            try:
                end = find_head(buffer, limits)
            except Refused:
                return None
            except ClientProtocolError as error:
                await self._reject(client, client_ip, error)
                return None
            if end is not None:
                break
            with trio.CancelScope(deadline=deadline) as scope:
                if not started:
                    connection.idle_scope = scope
                    if self.draining:
                        scope.cancel()  # accepted just as draining began, or idle
                data = await receive_some(client.stream, MAX_RECV)
            connection.idle_scope = None
            if scope.cancelled_caught:
                if started:
                    await self._reject(client, client_ip, ProxyError("request head not received in time", status=408))
                return None
            if not data:
                return None  # the client closed (mid-head or between requests)
            buffer += data
        try:
            head = check_head(bytes(buffer[:end]), limits)
        except ClientProtocolError as error:
            await self._reject(client, client_ip, error)
            return None
        rest = bytes(buffer[end:])
        buffer.clear()
        try:
            client.conn, request = self._parser.for_request(head, rest, max_head=self._max_head)
        except ev.RemoteProtocolError as error:  # h11 is stricter somewhere: still a 4xx
            await self._reject(client, client_ip, ClientProtocolError(str(error), status=error.status_hint))
            return None
        client.response_bypassed = client.request_bypassed = False
        client.head = head
        return request  # type: ignore[no-any-return]

    async def _reject(self, client: HttpStream, client_ip: str, error: ProxyError) -> None:
        """Answer a head that cannot be served, and log it; the caller closes."""
        exchange = Exchange()
        answer = error_answer(error, head_refused=True)
        exchange.status = answer.status
        exchange.bytes_out = len(answer.body)
        data = encode_response_head(answer.status, answer.reason, answer.headers) + answer.body
        try:
            await client.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self._record(client_ip, exchange)

    async def _serve_request(self, client: HttpStream, request: ev.Request, client_ip: str, trusted: bool) -> bool:
        """Answer one request. Returns whether the connection may carry another."""
        exchange = Exchange(method=request.method, target=request.target)
        table = self.table  # one snapshot for the whole request
        if not has_body(request.headers):
            # The parser holds the EndOfMessage already: take it, so the client side
            # is DONE (or ready to switch protocols) when the response ends.
            event = client.conn.next_event()
            assert type(event) is ev.EndOfMessage, event
        if request.target == b"*":  # OPTIONS * (_head.py lets no other method through)
            await client.send_many(
                ev.Response(200, [(b"allow", ALLOW), (b"content-length", b"0")], b"OK"), ev.END_OF_MESSAGE
            )
            exchange.status = 200
            self._record(client_ip, exchange)
            return client.reusable() and not self.draining
        arrived = time.monotonic()
        reroutes = not_ready = 0
        waiting_for: str | None = None
        wake_until: float | None = None
        config = self.config
        try:
            while True:
                now = time.monotonic()
                decision = decide(
                    table, request.target, now=now, arrived=arrived, hold=config.discovery.hold,
                    routes_complete=self.routes_complete, can_wake=self.waker is not None,
                    waiting_for=waiting_for, wake_until=wake_until, wake_limit=config.timeouts.wake,
                )
                kind = type(decision)
                if kind is Forward:
                    assert isinstance(decision, Forward)
                    exchange.route = decision.prefix
                    try:
                        await relay(
                            client, request, decision.upstream, decision.prefix, config, exchange,
                            client_ip=client_ip, trusted=trusted, closing=self._is_draining,
                            not_ready=self.not_ready,
                        )
                        break
                    except BackendNotReady:
                        # It refused just after it became ready: it is booting
                        # again and out of the table. Route again (and wait).
                        not_ready += 1
                        if not_ready > REROUTES_NOT_READY:
                            raise BadGateway("every backend chosen refused the connection") from None
                    except BackendLeft:
                        # Its backend left the table while we connected to it:
                        # nothing was sent, so route again on the table now in force.
                        reroutes += 1
                        if reroutes > REROUTES:
                            raise BadGateway("every backend chosen left the route table") from None
                elif kind is Answer:
                    assert isinstance(decision, Answer)
                    raise decision.error
                elif kind is Wake:
                    assert isinstance(decision, Wake) and self.waker is not None
                    exchange.route = waiting_for = decision.prefix
                    wake_until = now + config.timeouts.wake
                    with trio.move_on_after(config.timeouts.wake):
                        await self.waker.wake(decision.prefix, decision.ids)  # raises when the start fails
                else:
                    assert isinstance(decision, Hold)
                    if decision.prefix is not None:
                        exchange.route = waiting_for = decision.prefix
                    changed = self._table_changed
                    with trio.move_on_after(max(0.0, decision.until - now)):
                        await changed.wait()
                table = self.table
        except ProxyError as error:
            if exchange.response_started:
                exchange.keep_client = False
            else:
                await self._answer(client, exchange, error)
        except Abort as reason:
            log.debug("closing client connection: %s", reason)
            exchange.keep_client = False
        finally:
            self._record(client_ip, exchange)
        return exchange.keep_client and client.reusable() and not self.draining

    async def _answer(self, client: HttpStream, exchange: Exchange, error: ProxyError) -> None:
        """The proxy's own short plain-text answer (routing/_answer.py decides it)."""
        answer = error_answer(error, draining=self.draining, body_unread=client.conn.their_state is ev.SEND_BODY)
        exchange.status = answer.status
        exchange.bytes_out = len(answer.body)
        exchange.keep_client = not answer.closing
        if client.conn.our_state is not ev.IDLE and client.conn.our_state is not ev.SEND_RESPONSE:
            return
        try:
            await client.send_many(ev.Response(answer.status, answer.headers, answer.reason), ev.Data(answer.body),
                                   ev.END_OF_MESSAGE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, ev.LocalProtocolError):
            pass
