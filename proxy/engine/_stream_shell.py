# One request on the native engine, from its route to its response's last
# byte: the stream's steps (routing/_stream.py: which backend, what a
# failure means) and the response's rules (routing/_response_rules.py)
# carried out on sockets. The client connection (_exchange.NativeClient)
# owns the client's socket, its buffers and the state; this owns the
# backend connection, the request's records and the response in flight,
# and hands the connection what goes to the client (`outbuf`) through the
# few calls of `Connection` (_contract.py), the one contract between the two.
#
# The backend's socket is watched on this object's behalf: its readiness
# comes here (ready()), the client's to the connection. Nothing here is
# HTTP/1.1's but the client's encoder (`conn`), the lane (a response
# passed on as it came) and the splice, each of which a second protocol
# turns off (lane False, no splice bound).

from __future__ import annotations

import errno
import os
import select
import time
from typing import TYPE_CHECKING

from .._errors import BadGateway, GatewayTimeout, ProxyError, UpstreamConnectError, UpstreamConnectTimeout
from ..protocol import _events as ev
from ..protocol._compiled import lane_request_head
from ..protocol._fastconn import FastConnection
from ..protocol._head import RequestHead, has_body, host_of
from ..protocol._rewrite import is_upgrade_request, request_headers, strip_target
from ..routing._answer import error_answer
from ..routing._decide import Forward, decide
from ..routing._pool import BackendState, Pool
from ..routing._record import Exchange
from ..routing._response_rules import END, MORE, SPLICE as SPLICE_REST, STALE, UNANSWERED, Failed, ResponseRelay, early_failure
from ..routing._retry import Attempts, Waiting, keyed
from ..routing._stream import Action, Stream
from . import _pass_through as passing
from ._pipe import SPLICE_AVAILABLE, SPLICE_MIN, SplicePipe
from ._socket import read, socket_error, write
from ._states import CONNECT, RESPONSE, SEND, SPLICE
from ._upstream import Upstream, connect

if TYPE_CHECKING:
    from ._contract import ClientEncoder, Connection
    from ._handover import EngineParts

__all__ = ["StreamShell", "forward", "http1_shell"]

_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT
_PROTOCOLS = {b"2": "HTTP/2", b"1.0": "HTTP/1.0"}  # what the client spoke, for the records


