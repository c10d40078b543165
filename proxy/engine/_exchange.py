# One client connection served by the native engine: the steady-state
# exchange as a state machine driven by the loop (_loop.py). It decides
# nothing of its own: decide() routes, routing/_stream.py says which
# backend to try and what comes after a failure, routing/_response_rules.py
# how the response goes on, routing/_answer.py makes the gateway's answers,
# protocol/ reads, checks and rewrites; the client's socket is its
# Transport (_transport.py). Its state is the cycle's (_cycle.py), whose
# compiled steps serve the commonest exchange whole and hand anything else
# to resume() here. What the engine serves and hands back, the lane, and
# its rules: ARCHITECTURE.md, "The native engine".
#
# States: _states.py lists them and every move between them (the one
# table); _enter() is the only place this class enters one.

from __future__ import annotations

import errno
import logging
import os
import select
import time
from typing import TYPE_CHECKING

import trio

from .._errors import (
    BadGateway,
    ClientProtocolError,
    GatewayTimeout,
    ProxyError,
    UpstreamConnectError,
    UpstreamConnectTimeout,
)
from ..protocol import _events as ev
from ..protocol._compiled import check_head, lane_request_head, lane_response_head
from ..protocol._errors import Refused
from ..protocol._fastconn import FastConnection
from ..protocol._lane import with_fields as lane_with_fields
from ..protocol._head import RequestHead, has_body, head_begun, host_of
from ..protocol._reader import next_head
from ..protocol._rewrite import is_upgrade_request, request_headers, strip_target
from ..routing._answer import error_answer, refusal
from ..routing._decide import Forward, decide
from ..routing._record import Exchange
from ..routing._pool import BackendState, Pool
from ..routing._response_rules import END, MORE, SPLICE as SPLICE_REST, STALE, UNANSWERED, Failed, ResponseRelay, early_failure
from ..routing._retry import Attempts, Waiting, keyed
from ..routing._stream import Action, Stream
from ..tls._session import TlsFailed, TlsSession
from ._errors import SinkFailed, SourceFailed
from ._handover import EngineParts, Front, HandBack
from ._handshake import ANSWERED, DONE, PLAIN, READING, WRITING, Handshake
from ._cycle import LANE, READ, ROUTED, SENDING, Cycle
from ._states import ALLOWED, CLOSED, CONNECT, FAST, HANDSHAKE, HEAD, NAMES, RESPONSE, SEND, SPLICE, START
from ._loop import Timed
from ._pipe import SPLICE_AVAILABLE, SPLICE_MIN, SplicePipe
from ._socket import read, socket_error, write
from ._transport import Transport
from ._upstream import connect

if TYPE_CHECKING:
    from .._config import Config
    from ._host import Host
    from ._upstream import Pools
    from ._loop import Loop

__all__ = ["NativeClient"]

log = logging.getLogger("fastroute")

