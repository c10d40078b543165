# The gateway's trio shell: the route table swap, the listeners and their
# accept loops, and graceful drain. Each accepted connection is served by a
# ClientConnection (_connection.py).
#
# Rules:
# - the route table is replaced whole, by one assignment (set_routes); a
#   request reads self.table once and keeps that snapshot;
# - a connection slot is taken before accept(), so past --max-connections
#   new connections wait in the kernel's listen backlog, never accepted and
#   then dropped.

from __future__ import annotations

import errno
import ipaddress
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import trio

from fastroute import HostTable

from .._config import Address, Config, Route
from .._errors import ConfigError
from ..routing._stats import Stats
from ._health import follow_checks
from ..routing._record import Exchange
from ..routing._pool import BackendState, Pool, Registry
from ._accesslog import AccessLog
from ._connection import ClientConnection
from ._http import PARSERS
from ._listen import ACCEPT_BURST, Backlog, bind_sockets, connection_slots, raise_nofile, start_listening
from ._upstream import close_idle
from ..acme._store import Store
from ..tls._certs import Certificates
from ..tls._redirect import https_location

from ..engine._loop import EPOLL_AVAILABLE

if TYPE_CHECKING:
    from ..discovery._waker import Waker
    from ..engine._engine import Engine
    from ..discovery._watcher import DockerWatcher

__all__ = ["Gateway"]

log = logging.getLogger("fastroute")

ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
ACCEPT_RETRY = 0.1  # seconds between accept attempts while out of descriptors


