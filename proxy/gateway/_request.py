# One request served, whatever protocol carried it (an HTTP/1.1 connection,
# _connection.py, or an HTTP/2 stream, _h2.py): routed (routing/_decide.py
# decides; this only carries the decision out), relayed (_relay.py), or
# answered by the gateway itself (routing/_answer.py).
#
# Rules:
# - a request reads the gateway's table once and keeps that snapshot, until
#   it waits for a change (Hold, Wake) or is routed again;
# - what it asks of its client's side is ClientSide's (_http.py): the same
#   steps for both protocols, none knows which one it serves.

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

import trio

from .._errors import PermanentRedirect, ProxyError
from ..protocol import _events as ev
from ..protocol._head import has_body, host_of
from ..routing._answer import error_answer
from ..routing._decide import Answer, Forward, Hold, Wake, decide
from ..routing._record import Exchange
from ..routing._retry import Reroutes, Waiting
from ._errors import Abort, BackendLeft, BackendNotReady, Resend
from ._http import ClientSide
from ._relay import relay
from ..engine._host import Host

if TYPE_CHECKING:
    from ..engine._engine import Engine
    from ..engine._handover import HandBack
    from ..tls._certs import Certificates

__all__ = ["ALLOW", "NativeHost", "Requests"]

log = logging.getLogger("fastroute")

_HTTP1 = ("HTTP/1.1", "HTTP/1.0")
ALLOW = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"  # the answer to OPTIONS *


class NativeHost(Host, Protocol):
    """A Host that may hand its connections to the native engine (--io native), and that may speak TLS."""

    engine: Engine | None
    certificates: Certificates | None

    def https_location(self, host: bytes | None, target: bytes) -> bytes | None: ...


class Requests:
    """The requests of one client (its address, whether it is a trusted proxy, and over TLS)."""

    __slots__ = ("gateway", "client_ip", "trusted", "secure", "protocol")

    def __init__(self, gateway: NativeHost, client_ip: str, *, trusted: bool, secure: bool,
                 protocol: str | None = None) -> None:
        self.gateway = gateway
        self.client_ip = client_ip
        self.trusted = trusted
        self.secure = secure  # accepted on a --listen-tls address
        self.protocol = protocol  # what the client speaks, for the records (None: HTTP/1.x, the request says which)

    async def serve(self, client: ClientSide, request: ev.Request, resend: HandBack | None = None) -> bool:
        """Answer one request (`resend`: the engine's, that failed on a backend and may go again).

        Returns whether the connection may carry another (HTTP/1.1's
        question; an HTTP/2 stream ends either way).
        """
        gateway = self.gateway
        exchange = Exchange(time.monotonic(), method=request.method, target=request.target,
                            backend_failures=resend.failures if resend is not None else 0,
                            protocol=self.protocol or _HTTP1[request.http_version == b"1.0"])
        if not has_body(request.headers):
            # The parser holds the EndOfMessage already: take it, so the client side
            # is DONE (or ready to switch protocols) when the response ends.
            event = client.conn.next_event()
            # (HTTP/2: a Content-Length of 0 whose END_STREAM comes later, in a DATA frame.)
            assert type(event) is ev.EndOfMessage or event is ev.NEED_DATA, event
        try:
            if request.target == b"*":  # OPTIONS * (_head.py lets no other method through)
                await client.send_many(
                    ev.Response(200, [(b"allow", ALLOW), (b"content-length", b"0")], b"OK"), ev.END_OF_MESSAGE)
                exchange.status = 200
            else:
                await self._route(client, request, exchange, resend.waiting if resend is not None else None)
        except ProxyError as error:
            if exchange.response_started:
                exchange.keep_client = False
            else:
                await self._answer(client, exchange, error)
        except Abort as reason:
            log.debug("closing client connection: %s", reason)
            exchange.keep_client = False
        finally:
            gateway.record(self.client_ip, exchange)
        return exchange.keep_client and client.reusable() and not gateway.draining

    async def refuse(self, client: ClientSide, error: ProxyError) -> None:
        """A request HTTP/1.1's rules refuse (an HTTP/2 stream's: its head never became a request)."""
        exchange = Exchange(time.monotonic(), protocol=self.protocol or _HTTP1[0])
        try:
            await self._answer(client, exchange, error)
        finally:
            self.gateway.record(self.client_ip, exchange)

    async def _route(self, client: ClientSide, request: ev.Request, exchange: Exchange,
                     waiting: Waiting | None) -> None:
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
                        client, request, decision.pool, decision.prefix, config, exchange,
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

    async def _answer(self, client: ClientSide, exchange: Exchange, error: ProxyError) -> None:
        """The gateway's own short plain-text answer (routing/_answer.py decides it)."""
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
