# One client connection, in the trio shell: read and check each request head,
# route it (routing/_decide.py decides; this only carries the decision out),
# relay it (_relay.py), answer what the gateway answers itself
# (routing/_answer.py), and keep the connection alive while both sides may.
#
# Rules:
# - a client that sends nothing within the idle time (the head timeout for a
#   new connection, the keep-alive timeout after a response) is closed
#   without a word; one that starts a head and does not finish it within the
#   head timeout gets 408; a head that breaks a rule gets its 4xx/5xx and
#   the connection closes;
# - a request reads the gateway's table once and keeps that snapshot, until
#   it waits for a change (Hold, Wake) or is routed again;
# - the peer going away is a normal end; anything else escaping is a bug,
#   logged once, and ends this connection only.

from __future__ import annotations

import logging
import ssl
import time
from typing import TYPE_CHECKING, Protocol

import trio

from .._errors import ClientProtocolError, PermanentRedirect, ProxyError
from ..protocol import _events as ev
from ..protocol._errors import Refused
from ..protocol._head import has_body, head_begun, host_of
from ..protocol._reader import next_head
from ..routing._answer import error_answer, refusal
from ..routing._decide import Answer, Forward, Hold, Wake, decide
from ..routing._record import Exchange
from ..routing._retry import Reroutes, Waiting
from ._errors import Abort, BackendLeft, BackendNotReady, Resend
from ..engine._host import Host
from ..tls._session import TlsSession

if TYPE_CHECKING:
    from ..engine._engine import Engine
    from ..engine._handover import HandBack
    from ..tls._certs import Certificates
from ._http import MAX_RECV, HttpStream, receive_some
from ._relay import relay
from ._tls import accept_tls, refuse_plain
from ._tlsstream import TlsStream

__all__ = ["ALLOW", "ClientConnection"]

log = logging.getLogger("fastroute")

ALLOW = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"  # the answer to OPTIONS *


class NativeHost(Host, Protocol):
    """A Host that may hand its connections to the native engine (--io native), and that may speak TLS."""

    engine: Engine | None
    certificates: Certificates | None

    def https_location(self, host: bytes | None, target: bytes) -> bytes | None: ...