class StreamShell:
    """One request routed to `pool`, carried out on the engine."""

    __slots__ = ("client", "engine", "conn", "request", "head_bytes", "exchange", "stream", "pool", "prefix",
                 "relay", "upstream", "counted", "counted_route", "response_done", "keep", "splice_left",
                 "pipe", "lane", "lane_left", "lane_keep")

    def __init__(self, client: Connection, conn: ClientEncoder, request: ev.Request, head_bytes: bytes, prefix: str,
                 pool: Pool, arrived: float) -> None:
        """The exchange of `request` (its end taken from `conn`: the client's side of the exchange, its
        encoder, and what the client sent past the request)."""
        engine = self.engine = client.engine
        self.client = client
        self.conn = conn
        self.request = request
        self.head_bytes = head_bytes  # the request's head as the client sent it (for a hand-back)
        self.exchange: Exchange | None = Exchange(arrived, method=request.method, target=request.target, route=pool.route.name,
                                                  protocol=_PROTOCOLS.get(request.http_version, "HTTP/1.1"))
        self.stream = Stream(self.exchange, pool,
                             Attempts(prefix, request.method, keyed=keyed(request.headers), leaving=pool.route.containers),
                             engine.gateway.not_ready)
        self.pool = pool
        self.prefix = prefix
        self.relay = ResponseRelay(self.exchange, client.extra,
                                   splice_from=SPLICE_MIN if SPLICE_AVAILABLE and client.plain else None)
        self.upstream: Upstream | None = None
        self.counted = False  # backend.outstanding counts this exchange
        self.counted_route = ""  # and backend.in_flight counts it for this route
        self.response_done = False
        self.keep = True  # the client's connection may carry another request after this one
        self.splice_left = 0  # body bytes of a long Content-Length response not read by the parser yet
        self.pipe: SplicePipe | None = None
        # The response may take the lane (an HTTP/1.1 keep-alive client, not HEAD; never HTTP/2).
        self.lane = request.http_version == b"1.1" and request.method != b"HEAD" and conn.keep_alive
        self.lane_left = -1  # body bytes of a response in the lane still to come (-1: not in the lane)
        self.lane_keep = False  # the backend keeps its connection after that response

    # --- the cycle's hand-over (NativeClient.resume) -------------------------------

    def adopt(self, upstream: Upstream, counted_route: str, state: int) -> None:
        """The cycle sent the request on `upstream`, or began to: on from there, in `state`."""
        self.upstream = upstream
        self.counted = True
        self.counted_route = counted_route
        self.engine.loop.watch(upstream.fd, self, _IN)  # the cycle's mask: only its handler changes
        assert self.exchange is not None
        self.exchange.backend = str(upstream.backend.address)
        upstream.conn.expect_response(self.request.method)
        self.client.enter(state)

    def adopt_lane(self, status: int, keep: bool, body_out: int, left: int, unsent: bytes, started: bool) -> None:
        """The cycle wrote a lane response in part: on as the lane (_pass_through.adopt_lane)."""
        passing.adopt_lane(self, status, keep, body_out, left, unsent, started)

    # --- readiness and the deadline -------------------------------------------------

    def ready(self, fd: int, mask: int) -> None:
        """The backend's socket is ready."""
        state = self.client.state
        if state == CONNECT:
            self._connected()
        elif state == SEND:
            self.send_request()
        elif state == SPLICE:
            passing.splice(self)
        else:
            self._read_response()

    def expired(self) -> None:
        """The exchange's deadline passed (the connection's, in one of this stream's states)."""
        state = self.client.state
        if state == CONNECT:
            self._connect_failed(UpstreamConnectTimeout(f"connecting to {self._address()} timed out"))
        elif state in (SEND, RESPONSE) and not self.response_started():
            self.error(GatewayTimeout("backend did not answer in time"))
        else:
            self.client.abort("the response stalled (backend or client)")

    def fail(self) -> None:
        self.client.fail()

    def response_started(self) -> bool:
        return self.exchange is not None and self.exchange.response_started

    def wrote(self) -> None:
        """Bytes of what this stream put in outbuf went out: once the response's head is among them,
        the response has started (no answer of the gateway's can replace it)."""
        if self.exchange is not None and self.relay.head_out:
            self.exchange.response_started = True

    # --- a backend ---------------------------------------------------------------

    def _address(self) -> str:
        return str(self.upstream.backend.address) if self.upstream is not None else "-"

    def _stream(self) -> Stream:
        stream = self.stream
        assert stream is not None
        return stream

    def next_backend(self) -> None:
        self._carry(self._stream().next_backend(time.monotonic()))

    def no_backend(self) -> None:
        self._carry(self._stream().none_left(time.monotonic()))

    def _carry(self, action: Action) -> None:
        """What the stream says comes next (routing/_stream.py), carried out."""
        if isinstance(action, BackendState):
            self.use_backend(action)
        elif isinstance(action, ProxyError):
            self.error(action)
        elif isinstance(action, Waiting):  # failed on a backend, none is left: the trio path waits, then routes
            assert self.exchange is not None
            self._hand_back(action, self.exchange.backend_failures)
        else:  # REROUTE: every backend tried was booting again; the trio path routes anew (and may hold)
            self._hand_back()

    def _hand_back(self, waiting: Waiting | None = None, failures: int = 0) -> None:
        self.drop()
        self.client.hand_back_request(waiting, failures)

    def use_backend(self, backend: BackendState) -> None:
        assert self.exchange is not None
        self.exchange.backend = str(backend.address)
        upstream = self.engine.pools.take(backend)
        if upstream is not None:
            self.upstream = upstream
            self.engine.loop.watch(upstream.fd, self, _IN)  # its mask in the pool: no system call
            backend.mark_ok()
            self._begin_request()
            return
        try:
            upstream, code = connect(backend)
        except OSError as error:
            self._connect_failed(UpstreamConnectError(f"cannot connect to {backend.address}: {error}"), backend)
            return
        self.upstream = upstream
        if code == 0:
            self._connected()
        elif code == errno.EINPROGRESS:
            self.client.enter(CONNECT)
            self.engine.loop.watch(upstream.fd, self, _OUT)
            self.client.deadline(self.engine.config.timeouts.connect)
            backend.on_retire.add(self._left)
        else:
            self._connect_failed(_connect_error(backend, code))

    def _left(self) -> None:
        # The backend left the route table while we connected (its container
        # died, say: the SYN may never be answered). Nothing was sent: the
        # trio path routes the request again on the table in force.
        if self.client.state == CONNECT:
            self._hand_back()

    def _connected(self) -> None:
        upstream = self.upstream
        assert upstream is not None
        upstream.backend.on_retire.discard(self._left)
        code = socket_error(upstream.sock)
        if code:
            self._connect_failed(_connect_error(upstream.backend, code))
            return
        if upstream.backend.retired:
            # It left the table while we connected: nothing was sent; the
            # trio path routes it again on the table in force.
            self._hand_back()
            return
        upstream.backend.mark_ok()
        self._begin_request()

    def _connect_failed(self, error: UpstreamConnectError, backend: BackendState | None = None) -> None:
        if backend is None:
            assert self.upstream is not None
            backend = self.upstream.backend
        self.drop()
        self._carry(self._stream().connect_failed(backend, error, time.monotonic()))

    def _begin_request(self) -> None:
        upstream = self.upstream
        request = self.request
        assert upstream is not None and self.pool is not None
        backend = upstream.backend
        config = self.engine.config
        front = self.client.front
        secure = self.client.tls is not None
        strip = self.prefix if self.pool.route.strip_prefix else None
        target = request.target if strip is None else strip_target(request.target, strip)
        received = b"2" if request.http_version == b"2" else b"1.1"  # (Via)
        if front.trusted:
            headers = request_headers(request.headers, client_ip=front.client_ip, trusted=True,
                                      upstream_host=backend.host_header, prefix=strip,
                                      allow_underscores=config.allow_underscores,
                                      scheme=b"https" if secure else b"http", received=received)
            send = upstream.conn.send
            upstream.pending = send(ev.Request(request.method, target, headers)) + send(ev.END_OF_MESSAGE)
        else:  # the lane: the same bytes in one step (protocol/_lane.py)
            upstream.pending = lane_request_head(
                request.method, target, request.headers, client_ip=front.client_ip.encode("ascii"),
                upstream_host=backend.host_header, prefix=None if strip is None else strip.encode("utf-8"),
                allow_underscores=config.allow_underscores, secure=secure, received=received)
            upstream.conn.expect_response(request.method)
        upstream.received = 0
        if not self.counted:
            self.counted_route = self.pool.route.name
            backend.begin(self.counted_route)
            self.counted = True
        self.client.enter(SEND)
        self.client.deadline(config.timeouts.response_head)
        self.send_request()

    def send_request(self) -> None:
        """Write what is left of the request head (upstream.pending)."""
        upstream = self.upstream
        assert upstream is not None
        try:
            sent = write(upstream.fd, upstream.pending)
        except OSError:
            if upstream.reused:
                self._stale()
            else:
                self._unanswered(BadGateway("backend closed the connection"))
            return
        upstream.pending = upstream.pending[sent:]
        if upstream.pending:
            self.engine.loop.watch(upstream.fd, self, _OUT)
            return
        self.client.enter(RESPONSE)
        self.engine.loop.watch(upstream.fd, self, _IN)

    def _stale(self) -> None:
        assert self.upstream is not None
        backend = self.upstream.backend
        self.drop()
        self._carry(self._stream().stale(backend, time.monotonic()))

    def _unanswered(self, error: ProxyError) -> None:
        """The backend took the request and failed before any response byte (`error`: the 502 to give)."""
        assert self.upstream is not None
        backend = self.upstream.backend
        self.drop()
        self._carry(self._stream().unanswered(backend, error, body_read=False, now=time.monotonic()))

    # --- the response ------------------------------------------------------------

    def _read_response(self) -> None:
        upstream = self.upstream
        assert upstream is not None
        try:
            data = read(upstream.fd)
        except OSError as error:
            self.response_failed(error)
            return
        if data is not None:
            self.response_data(data)

    def response_failed(self, error: OSError) -> None:
        self._relay_failed(self.relay.broke(f"socket error: {error}"))

    def response_data(self, data: bytes) -> None:
        """One read of the response (b"": the backend closed), relayed by the rules (routing/_response_rules.py)."""
        upstream = self.upstream
        relay = self.relay
        assert upstream is not None
        upstream.received += len(data)
        if self.lane_left >= 0:
            passing.lane_body(self, data)
            return
        draining = self.engine.gateway.draining
        # The lane: only the response's first read (a head split across reads
        # is the general path's, which holds its first part already).
        if self.lane and upstream.received == len(data) and not relay.interim and not draining:
            if passing.lane_head(self, data):
                return
        upconn = upstream.conn
        upconn.receive_data(data)
        events: list[ev.Event] = []
        try:
            outcome = relay.pull(upconn, events, draining)
            if outcome == MORE and not data:
                raise relay.closed()
        except Failed as failed:
            self._send(events)
            self._relay_failed(failed)
            return
        self._send(events)
        if outcome == END:
            self.response_done = True
        elif outcome == SPLICE_REST:
            self.splice_left = relay.splice_left
            self.client.enter(SPLICE)  # once what the parser held is out (flushed)
        if relay.head_out:
            self.client.deadline(self.engine.config.timeouts.body_idle)  # every byte of the body is progress
        self.client.flush()

    def _send(self, events: list[ev.Event]) -> None:
        out = self.client.outbuf
        send = self.conn.send
        for event in events:
            out += send(event)

    def _relay_failed(self, failed: Failed) -> None:
        """The response cannot go on: the client connection is cut, or the request answered or sent again."""
        if failed.answer is None:
            self.client.abort(failed.why)
            return
        upstream = self.upstream
        assert upstream is not None
        meaning = early_failure(failed.answer, received=upstream.received, reused=upstream.reused, body_started=False)
        if meaning is STALE:
            self._stale()
        elif meaning is UNANSWERED:
            self._unanswered(failed.answer)
        else:
            assert isinstance(meaning, ProxyError)
            self.error(meaning)

    def flushed(self, waiting: bool) -> None:
        """The client's connection wrote what it could of outbuf (`waiting`: not all of it)."""
        upstream = self.upstream
        if waiting:
            if upstream is not None:
                self.engine.loop.watch(upstream.fd, self, 0)  # backpressure: not read until the client takes it
            return
        state = self.client.state
        if self.response_done:
            self.client.finished()
        elif state == SPLICE:
            passing.splice(self)
        elif upstream is not None and state == RESPONSE:
            self.engine.loop.watch(upstream.fd, self, _IN)

    def splice(self) -> None:
        """The client or the backend is ready for the splice (_pass_through.splice)."""
        passing.splice(self)

    def spliced_waiting(self) -> bool:
        """Bytes wait in the pipe for the client."""
        pipe = self.pipe
        return pipe is not None and pipe.in_pipe > 0

    # --- the end -------------------------------------------------------------------

    def error(self, error: ProxyError) -> None:
        """The gateway's own answer (nothing of the response went out)."""
        exchange = self.exchange
        assert exchange is not None
        self.drop()
        answer = error_answer(error, draining=self.engine.gateway.draining)
        exchange.status = answer.status
        exchange.bytes_out = len(answer.body)
        self.keep = not answer.closing
        conn = self.conn
        self.client.outbuf += (conn.send(ev.Response(answer.status, answer.headers, answer.reason))
                               + conn.send(ev.Data(answer.body)) + conn.send(ev.END_OF_MESSAGE))
        self.response_done = True
        self.client.flush()

    def drop(self) -> None:
        """The backend connection closed (not reused), the splice's pipe too."""
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            upstream.backend.on_retire.discard(self._left)
            self._uncount(upstream.backend)
            upstream.close(self.engine.loop)
        if self.pipe is not None:
            self.pipe.close()
            self.pipe = None

    def _uncount(self, backend: BackendState) -> None:
        if self.counted:
            self.counted = False
            backend.end(self.counted_route)
            backend.last_done = time.monotonic()

    def finish(self) -> None:
        """The response went out whole: the backend connection back to its pool, the exchange recorded."""
        upstream = self.upstream
        engine = self.engine
        if upstream is not None:
            self.upstream = None
            backend = upstream.backend
            self._uncount(backend)
            if backend.errors:
                backend.mark_answered()
            engine.pools.give(upstream, engine.config.limits.max_idle_upstream)
        self.record()
        engine.served += 1

    def record(self) -> None:
        """The exchange on the gateway's record (once)."""
        if self.exchange is not None:
            self.engine.gateway.record(self.client.front.client_ip, self.exchange)
            self.exchange = None