_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT
_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class NativeClient(Cycle):
    """The requests of one client connection, while the engine serves them.

    Its attributes are the cycle's (_cycle.py): the compiled cycle serves the
    commonest exchange itself and hands anything else to these methods.
    """

    __slots__ = ()

    def __init__(self, engine: EngineParts, front: Front, pending: bytes) -> None:
        self.engine = engine
        self.front = front
        stream = front.client.stream
        self.fd = stream.socket.fileno()  # type: ignore[attr-defined]
        # Over TLS, the session (tls/_session.py) the trio path's stream made in the handshake: what
        # is read from the socket is ciphertext for it, and what goes to the client is encrypted by it.
        session = getattr(stream, "session", None)
        self.tls = session if isinstance(session, TlsSession) else None
        self.transport = Transport(self.fd, self.tls)  # the socket's reads and writes, plain or TLS
        self.extra = front.client.response_extra  # fields added to every response (HSTS)
        self.handshake = None  # a TLS client's handshake while it is made (_handshake.py)
        self.state = START  # not a move: where every connection begins
        self.done = trio.Event()
        self.result = None
        self.inbuf = bytearray(pending)
        self.outbuf = bytearray()  # bytes for the client not written yet
        self.started = False  # a byte of the current request head came
        self.timed = Timed()
        self.conn = None
        self.request = None
        # The checked head of the request the cycle routed (state FAST); None when the cycle read it as
        # plain (protocol/_lane.plain_request: check_head accepts it as it is), then made on a hand-over.
        self.head = None
        self.head_bytes = b""  # the request's head as the client sent it (for a hand-back)
        self.arrived = 0.0  # time.monotonic() when the cycle routed it
        self.exchange = None
        self.stream = None  # the request's tries on its pool (routing/_stream.py)
        self.pool = None
        self.prefix = ""
        self.upstream = None
        self.counted = False  # backend.outstanding counts this exchange
        self.counted_route = ""  # and backend.in_flight counts it for this route
        self.relay = None  # the response's rules (routing/_response_rules.py), for the exchange in flight
        self.response_done = False
        self.keep = True
        self.splice_left = 0  # body bytes of a long Content-Length response not read by the parser yet
        self.pipe = None
        self.reading = True  # the client socket is read while an exchange is in flight (bytes queue in inbuf)
        self.eof = False  # the client closed its side; what inbuf holds is all there is
        self.lane = False  # the response may take the lane (an HTTP/1.1 keep-alive client, not HEAD)
        self.lane_left = -1  # body bytes of a response in the lane still to come (-1: not in the lane)
        self.lane_keep = False  # the backend keeps its connection after that response
        self.fast = not front.trusted  # the cycle may serve its requests (it writes an untrusted client's head)
        self.client_ip_b = front.client_ip.encode("ascii")
        self.status = 0  # of a lane response the cycle passes on in several reads
        self.body_out = 0  # its body bytes written so far
        self.body_length = 0  # its Content-Length
        self.configure()

    def _enter(self, state: int) -> None:
        """The one place the general path enters a state: a move _states.MOVES lists, or a bug."""
        if (self.state, state) not in ALLOWED:
            raise AssertionError(f"no move from {NAMES[self.state]} to {NAMES[state]} (engine/_states.py)")
        self.state = state

    # --- the start, and the two ends -----------------------------------------

    def start(self, first: bool, *, handshake: bool = False) -> None:
        """Serve from here: the first request head (`first`), or the next; with `handshake`, the TLS
        handshake before the first."""
        if handshake:
            self._begin_handshake()
            return
        timeouts = self.engine.config.timeouts
        if self.tls is not None:
            self._take_decrypted()  # records the trio path received and did not read
        self._wait_head(timeouts.request_head if first else timeouts.keepalive)
        self.parse()

    def _take_decrypted(self) -> None:
        try:
            data = self.transport.decrypted()
        except OSError:
            data = b""
        if data:
            self.inbuf += data
        elif data is not None:
            self.eof = True  # the client's close_notify, or TLS broke

    # --- the TLS handshake -------------------------------------------------------

    def _begin_handshake(self) -> None:
        self._enter(HANDSHAKE)
        if self.engine.gateway.draining:
            self._close()  # accepted just as draining began
            return
        assert self.tls is not None
        self.handshake = Handshake(self.fd, self.tls, self.transport.unsent, self.engine.gateway.acme_challenge)
        self.engine.loop.watch(self.fd, self, _IN)
        self._deadline(self.engine.config.timeouts.request_head)  # for the handshake and the head, as the trio path
        self._shake()

    def _shake(self) -> None:
        """The handshake goes on (_handshake.py): the socket watched for what it asks, or its end carried out."""
        handshake = self.handshake
        assert handshake is not None
        step = handshake.step()
        if step == READING or step == WRITING:
            self.engine.loop.watch(self.fd, self, _IN | (_OUT if step == WRITING else 0))
            return
        self.handshake = None
        if step == PLAIN:
            self.engine.handed_back += 1
            self.result = HandBack(handshake.plain, plain=True)
            self._close()
        elif step == ANSWERED:
            self.engine.handshakes += 1
            log.info("ACME: answered a TLS-ALPN-01 challenge")
            # The validation's own session: its close_notify, not the client's.
            self.tls = self.transport.tls = handshake.tls
            self._close()
        elif step == DONE:
            self.engine.handshakes += 1
            self._take_decrypted()  # the first request often comes with the client's last flight
            self._wait_head(self.engine.config.timeouts.request_head)
            self.parse()
        else:
            self._close()

    def _wait_head(self, idle: float) -> None:
        self._enter(HEAD)
        self.started = False
        self.reading = not self.eof
        self.engine.loop.watch(self.fd, self, _IN if self.reading else 0)
        self._deadline(idle)

    def _close(self) -> None:
        if self.state == CLOSED:
            return
        if self.result is None:
            if self.inbuf or (self.conn is not None and self.conn.trailing_data[0]):
                # Read (ahead), not answered: the client may be sending still (gateway/_http.py).
                self.front.client.unanswered = True
            if self.tls is not None and self.tls.established:
                self.transport.close_notify()
        self._enter(CLOSED)
        loop = self.engine.loop
        loop.cancel(self.timed)
        loop.forget(self.fd)
        self._drop_upstream()
        if self.pipe is not None:
            self.pipe.close()
            self.pipe = None
        self.done.set()  # the trio task closes the socket

    def _hand_back(self, pending: bytes, waiting: Waiting | None = None, failures: int = 0) -> None:
        self.engine.handed_back += 1
        # With `waiting` (routing/_retry.WAIT): the trio path waits for the backends tried to leave, then routes.
        self.result = HandBack(pending, bytes(self.transport.unsent), failures=failures, waiting=waiting)
        self._close()

    def fail(self) -> None:
        self._close()

    def drain(self) -> None:
        """The gateway drains: an idle connection closes now; one in an exchange after it."""
        if (self.state == HEAD and not self.started and not self.inbuf) or self.state == HANDSHAKE:
            self._close()

    def _deadline(self, seconds: float) -> None:
        self.engine.loop.at(self.engine.loop.now + seconds, self, self.timed)

    # --- readiness -------------------------------------------------------------

    def _ready(self, fd: int, mask: int) -> None:
        """`fd` is ready, for the general path (the cycle's ready() calls this for what it does not serve)."""
        if self.state == FAST:
            self._take_over()
        upstream = self.upstream
        if upstream is not None and fd == upstream.fd:
            if self.state == CONNECT:
                self._connected()
            elif self.state == SEND:
                self._send_request()
            elif self.state == SPLICE:
                self._splice()
            else:
                self._read_response()
            return
        if self.state == HEAD:
            self._read_head()
            return
        if self.state == HANDSHAKE:
            self._shake()
            return
        if mask & (select.EPOLLERR | select.EPOLLHUP):
            self._abort("client went away during the exchange")
            return
        if mask & select.EPOLLIN and self.reading:
            self._read_ahead()
        if self.state == SPLICE:
            if mask & select.EPOLLOUT:
                self._splice()
        elif self.state != CLOSED and self.transport.waiting(self.outbuf):
            self._flush()

    def expired(self) -> None:
        if self.state == CLOSED:
            return
        if self.state == FAST:
            self._take_over()
        state = self.state
        if state == HANDSHAKE:
            log.debug("TLS handshake not done in time")
            self._close()
        elif state == HEAD:
            if self.started:
                self._reject(ProxyError("request head not received in time", status=408))
            else:
                self._close()
        elif state == CONNECT:
            self._connect_failed(UpstreamConnectTimeout(f"connecting to {self._address()} timed out"))
        elif state in (SEND, RESPONSE) and not self._response_started():
            self._error(GatewayTimeout("backend did not answer in time"))
        else:
            self._abort("the response stalled (backend or client)")

    # --- the request head --------------------------------------------------------

    def _read_head(self) -> None:
        try:
            data = self.transport.receive()
        except OSError:
            self._close()
            return
        if data is None:
            return
        if not data:
            self._close()  # the client closed, mid-head or between requests
            return
        self.inbuf += data
        self.parse()  # the cycle's, when it may serve the connection (over TLS, the cycle reads here)

    def _read_ahead(self) -> None:
        """Bytes after the request in flight (pipelined, or the client's EOF): kept for after its response.

        The socket stays in the epoll set with the same interest all along,
        so an exchange makes no epoll_ctl; it leaves the set only when the
        client closed or sent more than a head's worth ahead.
        """
        try:
            data = self.transport.receive()
        except OSError:
            self._abort("client went away during the exchange")
            return
        if data is None:
            return
        if data:
            self.inbuf += data
            if len(self.inbuf) <= self.engine.gateway.max_head:
                return
        else:
            self.eof = True
        self.reading = False
        pipe = self.pipe
        self.engine.loop.watch(self.fd, self,
                               self._client_mask(self.transport.waiting(self.outbuf) or bool(pipe and pipe.in_pipe)))

    def _client_mask(self, writing: bool) -> int:
        return (_IN if self.reading else 0) | (_OUT if writing else 0)

    def _parse(self) -> None:
        buffer = self.inbuf
        engine = self.engine
        try:
            found = next_head(buffer, engine.config.limits)
        except Refused:
            self._close()
            return
        except ClientProtocolError as error:
            self._reject(error)
            return
        if found is None:
            if self.eof:
                self._close()  # the client closed mid-head or between requests
            elif not self.started and head_begun(buffer):
                self.started = True
                self._deadline(engine.config.timeouts.request_head)
            return
        head, end = found
        self._route(head, bytes(buffer[:end]), end)

    def _route(self, head: RequestHead, head_bytes: bytes, end: int) -> None:
        """The checked head of the request whose head ends at inbuf[end]: routed here, or handed back."""
        buffer = self.inbuf
        engine = self.engine
        gateway = engine.gateway
        decision = None
        headers = head.headers
        if not has_body(headers) and head.target != b"*" and not is_upgrade_request(headers):
            now = time.monotonic()
            decision = decide(gateway.table, head.target, host=host_of(headers), now=now, arrived=now,
                              hold=engine.config.discovery.hold,
                              routes_complete=gateway.routes_complete, can_wake=gateway.waker is not None)
        if type(decision) is not Forward:
            self._hand_back(bytes(buffer))
            return
        assert isinstance(decision, Forward)
        del buffer[:end]
        self._start_exchange(head, head_bytes, decision.prefix, decision.pool, time.monotonic())
        self._next_backend()

    def _start_exchange(self, head: RequestHead, head_bytes: bytes, prefix: str, pool: Pool, arrived: float) -> None:
        """The exchange of a request routed to `pool`: its head is out of inbuf, what follows it is still there."""
        rest = bytes(self.inbuf)
        self.inbuf.clear()
        conn, request = FastConnection.for_request(head, rest, max_head=self.engine.gateway.max_head)
        event = conn.next_event()
        assert type(event) is ev.EndOfMessage, event
        self.conn = conn
        self.request = request
        self.head_bytes = head_bytes
        self.front.client.start_request(conn, head)
        self.exchange = Exchange(arrived, method=request.method, target=request.target, route=pool.route.name)
        self.stream = Stream(self.exchange, pool,
                             Attempts(prefix, request.method, keyed=keyed(request.headers), leaving=pool.route.containers),
                             self.engine.gateway.not_ready)
        self.pool = pool
        self.prefix = prefix
        self.relay = ResponseRelay(self.exchange, self.extra,
                                   splice_from=SPLICE_MIN if SPLICE_AVAILABLE and self.tls is None else None)
        self.response_done = False
        self.keep = True
        self.splice_left = 0
        self.lane = request.http_version == b"1.1" and request.method != b"HEAD" and conn.keep_alive
        self.lane_left = -1

    # --- where the cycle (_cycle_c.pyx) hands over --------------------------------

    def resume(self, kind: int, backend: BackendState | None = None, data: bytes | None = None, code: int = 0,
               unsent: bytes = b"", started: bool = True) -> None:
        """The one place the cycle hands over: the general path goes on from exactly where it stopped.

        Args:
            kind: what the cycle did (_cycle.py): ROUTED (routed the request to
                `backend`, None when none was up, and sent nothing), SENDING
                (sent part of the request head: `data` is the rest), READ (sent
                the request: `data` is the response's first read, b"" when the
                backend closed, or `code` its errno), LANE (wrote a lane
                response in part: `unsent` waits for the client, `started` if a
                byte of it went out; the cycle's status, lane_keep, body_out and
                lane_left say the rest; then `data` or `code`, a read of its
                body, if the cycle made one).
        """
        if kind == ROUTED:
            self._adopt_routed(backend)
            return
        if kind == SENDING:
            assert self.upstream is not None and data is not None
            self._adopt(SEND)
            self.upstream.pending = data
            self._send_request()
            return
        if kind == LANE:
            self._adopt_lane(unsent, started)
        else:
            self._adopt()
        if data is not None:
            self._response_data(data)
        elif code:
            self._response_failed(OSError(code, "backend connection failed"))
        else:  # a lane response the client takes no more of now
            self._deadline(self.engine.config.timeouts.body_idle)
            self._flush()

    def _adopt_routed(self, backend: BackendState | None) -> None:
        """The cycle routed the request in `head` to `backend` (None: none was up) and goes no further:
        on from there, as the general path."""
        assert self.pool is not None
        self._start_exchange(self._routed_head(), self.head_bytes, self.prefix, self.pool, self.arrived)
        self.head = None
        if backend is None:
            self._no_backend()
        else:
            self._use_backend(backend)

    def _adopt(self, state: int = RESPONSE) -> None:
        """The cycle sent the request, or began to (state FAST): the exchange as the general path has it
        after that, in `state`."""
        upstream = self.upstream
        assert upstream is not None and self.pool is not None
        self._start_exchange(self._routed_head(), self.head_bytes, self.prefix, self.pool, self.arrived)
        self.head = None
        assert self.exchange is not None and self.request is not None
        self.exchange.backend = str(upstream.backend.address)
        upstream.conn.expect_response(self.request.method)
        self._enter(state)

    def _routed_head(self) -> RequestHead:
        """The checked head of the request the cycle routed (see self.head)."""
        if self.head is not None:
            return self.head
        return check_head(self.head_bytes, self.engine.config.limits)

    def _take_over(self) -> None:
        """The general path goes on with the exchange the cycle is in (state FAST)."""
        if self.lane_left >= 0:
            self._adopt_lane(b"", True)
        else:
            self._adopt()

    def _adopt_lane(self, unsent: bytes, started: bool) -> None:
        """The cycle wrote a lane response's head and `body_out` bytes of its body (`unsent`: what the
        client did not take of them; `started`: a byte went out), `lane_left` to come: on from there as
        the lane (_lane_body)."""
        left = self.lane_left
        self._adopt()
        exchange = self.exchange
        upstream = self.upstream
        assert exchange is not None and upstream is not None
        self.engine.laned += 1
        exchange.status = self.status
        exchange.bytes_out = self.body_out
        exchange.response_started = started
        self._relay().head_out = True
        self.front.client.response_spliced()
        self.outbuf += unsent
        if left:
            self.lane_left = left
        else:
            upstream.conn.response_read_around(self.lane_keep)
            self.response_done = True

    def _reject(self, error: ProxyError) -> None:
        """A head that cannot be served: its answer, then close."""
        data, exchange = refusal(error, time.monotonic())
        self.front.client.unanswered = True  # the trio task's close is staged (gateway/_http.py)
        self.transport.send_now(data)
        self.engine.gateway.record(self.front.client_ip, exchange)
        self._close()

    # --- a backend ---------------------------------------------------------------

    def _address(self) -> str:
        return str(self.upstream.backend.address) if self.upstream is not None else "-"

    def _stream(self) -> Stream:
        stream = self.stream
        assert stream is not None
        return stream

    def _next_backend(self) -> None:
        self._carry(self._stream().next_backend(time.monotonic()))

    def _no_backend(self) -> None:
        self._carry(self._stream().none_left(time.monotonic()))

    def _carry(self, action: Action) -> None:
        """What the stream says comes next (routing/_stream.py), carried out."""
        if isinstance(action, BackendState):
            self._use_backend(action)
        elif isinstance(action, ProxyError):
            self._error(action)
        elif isinstance(action, Waiting):  # failed on a backend, none is left: the trio path waits, then routes
            assert self.exchange is not None
            self._hand_back_request(action, self.exchange.backend_failures)
        else:  # REROUTE: every backend tried was booting again; the trio path routes anew (and may hold)
            self._hand_back_request()

    def _use_backend(self, backend: BackendState) -> None:
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
            self._enter(CONNECT)
            self.engine.loop.watch(upstream.fd, self, _OUT)
            self._deadline(self.engine.config.timeouts.connect)
            backend.on_retire.add(self._left)
        else:
            self._connect_failed(_connect_error(backend, code))

    def _left(self) -> None:
        # The backend left the route table while we connected (its container
        # died, say: the SYN may never be answered). Nothing was sent: the
        # trio path routes the request again on the table in force.
        if self.state == CONNECT:
            self._hand_back_request()

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
            self._hand_back_request()
            return
        upstream.backend.mark_ok()
        self._begin_request()

    def _connect_failed(self, error: UpstreamConnectError, backend: BackendState | None = None) -> None:
        if backend is None:
            assert self.upstream is not None
            backend = self.upstream.backend
        self._drop_upstream()
        self._carry(self._stream().connect_failed(backend, error, time.monotonic()))

    def _hand_back_request(self, waiting: Waiting | None = None, failures: int = 0) -> None:
        self._drop_upstream()
        assert self.conn is not None
        self._hand_back(self.head_bytes + self.conn.trailing_data[0] + bytes(self.inbuf), waiting, failures)

    def _begin_request(self) -> None:
        upstream = self.upstream
        request = self.request
        assert upstream is not None and request is not None and self.pool is not None
        backend = upstream.backend
        config = self.engine.config
        front = self.front
        strip = self.prefix if self.pool.route.strip_prefix else None
        target = request.target if strip is None else strip_target(request.target, strip)
        if front.trusted:
            headers = request_headers(request.headers, client_ip=front.client_ip, trusted=True,
                                      upstream_host=backend.host_header, prefix=strip,
                                      allow_underscores=config.allow_underscores,
                                      scheme=b"http" if self.tls is None else b"https")
            send = upstream.conn.send
            upstream.pending = send(ev.Request(request.method, target, headers)) + send(ev.END_OF_MESSAGE)
        else:  # the lane: the same bytes in one step (protocol/_lane.py)
            upstream.pending = lane_request_head(
                request.method, target, request.headers, client_ip=front.client_ip.encode("ascii"),
                upstream_host=backend.host_header, prefix=None if strip is None else strip.encode("utf-8"),
                allow_underscores=config.allow_underscores, secure=self.tls is not None)
            upstream.conn.expect_response(request.method)
        upstream.received = 0
        if not self.counted:
            self.counted_route = self.pool.route.name
            backend.begin(self.counted_route)
            self.counted = True
        self._enter(SEND)
        self._deadline(config.timeouts.response_head)
        self._send_request()

    def _send_request(self) -> None:
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
        self._enter(RESPONSE)
        self.engine.loop.watch(upstream.fd, self, _IN)

    def _stale(self) -> None:
        assert self.upstream is not None
        backend = self.upstream.backend
        self._drop_upstream()
        self._carry(self._stream().stale(backend, time.monotonic()))

    def _unanswered(self, error: ProxyError) -> None:
        """The backend took the request and failed before any response byte (`error`: the 502 to give)."""
        assert self.upstream is not None
        backend = self.upstream.backend
        self._drop_upstream()
        self._carry(self._stream().unanswered(backend, error, body_read=False, now=time.monotonic()))

    # --- the response ------------------------------------------------------------

    def _relay(self) -> ResponseRelay:
        relay = self.relay
        assert relay is not None
        return relay

    def _response_started(self) -> bool:
        return self.exchange is not None and self.exchange.response_started

    def _read_response(self) -> None:
        upstream = self.upstream
        assert upstream is not None
        try:
            data = read(upstream.fd)
        except OSError as error:
            self._response_failed(error)
            return
        if data is not None:
            self._response_data(data)

    def _response_failed(self, error: OSError) -> None:
        assert self.relay is not None
        self._relay_failed(self.relay.broke(f"socket error: {error}"))

    def _response_data(self, data: bytes) -> None:
        """One read of the response (b"": the backend closed), relayed by the rules (routing/_response_rules.py)."""
        upstream = self.upstream
        relay = self.relay
        assert upstream is not None and relay is not None and self.conn is not None
        upstream.received += len(data)
        if self.lane_left >= 0:
            self._lane_body(data)
            return
        # The lane: only the response's first read (a head split across reads
        # is the general path's, which holds its first part already).
        if (self.lane and upstream.received == len(data) and not relay.interim
                and not self.engine.gateway.draining):
            if self._lane_head(data):
                return
        upconn = upstream.conn
        upconn.receive_data(data)
        events: list[ev.Event] = []
        failed = None
        try:
            outcome = relay.pull(upconn, events, self.engine.gateway.draining)
            if outcome == MORE and not data:
                raise relay.closed()
        except Failed as error:
            failed = error
        out = self.outbuf
        send = self.conn.send
        for event in events:
            out += send(event)
        if failed is not None:
            self._relay_failed(failed)
            return
        if outcome == END:
            self.response_done = True
        elif outcome == SPLICE_REST:
            self.splice_left = relay.splice_left
            self._enter(SPLICE)  # once what the parser held is out (_flush)
        if relay.head_out:
            self._deadline(self.engine.config.timeouts.body_idle)  # every byte of the body is progress
        self._flush()

    def _relay_failed(self, failed: Failed) -> None:
        """The response cannot go on: the client connection is cut, or the request answered or sent again."""
        if failed.answer is None:
            self._abort(failed.why)
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
            self._error(meaning)

    def _lane_head(self, data: bytes) -> bool:
        """A response whose head came whole in its first read, of the lane's kind: its head and body
        go out as they came, with no events (protocol/_lane.py). False: the general path reads it."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return False
        simple = lane_response_head(data[:end + 4])
        if simple is None:
            return False
        status, length, self.lane_keep, head = simple
        if self.extra:
            head = lane_with_fields(head, self.extra)
        self.engine.laned += 1
        assert self.exchange is not None
        self.exchange.status = status
        self._relay().head_out = True
        self.outbuf += head
        self.lane_left = length
        self.front.client.response_spliced()  # the client's connection sees none of it
        body = data[end + 4:]
        if body or not length:
            self._lane_body(body)
        else:  # the body comes in later reads
            self._deadline(self.engine.config.timeouts.body_idle)
            self._flush()
        return True

    def _lane_body(self, data: bytes) -> None:
        exchange = self.exchange
        upstream = self.upstream
        assert exchange is not None and upstream is not None
        left = self.lane_left
        if not data and left:
            self._abort("backend closed during its response body")
            return
        if len(data) > left:
            data = data[:left]
            self.lane_keep = False  # bytes past the response: the connection is not reused (as the general path)
        self.outbuf += data
        exchange.bytes_out += len(data)
        left = self.lane_left = left - len(data)
        self._deadline(self.engine.config.timeouts.body_idle)  # every byte of the body is progress
        if not left:
            upstream.conn.response_read_around(self.lane_keep)
            self.lane_left = -1
            self.response_done = True
        elif (splice_from := self._relay().splice_from) is not None and exchange.bytes_out + left >= splice_from:
            # A long body: the rest moves in the kernel, as on the general path (the rules' bound).
            self.splice_left = left
            self.lane_left = -1
            self._enter(SPLICE)  # once what is in outbuf is out (_flush)
        self._flush()

    def _flush(self) -> None:
        """Write what the client has waiting; with nothing left, read on (or finish)."""
        out = self.outbuf
        transport = self.transport
        if transport.waiting(out):
            # Over TLS encrypted all at once; the ciphertext waits for the socket as the plaintext
            # would in outbuf (the backend is not read until the client takes it).
            try:
                sent = transport.flush(out)
            except TlsFailed:
                self._abort("TLS failed during the response")
                return
            except OSError:
                self._abort("client went away during the response")
                return
            relay = self.relay
            if sent and self.exchange is not None and relay is not None and relay.head_out:
                self.exchange.response_started = True
        loop = self.engine.loop
        upstream = self.upstream
        if transport.waiting(out):
            # Backpressure: the backend is not read until the client takes this.
            loop.watch(self.fd, self, self._client_mask(True))
            if upstream is not None:
                loop.watch(upstream.fd, self, 0)
            return
        loop.watch(self.fd, self, self._client_mask(False))
        if self.response_done:
            self._finish()
        elif self.state == SPLICE:
            self._splice()
        elif upstream is not None and self.state == RESPONSE:
            loop.watch(upstream.fd, self, _IN)

    def _splice(self) -> None:
        """The rest of a long Content-Length body, backend to client, in the kernel.

        The backend connection is not reused afterwards (its parser never saw
        the body); the client connection is, since exactly the announced
        length went out (HttpStream.reusable, as on the trio path).
        """
        upstream = self.upstream
        exchange = self.exchange
        assert upstream is not None and exchange is not None
        pipe = self.pipe
        if pipe is None:
            pipe = self.pipe = SplicePipe(self.splice_left)
        try:
            written = pipe.step(upstream.fd, self.fd)
        except SourceFailed as error:
            self._abort(f"backend failed during its response body: {error}")
            return
        except SinkFailed:
            self._abort("client went away during the response")
            return
        if written > 0:
            exchange.bytes_out += written
        if written >= 0:
            self._deadline(self.engine.config.timeouts.body_idle)
        loop = self.engine.loop
        if pipe.done:
            pipe.close()
            self.pipe = None
            self.splice_left = 0
            self._drop_upstream()
            self.front.client.response_spliced()
            self.response_done = True
            loop.watch(self.fd, self, self._client_mask(False))
            self._finish()
            return
        loop.watch(upstream.fd, self, _IN if pipe.left and pipe.in_pipe < pipe.capacity else 0)
        loop.watch(self.fd, self, self._client_mask(bool(pipe.in_pipe)))

    # --- the end of an exchange -------------------------------------------------

    def _error(self, error: ProxyError) -> None:
        """The gateway's own answer (nothing of the response went out)."""
        exchange = self.exchange
        conn = self.conn
        assert exchange is not None and conn is not None
        self._drop_upstream()
        answer = error_answer(error, draining=self.engine.gateway.draining)
        exchange.status = answer.status
        exchange.bytes_out = len(answer.body)
        self.keep = not answer.closing
        self.outbuf += (conn.send(ev.Response(answer.status, answer.headers, answer.reason))
                        + conn.send(ev.Data(answer.body)) + conn.send(ev.END_OF_MESSAGE))
        self.response_done = True
        self._flush()

    def _abort(self, why: str) -> None:
        log.debug("closing client connection: %s", why)
        if self.exchange is not None:
            self.engine.gateway.record(self.front.client_ip, self.exchange)
            self.exchange = None
        self._close()

    def _drop_upstream(self) -> None:
        upstream = self.upstream
        if upstream is None:
            return
        self.upstream = None
        upstream.backend.on_retire.discard(self._left)
        self._uncount(upstream.backend)
        upstream.close(self.engine.loop)

    def _uncount(self, backend: BackendState) -> None:
        if self.counted:
            self.counted = False
            backend.end(self.counted_route)
            backend.last_done = time.monotonic()

    def _finish(self) -> None:
        exchange = self.exchange
        conn = self.conn
        assert exchange is not None and conn is not None
        upstream = self.upstream
        engine = self.engine
        if upstream is not None:
            self.upstream = None
            backend = upstream.backend
            self._uncount(backend)
            if backend.errors:
                backend.mark_answered()
            engine.pools.give(upstream, engine.config.limits.max_idle_upstream)
        engine.gateway.record(self.front.client_ip, exchange)
        engine.served += 1
        self.exchange = None
        self.relay = None
        reusable = self.keep and self.front.client.reusable() and not engine.gateway.draining
        if not reusable:
            self._close()
            return
        self.inbuf[:0] = conn.trailing_data[0]  # it came before any bytes read ahead
        self.conn = None
        self._wait_head(engine.config.timeouts.keepalive)
        if self.inbuf or self.eof:
            self.parse()  # a request read ahead; or the client closed meanwhile: close now


def _connect_error(backend: BackendState, code: int) -> UpstreamConnectError:
    return UpstreamConnectError(f"cannot connect to {backend.address}: {os.strerror(code)}",
                                refused=code == errno.ECONNREFUSED)