class ClientConnection:
    """The requests of one accepted connection, one after another."""

    __slots__ = ("gateway", "client", "client_ip", "trusted", "idle_scope", "secure", "_socket", "resend")

    def __init__(self, gateway: NativeHost, stream: trio.SocketStream, *, secure: bool = False) -> None:
        self.gateway = gateway
        self.client = HttpStream(stream)  # over the TLS stream once the handshake is done, if secure
        self._socket = stream.socket
        self.secure = secure  # accepted on a --listen-tls address
        self.client_ip = ""
        self.trusted = False
        # The scope of a wait for the next request head while nothing of it
        # came yet: drain() cancels it, so an idle connection closes at once.
        self.idle_scope: trio.CancelScope | None = None
        # The engine handed back a request that failed on a backend and may
        # be sent again once the backends it tried left the table (Resend).
        self.resend: HandBack | None = None

    async def run(self) -> None:
        """Serve requests until either side is done; never raises (but Cancelled)."""
        client = self.client
        gateway = self.gateway
        try:
            peer = self._socket.getpeername()
            self.client_ip = peer[0] if isinstance(peer, tuple) else str(peer)
            self.trusted = gateway.is_trusted(self.client_ip)
            first = True
            engine = gateway.engine
            if not self.secure and gateway.config.tls.redirect_https:
                engine = None  # plain HTTP is redirected (or an ACME challenge): the trio path's, HTTPS the engine's
            if self.secure:
                if engine is not None:  # the engine makes the handshake
                    stream = self.client.stream
                    assert isinstance(stream, trio.SocketStream)
                    self._secured(TlsStream(stream, TlsSession(self._context())))
                elif not await self._handshake():
                    return
                client = self.client
            if engine is not None:
                back = await engine.serve(self, first=first, handshake=self.secure)
                if back is None:
                    return  # the engine served the connection to its end
                if back.plain:  # plain HTTP on the TLS port: no TLS to close
                    assert isinstance(client.stream, TlsStream)
                    transport = client.stream.transport_stream
                    self.client = client = HttpStream(transport)
                    await refuse_plain(transport)
                    return
                client.pending += back.pending
                if back.waiting is not None or back.failures:
                    self.resend = back
                if back.unsent:  # ciphertext the engine's session wrote and the socket did not take yet
                    assert isinstance(client.stream, TlsStream)
                    await client.stream.transport_stream.send_all(back.unsent)
            while not gateway.draining or first:
                request = await self._read_head(first)
                if request is None:
                    break
                first = False
                if not await self._serve(request):
                    break
                client.finish_request()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("bug: unexpected error on a client connection; closing it")
        finally:
            try:
                await client.aclose(linger=True)
            except Exception:  # a bug in the close must not reach serve_listeners either
                log.exception("bug: unexpected error closing a client connection")
                self._socket.close()

    def _context(self) -> ssl.SSLContext:
        certificates = self.gateway.certificates
        assert certificates is not None
        return certificates.context

    async def _handshake(self) -> bool:
        """TLS on the accepted stream, within the head timeout; False: close (nothing else to do)."""
        stream = self.client.stream
        assert isinstance(stream, trio.SocketStream)
        secured = None
        with trio.move_on_after(self.gateway.config.timeouts.request_head) as scope:
            self.idle_scope = scope  # draining closes a connection still in its handshake
            if self.gateway.is_draining():
                scope.cancel()
            secured = await accept_tls(stream, self._context(), self.gateway.acme_challenge)
        self.idle_scope = None
        if secured is None:
            return False
        self._secured(secured)
        return True

    def _secured(self, stream: TlsStream) -> None:
        """The client's stream is `stream` from now on (its handshake made, or to be made by the engine)."""
        self.client = HttpStream(stream)
        hsts = self.gateway.config.tls.hsts
        if hsts is not None:
            self.client.response_extra.append((b"strict-transport-security", b"max-age=%d" % hsts))

    async def _read_head(self, first: bool) -> ev.Request | None:
        """The next request head, checked (_head.py), or None to just close.

        The checked head, and whatever followed it, go to a fresh connection
        object (the --parser's) for this one request.
        """
        gateway = self.gateway
        client = self.client
        timeouts = gateway.config.timeouts
        limits = gateway.config.limits
        buffer = client.pending
        deadline = trio.current_time() + (timeouts.request_head if first else timeouts.keepalive)
        started = False
        while True:
            try:
                found = next_head(buffer, limits)
            except Refused:
                return None
            except ClientProtocolError as error:
                await self._reject(error)
                return None
            if found is not None:
                break
            if not started and head_begun(buffer):
                started = True
                deadline = trio.current_time() + timeouts.request_head
            with trio.CancelScope(deadline=deadline) as scope:
                if not started:
                    self.idle_scope = scope
                    if gateway.draining:
                        scope.cancel()  # accepted just as draining began, or idle
                data = await receive_some(client.stream, MAX_RECV)
            self.idle_scope = None
            if scope.cancelled_caught:
                if started:
                    await self._reject(ProxyError("request head not received in time", status=408))
                return None
            if not data:
                return None  # the client closed (mid-head or between requests)
            buffer += data
        head, end = found
        rest = bytes(buffer[end:])
        buffer.clear()
        try:
            conn, request = gateway.parser.for_request(head, rest, max_head=gateway.max_head)
        except ev.RemoteProtocolError as error:  # h11 is stricter somewhere: still a 4xx
            await self._reject(ClientProtocolError(str(error), status=error.status_hint))
            return None
        client.start_request(conn, head)
        return request

    async def _reject(self, error: ProxyError) -> None:
        """Answer a head that cannot be served, and log it; the caller closes."""
        data, exchange = refusal(error, time.monotonic())
        self.client.unanswered = True
        try:
            await self.client.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self.gateway.record(self.client_ip, exchange)

    async def _serve(self, request: ev.Request) -> bool:
        """Answer one request. Returns whether the connection may carry another."""
        gateway = self.gateway
        client = self.client
        exchange = Exchange(time.monotonic(), method=request.method, target=request.target,
                            backend_failures=self.resend.failures if self.resend is not None else 0)
        if not has_body(request.headers):
            # The parser holds the EndOfMessage already: take it, so the client side
            # is DONE (or ready to switch protocols) when the response ends.
            event = client.conn.next_event()
            assert type(event) is ev.EndOfMessage, event
        try:
            if request.target == b"*":  # OPTIONS * (_head.py lets no other method through)
                await client.send_many(
                    ev.Response(200, [(b"allow", ALLOW), (b"content-length", b"0")], b"OK"), ev.END_OF_MESSAGE)
                exchange.status = 200
            else:
                await self._route(request, exchange)
        except ProxyError as error:
            if exchange.response_started:
                exchange.keep_client = False
            else:
                await self._answer(exchange, error)
        except Abort as reason:
            log.debug("closing client connection: %s", reason)
            exchange.keep_client = False
        finally:
            gateway.record(self.client_ip, exchange)
        return exchange.keep_client and client.reusable() and not gateway.draining

    async def _route(self, request: ev.Request, exchange: Exchange) -> None:
        """Carry out decide()'s decisions until the request is relayed or answered.

        Raises:
            ProxyError: the answer (nothing was sent yet, unless exchange.response_started).
            Abort: close the client connection.
        """
        gateway = self.gateway
        config = gateway.config
        table = gateway.table  # one snapshot, until the request waits or is routed again
        arrived = time.monotonic()
        reroutes = Reroutes()
        host = host_of(request.headers)
        self._redirect_to_https(host, request.target)
        waiting_for: str | None = None
        wake_until: float | None = None
        waiting = self.resend.waiting if self.resend is not None else None
        self.resend = None
        failed = waiting.error if waiting is not None else None
        waited = False
        while True:
            if waiting is not None:
                await self._wait_for_retired(waiting)
                waiting, waited = None, True
                table = gateway.table
            now = time.monotonic()
            decision = decide(
                table, request.target, host=host, now=now, arrived=arrived, hold=config.discovery.hold,
                routes_complete=gateway.routes_complete, engine_answered=gateway.engine_answered,
                can_wake=gateway.waker is not None, waiting_for=waiting_for, wake_until=wake_until,
                wake_limit=config.timeouts.wake,
            )
            if type(decision) is Forward:
                exchange.route = decision.pool.route.name
                try:
                    await relay(
                        self.client, request, decision.pool, decision.prefix, config, exchange,
                        client_ip=self.client_ip, trusted=self.trusted, closing=gateway.is_draining,
                        not_ready=gateway.not_ready, waited=waited, failed=failed,
                    )
                    return
                except Resend as again:
                    waiting = again.waiting
                    failed = waiting.error
                    continue
                except BackendNotReady:
                    # It refused just after it became ready: it is booting
                    # again and out of the table. Route again (and wait).
                    error = reroutes.backends_booting()
                except BackendLeft:
                    # Its backend left the table while we connected to it:
                    # nothing was sent, so route again on the table now in force.
                    error = reroutes.backend_left()
                if error is not None:
                    raise error
            elif type(decision) is Answer:
                raise decision.error
            elif isinstance(decision, (Wake, Hold)):
                waiting_for, wake_until = await self._wait_for(decision, exchange, now, waiting_for, wake_until)
            table = gateway.table

    def _redirect_to_https(self, host: bytes | None, target: bytes) -> None:
        """--redirect-https: a plain request for a name the gateway has a certificate for is sent there (308)."""
        if not self.secure:
            location = self.gateway.https_location(host, target)
            if location is not None:
                raise PermanentRedirect(location)

    async def _wait_for(self, decision: Wake | Hold, exchange: Exchange, now: float, waiting_for: str | None,
                        wake_until: float | None) -> tuple[str | None, float | None]:
        """A Wake or a Hold carried out; returns the route waited for and until when a wake may take."""
        gateway = self.gateway
        if type(decision) is Wake:
            exchange.route = waiting_for = decision.prefix
            waker = gateway.waker
            assert waker is not None
            with trio.move_on_after(gateway.config.timeouts.wake):
                await waker.wake(decision.prefix, decision.ids)  # raises when the start fails
            return waiting_for, now + gateway.config.timeouts.wake
        assert type(decision) is Hold
        if decision.prefix is not None:
            exchange.route = waiting_for = decision.prefix
        with trio.move_on_after(max(0.0, decision.until - now)):
            await gateway.table_changed.wait()
        return waiting_for, wake_until

    async def _wait_for_retired(self, waiting: Waiting) -> None:
        """It failed on a container and no other backend was left (routing/_retry.WAIT).

        A stopping container is usually seen a moment after its server reset
        or refused: wait for the backends tried to leave the table (at most
        --hold, or until the first is back in rotation); then the caller
        routes again, where the request may hold until a new container is
        ready. If none of them left, raises its error.
        """
        gateway = self.gateway
        with trio.move_on_after(min(gateway.config.discovery.hold, waiting.back_at - time.monotonic())):
            while not all(backend.retired for backend in waiting.tried):
                await gateway.table_changed.wait()
        if waiting.error is not None and not any(backend.retired for backend in waiting.tried):
            raise waiting.error

    async def _answer(self, exchange: Exchange, error: ProxyError) -> None:
        """The gateway's own short plain-text answer (routing/_answer.py decides it)."""
        client = self.client
        answer = error_answer(error, draining=self.gateway.draining,
                              body_unread=client.conn.their_state is ev.SEND_BODY)
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
