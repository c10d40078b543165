# A client's TLS connection as a trio stream: the session (tls/_session.py,
# sans-IO) over the accepted socket. The gateway's own and not
# trio.SSLStream because the native engine serves the same connection for
# a while (engine/_exchange.py) and hands it back: both need the session
# itself, and neither may keep ciphertext the other does not see.
#
# Rules: ciphertext goes out under one FIFO lock in the order the session
# wrote it, whoever made it (a receive may make some); one receive at a
# time (the HTTP/1.1 stream above reads from one task). A TLS failure is
# trio.BrokenResourceError from TlsFailed, as trio.SSLStream raises it, so
# the connection's handlers treat it as the peer going away.

from __future__ import annotations

import trio

from ..tls._session import TlsFailed, TlsSession

__all__ = ["TlsStream"]

MAX_RECV = 64 * 1024  # ciphertext bytes per receive from the socket


class TlsStream(trio.abc.Stream):
    """A server-side TLS stream over an accepted trio.SocketStream."""

    def __init__(self, transport: trio.SocketStream, session: TlsSession) -> None:
        self.transport_stream = transport
        self.session = session
        self._send_lock = trio.StrictFIFOLock()
        self._receiving = False
        self._broken = False
        self._closed = False

    @property
    def socket(self) -> trio.socket.SocketType:
        return self.transport_stream.socket

    def _check(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the TLS stream is closed")
        if self._broken:
            raise trio.BrokenResourceError("the TLS stream is broken")

    def _failed(self, error: TlsFailed) -> trio.BrokenResourceError:
        self._broken = True
        return trio.BrokenResourceError(str(error))

    async def do_handshake(self) -> None:
        """The server side of the handshake. Raises trio.BrokenResourceError when it fails."""
        self._check()
        session = self.session
        while True:
            try:
                done = session.handshake()
            except TlsFailed as error:
                await self._flush()  # the alert, if OpenSSL wrote one
                raise self._failed(error) from error
            await self._flush()
            if done:
                return
            await self._receive_ciphertext()

    async def _receive_ciphertext(self) -> None:
        try:
            data = await self.transport_stream.receive_some(MAX_RECV)
        except trio.BrokenResourceError:
            self._broken = True
            raise
        self.session.receive(data)

    async def _flush(self) -> None:
        """Send what the session wrote (in order: under the lock)."""
        async with self._send_lock:
            data = self.session.outgoing()
            if data:
                try:
                    await self.transport_stream.send_all(data)
                except trio.BrokenResourceError:
                    self._broken = True
                    raise

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        self._check()
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this TLS stream")
        self._receiving = True
        try:
            limit = max_bytes or MAX_RECV
            session = self.session
            waited = False
            while True:
                try:
                    data = session.read_all(limit)
                except TlsFailed as error:
                    raise self._failed(error) from error
                if session.unsent():
                    await self._flush()
                    waited = True
                if data is not None:
                    if not waited:
                        await trio.lowlevel.checkpoint()
                    return data
                await self._receive_ciphertext()
                waited = True
        finally:
            self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self._check()
        try:
            self.session.write(data)
        except TlsFailed as error:
            raise self._failed(error) from error
        await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def close_notify(self) -> None:
        """Our close_notify, sent; the stream is closed for TLS, the socket stays open (for a staged close)."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        try:
            if not self._broken and not self.session.closed:  # (the engine may have closed it)
                self.session.close()
                await self._flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def aclose(self) -> None:
        """Our close_notify when it goes out at once, then the socket closes (even when cancelled)."""
        try:
            await self.close_notify()
        finally:
            await self.transport_stream.aclose()