class Gateway:
    """The proxy: serve() listens, set_routes() swaps the table, drain() stops."""

    def __init__(self, config: Config, *, access_log: AccessLog | None = None, managed: Store | None = None) -> None:
        self.config = config
        self.started = time.time()  # for the status page's uptime
        self.registry = Registry(eject=config.timeouts.eject)
        self.table: HostTable[Pool] = HostTable({})
        self.draining = False
        self.addresses: list[tuple[str, int]] = []  # the plain listeners' (host, port)
        self.tls_addresses: list[tuple[str, int]] = []  # the TLS listeners' (--listen-tls)
        # --tls-cert/--tls-key, loaded now (a bad file is a ConfigError before listening).
        # With ACME (`managed`, its store), its certificates too.
        self.certificates = (Certificates(config.tls.pairs, managed) if config.tls.pairs or managed is not None
                             else None)
        self._access = access_log or AccessLog(config.access_log)
        self._nofile = raise_nofile()
        self._slots = trio.Semaphore(connection_slots(config.limits.max_connections, self._nofile))
        self._connections: set[ClientConnection] = set()
        self._idle_again = trio.Event()
        self._accepting: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None
        self._bound: list[trio.socket.SocketType] = []
        self._tls_sockets: set[trio.socket.SocketType] = set()  # those of _bound that speak TLS
        self._http1_sockets: set[trio.socket.SocketType] = set()  # those that speak HTTP/1.1 only (--no-http2)
        self._listeners: list[trio.SocketListener] = []
        self._last_capacity_warning = 0.0
        self._trusted = config.trusted_proxies
        limits = config.limits
        self.max_head = limits.max_header_bytes + limits.max_target + 1024  # bytes of a request head, for the parser
        self.parser = PARSERS[config.parser]
        self.swaps = 0
        self.retired: list[BackendState] = []
        self.watcher: DockerWatcher | None = None  # the watcher feeding this gateway, if any
        self.waker: Waker | None = None  # starts fastroute.wake containers, if any
        self.stats: Stats | None = None  # per-request counts, kept only with --admin
        # Whether the table holds every source's routes. False while the
        # first Docker listing is awaited: a request no route matches waits.
        self.routes_complete = True
        # Called with a backend that refused a connection; True if it was a
        # container that is booting again (the watcher's refused()).
        self.not_ready: Callable[[Address], bool] | None = None
        self.table_changed = trio.Event()  # set (and replaced) on every swap
        self.engine: Engine | None = None  # --io native: made by serve()
        # ACME with TLS-ALPN-01: the context that answers a CA's validation for a name, if one is pending.
        self.acme_challenge: Callable[[str], ssl.SSLContext | None] | None = None

    # --- routes ------------------------------------------------------------

    def set_routes(self, routes: Iterable[Route]) -> None:
        """Build a new table for `routes` and swap it in (one assignment)."""
        values, gone = self.registry.build(routes)
        table = HostTable(values)
        self.table = table
        self.swaps += 1
        self.table_changed.set()
        self.table_changed = trio.Event()
        # Backends no route uses any more, while requests they took finish (the status page's "draining").
        self.retired = [s for s in (*self.retired, *gone) if s.outstanding]
        if gone and self._nursery is not None:
            for state in gone:
                self._nursery.start_soon(close_idle, state)

    @property
    def engine_answered(self) -> bool:
        """The Docker engine followed, if any, has answered since start (see routing/_decide.py)."""
        return self.watcher is None or self.watcher.answered

    def mark_routes_complete(self) -> None:
        """Every source's routes are in the table now: requests that wait for them look again."""
        self.routes_complete = True
        self.table_changed.set()
        self.table_changed = trio.Event()

    # --- serving -----------------------------------------------------------

    async def bind(self) -> None:
        """Bind every configured address, without listening yet (see _listen.bind_sockets).

        Raises:
            ConfigError: an address cannot be bound (in use, say).
        """
        if self._bound:
            return
        bound: list[trio.socket.SocketType] = []
        tls: set[trio.socket.SocketType] = set()
        http1: set[trio.socket.SocketType] = set()  # --no-http2
        addresses = [(address, False) for address in self.config.listen]
        addresses += [(address, True) for address in self.config.tls.listen]
        for address, secure in addresses:
            try:
                some = await bind_sockets(address, reuse_port=self.config.workers > 1)
            except OSError as error:
                for sock in bound:
                    sock.close()
                flag = "--listen-tls" if secure else "--listen"
                raise ConfigError(f"cannot listen on {address} ({flag}): {error.strerror or error}") from None
            bound += some
            if secure:
                tls.update(some)
            if address in self.config.no_http2:
                http1.update(some)
        self._bound = bound
        self._tls_sockets = tls
        self._http1_sockets = http1
        self.addresses = [sock.getsockname()[:2] for sock in bound if sock not in tls]
        self.tls_addresses = [sock.getsockname()[:2] for sock in bound if sock in tls]

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

    async def serve(self, *, task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED) -> None:
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
        self._say_capacity()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.config.io == "native" and self.engine is None:
                    if EPOLL_AVAILABLE and self.config.parser == "fast":
                        from ..engine._engine import Engine

                        self.engine = Engine(self)
                        await nursery.start(self.engine.run)
                    elif not EPOLL_AVAILABLE:
                        log.warning("--io native needs epoll, which this platform lacks; serving with --io trio")
                    else:  # --parser h11: the engine reads with the fast parser only (the start-up line says trio)
                        log.info("--parser h11 is served by the trio path (--io native needs --parser fast)")
                if self.certificates is not None:
                    await nursery.start(self.certificates.watch)
                with trio.CancelScope() as accepting:
                    self._accepting = accepting
                    if self.draining:
                        accepting.cancel()  # told to stop before it opened
                    async with trio.open_nursery() as accept_nursery:
                        accept_nursery.start_soon(follow_checks, self)  # stops with accepting, at the drain
                        for listener in listeners:
                            secure = listener.socket in self._tls_sockets
                            http2 = listener.socket not in self._http1_sockets
                            accept_nursery.start_soon(self._accept_loop, listener, nursery, secure, http2)
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

    def _say_capacity(self) -> None:
        asked, slots = self.config.limits.max_connections, self._slots.value
        if slots < asked:
            # A warning when it takes away most of what was asked for (a low
            # ulimit -n); a few connections fewer is not worth one.
            level = logging.WARNING if slots < asked // 2 else logging.DEBUG
            log.log(level, "--max-connections %d is more than %d file descriptors allow (ulimit -n): "
                    "serving at most %d connections at once", asked, self._nofile, slots)

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery, secure: bool,
                           http2: bool) -> None:
        # The slot is taken once a connection waits, not before: a loop that
        # held one while waiting would starve the other listeners (a plain and
        # a TLS address, or IPv4 and IPv6) of it at the last free slot.
        backlog = Backlog(listener)
        try:
            while True:
                await trio.lowlevel.wait_readable(listener.socket)
                await self._slots.acquire()
                try:
                    stream = backlog.take()
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
                if stream is None:  # gone before we took it (reset by the client, or another worker's)
                    self._slots.release()
                    continue
                nursery.start_soon(self._handle, stream, secure, http2)
                self._take_more(backlog, nursery, secure, http2)
        finally:
            backlog.close()

    def _take_more(self, backlog: Backlog, nursery: trio.Nursery, secure: bool, http2: bool) -> None:
        """After an accept, the rest of a burst without a checkpoint each (ACCEPT_BURST at most)."""
        for _ in range(ACCEPT_BURST - 1):
            try:
                self._slots.acquire_nowait()
            except trio.WouldBlock:
                return
            try:
                stream = backlog.take()
            except OSError as error:
                self._slots.release()
                if error.errno in ACCEPT_CAPACITY_ERRNOS:
                    return  # the accept loop's next turn waits and says so
                raise
            if stream is None:
                self._slots.release()
                return
            nursery.start_soon(self._handle, stream, secure, http2)

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
        if self.engine is not None:
            self.engine.drain()
        with trio.move_on_after(self.config.timeouts.drain):
            while self._connections:
                await self._idle_again.wait()
                self._idle_again = trio.Event()

    async def _handle(self, stream: trio.SocketStream, secure: bool, http2: bool = True) -> None:
        connection = ClientConnection(self, stream, secure=secure, http2=http2)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            self._slots.release()
            self._idle_again.set()

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return len(self._connections)

    # --- what the connections ask of the gateway -----------------------------

    def record(self, client_ip: str, exchange: Exchange) -> None:
        """One request done: the access log line, and the metrics with --admin."""
        self._access.write(client_ip, exchange)
        stats = self.stats
        if stats is not None:
            route = exchange.route
            now = time.monotonic()
            stats.observe(route, exchange.status, now - exchange.started, now, exchange.bytes_in, exchange.bytes_out)
            stats.by_protocol(exchange.protocol)
            for _ in range(exchange.connect_errors):
                stats.connect_failed(route, timed_out=False)
            for _ in range(exchange.connect_timeouts):
                stats.connect_failed(route, timed_out=True)
            if exchange.backend_failures:
                stats.backend_failed(route, exchange.backend_failures)

    def records(self) -> bool:
        """Whether record() keeps anything (an access log, or metrics): else a caller may skip it."""
        return self._access.enabled or self.stats is not None

    def idle_upstreams(self, state: BackendState) -> int:
        """Pooled connections to one backend, idle now (the trio path's and the engine's)."""
        return len(state.idle) + (self.engine.pools.count(state) if self.engine is not None else 0)

    def is_draining(self) -> bool:
        return self.draining

    def https_location(self, host: bytes | None, target: bytes) -> bytes | None:
        """With --redirect-https, the https:// address a plain request for `host` is sent to; else None."""
        tls = self.config.tls
        if not tls.redirect_https or self.certificates is None or not self.tls_addresses:
            return None
        port = tls.https_port if tls.https_port is not None else self.tls_addresses[0][1]
        return https_location(host, target, port, self.certificates.index.covers)

    def is_trusted(self, ip: str) -> bool:
        """Whether `ip` is in --trusted-proxies (its X-Forwarded-* are kept)."""
        if not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)
