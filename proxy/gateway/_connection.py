# One client connection, in the trio shell: its TLS handshake, the engine's
# turn (--io native), then read and check each request head, serve it
# (_request.py), and keep the connection alive while both sides may; or,
# when the client speaks HTTP/2 (ALPN h2, or the preface on a plain
# listener), its streams (_h2.py).
#
# Rules:
# - a client that sends nothing within the idle time (the head timeout for a
#   new connection, the keep-alive timeout after a response) is closed
#   without a word; one that starts a head and does not finish it within the
#   head timeout gets 408; a head that breaks a rule gets its 4xx/5xx and
#   the connection closes;
# - the peer going away is a normal end; anything else escaping is a bug,
#   logged once, and ends this connection only.

from __future__ import annotations

import logging
import ssl
import time
from typing import TYPE_CHECKING

import trio

from .._errors import ClientProtocolError, ProxyError
from ..protocol import _events as ev
from ..protocol._errors import Refused
from ..protocol._h2_head import H2_ALPN, preface
from ..protocol._head import RequestHead, head_begun
from ..protocol._reader import next_head
from ..routing._answer import refusal
from ..tls._session import TlsSession

if TYPE_CHECKING:
    from ..engine._handover import HandBack
from ._h2 import TrioStreams, serve_h2
from ._http import MAX_RECV, HttpStream, receive_some
from ._request import NativeHost, Requests
from ._tls import accept_tls, refuse_plain
from ._tlsstream import TlsStream

__all__ = ["ClientConnection"]

log = logging.getLogger("fastroute")

# What _read_head returns for the HTTP/2 connection preface at the start of a plain connection.
H2_PRIOR_KNOWLEDGE = ev.Request(b"PRI", b"*", [], b"2.0")


class ClientConnection:
    """The requests of one accepted connection, one after another."""

    __slots__ = ("gateway", "client", "client_ip", "trusted", "idle_scope", "secure", "http2", "_socket", "resend",
                 "native_h2")

    def __init__(self, gateway: NativeHost, stream: trio.SocketStream, *, secure: bool = False,
                 http2: bool = True) -> None:
        self.gateway = gateway
        self.client = HttpStream(stream)  # over the TLS stream once the handshake is done, if secure
        self._socket = stream.socket
        self.secure = secure  # accepted on a --listen-tls address
        self.http2 = http2  # the listener serves HTTP/2 (ALPN h2, or the preface on a plain one)
        self.client_ip = ""
        self.trusted = False
        # The scope of a wait for the next request head while nothing of it
        # came yet: drain() cancels it, so an idle connection closes at once.
        self.idle_scope: trio.CancelScope | None = None
        # The engine handed back a request that failed on a backend and may
        # be sent again once the backends it tried left the table (Resend).
        self.resend: HandBack | None = None
        self.native_h2 = False  # the engine saw HTTP/2 begin: it serves the connection (engine/_h2.py)

    async def run(self) -> None:
        """Serve requests until either side is done; never raises (but Cancelled)."""
        gateway = self.gateway
        try:
            peer = self._socket.getpeername()
            self.client_ip = peer[0] if isinstance(peer, tuple) else str(peer)
            self.trusted = gateway.is_trusted(self.client_ip)
            h2 = await self._begin()
            if h2 is None:
                return
            requests = Requests(gateway, self.client_ip, trusted=self.trusted, secure=self.secure)
            if h2 or await self._serve_http1(requests):
                requests.protocol = "HTTP/2"
                if self.native_h2 and gateway.engine is not None:
                    await gateway.engine.serve_h2(self, TrioStreams(requests), secure=self.secure)
                else:
                    await serve_h2(self, requests)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("bug: unexpected error on a client connection; closing it")
        finally:
            try:
                await self.client.aclose(linger=True)
            except Exception:  # a bug in the close must not reach serve_listeners either
                log.exception("bug: unexpected error closing a client connection")
                self._socket.close()

    async def _begin(self) -> bool | None:
        """The TLS handshake and the engine's turn. Returns whether the client speaks HTTP/2 (ALPN
        h2, or the preface the engine saw), or None: nothing more to do (served, or closed)."""
        gateway = self.gateway
        engine = gateway.engine
        if not self.secure and gateway.config.tls.redirect_https:
            engine = None  # plain HTTP is redirected (or an ACME challenge): the trio path's, HTTPS the engine's
        if self.secure:
            if engine is not None:  # the engine makes the handshake
                stream = self.client.stream
                assert isinstance(stream, trio.SocketStream)
                self._secured(TlsStream(stream, TlsSession(self._context())))
            elif not await self._handshake():
                return None
        h2 = False
        if engine is not None:
            client = self.client
            back = await engine.serve(self, first=True, handshake=self.secure)
            if back is None:
                return None  # the engine served the connection to its end
            if back.plain:  # plain HTTP on the TLS port: no TLS to close
                assert isinstance(client.stream, TlsStream)
                transport = client.stream.transport_stream
                self.client = HttpStream(transport)
                await refuse_plain(transport)
                return None
            client.pending += back.pending
            if back.waiting is not None or back.failures:
                self.resend = back
            if back.unsent:  # ciphertext the engine's session wrote and the socket did not take yet
                assert isinstance(client.stream, TlsStream)
                await client.stream.transport_stream.send_all(back.unsent)
            h2 = self.native_h2 = back.h2
        if self.secure:
            stream = self.client.stream
            assert isinstance(stream, TlsStream)
            h2 = stream.session.ssl_object.selected_alpn_protocol() == H2_ALPN
        return h2

    async def _serve_http1(self, requests: Requests) -> bool:
        """HTTP/1.1 requests, one after another, until either side is done. Returns True when the
        connection starts with the HTTP/2 preface instead (its bytes are in client.pending)."""
        gateway = self.gateway
        client = self.client
        first = True
        while not gateway.draining or first:
            request = await self._read_head(first)
            if request is None:
                return False
            if request is H2_PRIOR_KNOWLEDGE:
                return True
            first = False
            resend, self.resend = self.resend, None
            if not await requests.serve(client, request, resend):
                return False
            client.finish_request()
        return False

    def _context(self) -> ssl.SSLContext:
        certificates = self.gateway.certificates
        assert certificates is not None
        return certificates.context_for(http2=self.http2)

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
        """The next request head, checked (_head.py), or None to just close; H2_PRIOR_KNOWLEDGE when
        the connection starts with HTTP/2's preface (its bytes stay in client.pending).

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
        h2 = first and self.http2 and not self.secure  # the HTTP/2 preface may start a plain connection
        found: tuple[RequestHead, int] | None = None
        while True:
            if h2:
                begun = preface(buffer)
                if begun:
                    return H2_PRIOR_KNOWLEDGE
                h2 = begun is None  # None: what came may be the start of it (read on)
            if not h2:
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
