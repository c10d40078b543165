# One client connection served by the native engine, driven by the loop
# (_loop.py): its socket (a Transport, _transport.py, plain or TLS, after
# the handshake, _handshake.py), its HTTP/1.1 request heads, read and
# routed, and its requests one at a time, each carried out by a
# StreamShell (_stream_shell.py: the backend and the response), which
# calls back only through the few methods its `Connection` contract lists.
# It decides nothing of its own: decide() routes, protocol/ reads and
# checks, routing/_answer.py refuses. The compiled cycle (_cycle.py) serves
# the commonest exchange whole over its fields and returns anything else,
# which resume() carries out. What the engine serves and hands back, the
# lane, and its rules: ARCHITECTURE.md, "The native engine".
#
# States: _states.py lists them and every move between them (the one
# table); enter() is the only place a state is entered.

from __future__ import annotations

import logging
import select
import time

import trio

from .._errors import ClientProtocolError, ProxyError
from ..protocol._compiled import check_head
from ..protocol._errors import Refused
from ..protocol._h2_head import H2_ALPN, preface
from ..protocol._head import RequestHead, head_begun
from ..protocol._reader import next_head
from ..routing._answer import refusal
from ..routing._pool import Pool
from ..routing._retry import Waiting
from ..tls._session import TlsFailed, TlsSession
from ._handover import EngineParts, Front, HandBack
from ._handshake import ANSWERED, DONE, PLAIN, READING, WRITING, Handshake
from . import _cycle
from ._cycle import CLOSE, LANE, PARSE, READ_AHEAD, READY, ROUTE, ROUTED, SENDING, SERVED, ConnectionFields
from ._states import CLOSED, FAST, HANDSHAKE, HEAD, RESPONSE, SEND, SPLICE, START, moved
from ._loop import Timed
from ._stream_shell import StreamShell, forward, http1_shell
from ._transport import Transport

__all__ = ["NativeClient"]

log = logging.getLogger("fastroute")

_IN = select.EPOLLIN | select.EPOLLRDHUP
_OUT = select.EPOLLOUT