def forward(engine: EngineParts, target: bytes, headers: ev.Headers) -> Forward | None:
    """Where the engine sends a request itself: one without a body (not OPTIONS *, not an upgrade)
    that decide() forwards; None: the trio path serves it."""
    if has_body(headers) or target == b"*" or is_upgrade_request(headers):
        return None
    gateway = engine.gateway
    now = time.monotonic()
    decision = decide(gateway.table, target, host=host_of(headers), now=now, arrived=now,
                      hold=engine.config.discovery.hold, routes_complete=gateway.routes_complete,
                      can_wake=gateway.waker is not None)
    return decision if isinstance(decision, Forward) else None


def http1_shell(client: Connection, head: RequestHead, head_bytes: bytes, rest: bytes, prefix: str, pool: Pool,
                arrived: float) -> StreamShell:
    """The exchange of the HTTP/1.1 request whose checked head is `head` (`rest`: what the client sent
    after it), on the client's own encoder."""
    conn, request = FastConnection.for_request(head, rest, max_head=client.engine.gateway.max_head)
    event = conn.next_event()
    assert type(event) is ev.EndOfMessage, event
    client.front.client.start_request(conn, head)
    return StreamShell(client, conn, request, head_bytes, prefix, pool, arrived)


def _connect_error(backend: BackendState, code: int) -> UpstreamConnectError:
    return UpstreamConnectError(f"cannot connect to {backend.address}: {os.strerror(code)}",
                                refused=code == errno.ECONNREFUSED)