class NativeClient(ConnectionFields):
    """The requests of one client connection, while the engine serves them.

    Its attributes are typed fields (_cycle.ConnectionFields), which the
    compiled cycle reads and writes: it serves the commonest exchange itself
    and returns anything else, which resume() carries out.
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
        self.leg = None  # the request in flight on the general path (_stream_shell.py)
        self.reading = True  # the client socket is read while an exchange is in flight (bytes queue in inbuf)
        self.eof = False  # the client closed its side; what inbuf holds is all there is
        self.http2 = front.http2 and self.tls is None  # plain: the preface may start HTTP/2 (over TLS, ALPN says)
        self.fast = not front.trusted  # the cycle may serve its requests (it writes an untrusted client's head)
        self.client_ip_b = front.client_ip.encode("ascii")
        self.configure()  # and the cycle's own exchange's fields (_cycle.py)

    @property
    def plain(self) -> bool:  # no TLS: the response's bytes go to the socket as they are (the splice may move them)
        return self.tls is None

    def enter(self, state: int) -> None:
        """The one place the general path enters a state: a move _states.MOVES lists, or a bug."""
        self.state = moved(self.state, state)

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
        self.enter(HANDSHAKE)
        if self.engine.gateway.draining:
            self._close()  # accepted just as draining began
            return
        assert self.tls is not None
        self.handshake = Handshake(self.fd, self.tls, self.transport.unsent, self.engine.gateway.acme_challenge)
        self.engine.loop.watch(self.fd, self, _IN)
        self.deadline(self.engine.config.timeouts.request_head)  # for the handshake and the head, as the trio path
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
            if self.front.http2 and handshake.tls.ssl_object.selected_alpn_protocol() == H2_ALPN:
                self._hand_back(bytes(self.inbuf), h2=True)  # served by engine/_h2.py, from the trio task's call
                return
            self._wait_head(self.engine.config.timeouts.request_head)
            self.parse()
        else:
            self._close()

    def _wait_head(self, idle: float) -> None:
        self.enter(HEAD)
        self.started = False
        self.reading = not self.eof
        self.engine.loop.watch(self.fd, self, _IN if self.reading else 0)
        self.deadline(idle)

    def _close(self) -> None:
        if self.state == CLOSED:
            return
        leg = self.leg
        if self.result is None:
            if self.inbuf or (leg is not None and leg.conn.trailing_data[0]):
                # Read (ahead), not answered: the client may be sending still (gateway/_http.py).
                self.front.client.unanswered = True
            if self.tls is not None and self.tls.established:
                self.transport.close_notify()
        self.enter(CLOSED)
        loop = self.engine.loop
        loop.cancel(self.timed)
        loop.forget(self.fd)
        if leg is not None:
            leg.drop()
        self._drop_fast()
        self.done.set()  # the trio task closes the socket

    def _drop_fast(self) -> None:
        """The cycle's backend connection closed (the client's connection closes in state FAST)."""
        upstream = self.upstream
        if upstream is None:
            return
        self.upstream = None
        if self.counted:
            self.counted = False
            upstream.backend.end(self.counted_route)
            upstream.backend.last_done = time.monotonic()
        upstream.close(self.engine.loop)

    def _hand_back(self, pending: bytes, waiting: Waiting | None = None, failures: int = 0, *,
                   h2: bool = False) -> None:
        if not h2:  # (an HTTP/2 connection comes back to the engine: engine/_h2.py)
            self.engine.handed_back += 1
        # With `waiting` (routing/_retry.WAIT): the trio path waits for the backends tried to leave, then routes.
        self.result = HandBack(pending, bytes(self.transport.unsent), failures=failures, waiting=waiting, h2=h2)
        self._close()

    def fail(self) -> None:
        self._close()

    def drain(self) -> None:
        """The gateway drains: an idle connection closes now; one in an exchange after it."""
        if (self.state == HEAD and not self.started and not self.inbuf) or self.state == HANDSHAKE:
            self._close()

    def deadline(self, seconds: float) -> None:
        self.engine.loop.at(self.engine.loop.now + seconds, self, self.timed)

    # --- readiness -------------------------------------------------------------

    def _ready(self, fd: int, mask: int) -> None:
        """`fd` is ready, for the general path (the cycle's ready() calls this for what it does not serve)."""
        if self.state == FAST:  # the general path goes on with the exchange the cycle is in
            self._take_over(lane=(b"", True) if self.lane_left >= 0 else None)
        leg = self.leg
        if leg is not None and leg.upstream is not None and fd == leg.upstream.fd:
            leg.ready(fd, mask)  # the cycle's backend connection, now the stream's
            return
        if self.state == HEAD:
            self._read_head()
            return
        if self.state == HANDSHAKE:
            self._shake()
            return
        if mask & (select.EPOLLERR | select.EPOLLHUP):
            self.abort("client went away during the exchange")
            return
        if mask & select.EPOLLIN and self.reading:
            self._read_ahead()
        if self.state == SPLICE:
            if mask & select.EPOLLOUT and leg is not None:
                leg.splice()
        elif self.state != CLOSED and self.transport.waiting(self.outbuf):
            self.flush()

    def expired(self) -> None:
        if self.state == CLOSED:
            return
        if self.state == FAST:  # the general path goes on with the exchange the cycle is in
            self._take_over(lane=(b"", True) if self.lane_left >= 0 else None)
        state = self.state
        if state == HANDSHAKE:
            log.debug("TLS handshake not done in time")
            self._close()
        elif state == HEAD:
            if self.started:
                self._reject(ProxyError("request head not received in time", status=408))
            else:
                self._close()
        else:
            assert self.leg is not None
            self.leg.expired()

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
            self.abort("client went away during the exchange")
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
        leg = self.leg
        self.watch(writing=self.transport.waiting(self.outbuf) or (leg is not None and leg.spliced_waiting()))

    def watch(self, *, writing: bool) -> None:
        """The client's socket watched for reads while they are wanted, and for writes if `writing`."""
        self.engine.loop.watch(self.fd, self, (_IN if self.reading else 0) | (_OUT if writing else 0))

    def _parse(self) -> None:
        buffer = self.inbuf
        engine = self.engine
        if self.http2:
            begun = preface(buffer)
            if begun:
                self._hand_back(bytes(buffer), h2=True)  # served by engine/_h2.py, from the trio task's call
                return
            self.http2 = begun is None  # None: what came may be the start of it (read on)
        try:
            found = None if self.http2 else next_head(buffer, engine.config.limits)
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
                self.deadline(engine.config.timeouts.request_head)
            return
        head, end = found
        self._route(head, bytes(buffer[:end]), end)

    def _route(self, head: RequestHead, head_bytes: bytes, end: int) -> None:
        """The checked head of the request whose head ends at inbuf[end]: routed here, or handed back."""
        self.http2 = False  # a request head: HTTP/1.1 from here
        buffer = self.inbuf
        decision = forward(self.engine, head.target, head.headers)
        if decision is None:
            self._hand_back(bytes(buffer))
            return
        del buffer[:end]
        self._start_exchange(head, head_bytes, decision.prefix, decision.pool, time.monotonic()).next_backend()

    def _start_exchange(self, head: RequestHead, head_bytes: bytes, prefix: str, pool: Pool,
                        arrived: float) -> StreamShell:
        """The exchange of a request routed to `pool`: its head is out of inbuf, what follows it is still there."""
        rest = bytes(self.inbuf)
        self.inbuf.clear()
        leg = self.leg = http1_shell(self, head, head_bytes, rest, prefix, pool, arrived)
        return leg

    # --- where the cycle (_cycle_c.pyx) hands over --------------------------------

    def ready(self, fd: int, mask: int) -> None:
        """`fd` is ready for `mask` (select.EPOLL* bits): the cycle's first (the compiled batch calls
        it the same way, from C)."""
        kind = _cycle.ready(self, fd, mask)
        if kind != SERVED:
            self.resume(kind, fd, mask)

    def parse(self) -> None:
        """The head in inbuf, if it is whole: the cycle's first."""
        kind = _cycle.parse(self)
        if kind != SERVED:
            self.resume(kind)

    def resume(self, kind: int, fd: int = -1, mask: int = 0) -> None:
        """The one place the cycle hands over (_cycle.py lists the kinds; `handed` holds what comes with
        each): the general path goes on from exactly where it stopped."""
        handed, self.handed = self.handed, None
        if kind == READY:
            self._ready(fd, mask)
        elif kind == PARSE:
            self._parse()
        elif kind == ROUTE:
            self._route(*handed)
        elif kind == READ_AHEAD:
            self._read_ahead()
        elif kind == CLOSE:
            self._close()
        elif kind == ROUTED:
            leg = self._take_over()
            if handed is None:
                leg.no_backend()
            else:
                leg.use_backend(handed)
        elif kind == SENDING:
            leg = self._take_over(SEND)
            assert leg.upstream is not None
            leg.upstream.pending = handed
            leg.send_request()
        else:
            self._resume_response(kind == LANE, *handed)

    def _resume_response(self, lane: bool, data: bytes | None, code: int, unsent: bytes, started: bool) -> None:
        """READ (the request went out: `data` is the response's first read, b"" when the backend closed,
        or `code` its errno) or LANE (a lane response went out in part: `unsent` waits for the client,
        `started` if a byte of it went out; the fields' status, lane_keep, body_out and lane_left say the
        rest; then `data` or `code`, a read of its body, if the cycle made one)."""
        leg = self._take_over(lane=(unsent, started) if lane else None)
        if data is not None:
            leg.response_data(data)
        elif code:
            leg.response_failed(OSError(code, "backend connection failed"))
        else:  # a lane response the client takes no more of now
            self.deadline(self.engine.config.timeouts.body_idle)
            self.flush()

    def _take_over(self, state: int = RESPONSE, lane: tuple[bytes, bool] | None = None) -> StreamShell:
        """The cycle's exchange as a stream of the general path: routed, or sent (or begun to be: then in
        `state`) on the cycle's backend connection; with `lane` (what the client did not take of a lane
        response's bytes, and whether a byte of it went out), a lane response written in part."""
        pool = self.pool
        assert pool is not None
        # The checked head; made now if the cycle read it as plain (see _cycle.py).
        head = self.head if self.head is not None else check_head(self.head_bytes, self.engine.config.limits)
        leg = self._start_exchange(head, self.head_bytes, self.prefix, pool, self.arrived)
        left, self.lane_left = self.lane_left, -1
        self.head = self.pool = None
        upstream = self.upstream
        if upstream is not None:
            self.upstream = None
            self.counted = False
            leg.adopt(upstream, self.counted_route, state)
            if lane is not None:
                leg.adopt_lane(self.status, self.lane_keep, self.body_out, left, *lane)
        return leg

    def _reject(self, error: ProxyError) -> None:
        """A head that cannot be served: its answer, then close."""
        data, exchange = refusal(error, time.monotonic())
        self.front.client.unanswered = True  # the trio task's close is staged (gateway/_http.py)
        self.transport.send_now(data)
        self.engine.gateway.record(self.front.client_ip, exchange)
        self._close()

    # --- what the request's stream asks of the connection (_stream_shell.Connection) ----

    def flush(self) -> None:
        """Write what the client has waiting, then tell the stream how far it went."""
        out = self.outbuf
        transport = self.transport
        leg = self.leg
        if transport.waiting(out):
            # Over TLS encrypted all at once; the ciphertext waits for the socket as the plaintext
            # would in outbuf (the backend is not read until the client takes it).
            try:
                sent = transport.flush(out)
            except TlsFailed:
                self.abort("TLS failed during the response")
                return
            except OSError:
                self.abort("client went away during the response")
                return
            if sent and leg is not None:
                leg.wrote()
        waiting = transport.waiting(out)
        self.watch(writing=waiting)
        if leg is not None:
            leg.flushed(waiting)

    def abort(self, why: str) -> None:
        """Close, the exchange in flight recorded as it stands."""
        log.debug("closing client connection: %s", why)
        if self.leg is not None:
            self.leg.record()
        self._close()

    def hand_back_request(self, waiting: Waiting | None = None, failures: int = 0) -> None:
        """The request in flight, not sent anywhere, to the trio path with what followed it."""
        leg = self.leg
        assert leg is not None
        self._hand_back(leg.head_bytes + leg.conn.trailing_data[0] + bytes(self.inbuf), waiting, failures)

    def finished(self) -> None:
        """The response is out (the stream finishes): the next head, or the close."""
        leg = self.leg
        assert leg is not None
        leg.finish()
        engine = self.engine
        if not (leg.keep and self.front.client.reusable() and not engine.gateway.draining):
            self._close()
            return
        self.inbuf[:0] = leg.conn.trailing_data[0]  # it came before any bytes read ahead
        self.leg = None
        self._wait_head(engine.config.timeouts.keepalive)
        if self.inbuf or self.eof:
            self.parse()  # a request read ahead; or the client closed meanwhile: close now
