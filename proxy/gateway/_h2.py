# One HTTP/2 client connection, in the trio shell: HTTP/2 to clients on the
# trio path (the engine's own is engine/_h2.py). The mux (protocol/_h2_mux.py:
# the session, the streams, the bounds) carries out the client's frames; the
# reader here hands it the bytes, and each request runs in a stream task of
# its own that serves it as any request (_request.py, over the stream's
# ClientSide, _h2stream.py). serve_stream() is that task, for the engine's
# connections too.
#
# Rules (the mux's own are in protocol/_h2_mux.py):
# - anything of the session's that would grow without bound waits for the
#   socket instead: one writer at a time (flush), and the reader writes
#   what it owes before reading again, so a client that does not read stops
#   being read;
# - idle (no stream) for the keep-alive timeout (the head timeout before the
#   first request): GOAWAY NO_ERROR and close;
# - drain (SIGTERM, a worker's end): GOAWAY with the last stream taken;
#   streams in flight finish, later ones are refused (REFUSED_STREAM, which
#   a client retries on a new connection), then the connection closes;
# - the client's GOAWAY: streams in flight finish, then it closes; the
#   client's end of the socket: every stream stops.

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Protocol

import trio

from .._errors import ClientProtocolError
from ..protocol import _events as ev
from ..protocol._h2_body import RequestBody
from ..protocol._h2_guard import H2Bounds
from ..protocol._h2_mux import H2Mux, MuxStream
from ..protocol._h2session import H2SessionError
from ._h2stream import H2Stream
from ._http import MAX_RECV, HttpStream, receive_some, send_all

if TYPE_CHECKING:
    from ..engine._handover import HandBack, StreamHost
    from ._request import NativeHost, Requests

__all__ = ["Carrier", "H2Server", "TrioStreams", "serve_h2", "serve_stream"]

log = logging.getLogger("fastroute")

CLOSE_TIME = 1.0  # seconds the last GOAWAY may wait to go out


class Carrier(Protocol):
    """The client connection an HTTP/2 connection is carried on (_connection.ClientConnection)."""

    gateway: NativeHost
    client: HttpStream  # its stream, and what was read of it (pending)
    idle_scope: trio.CancelScope | None  # the wait for the client's next bytes: the gateway's drain cancels it


async def serve_h2(connection: Carrier, requests: Requests) -> None:
    """Serve the HTTP/2 connection `connection` carries (its client.pending: what it read of it)."""
    await H2Server(connection, requests).run()


async def serve_stream(host: StreamHost, requests: Requests, stream: H2Stream, request: ev.Request,
                       answer: ClientProtocolError | None, resend: HandBack | None = None) -> None:
    """One stream's exchange, in its own task; whatever happens, the stream ends here."""
    try:
        with stream.scope:
            if answer is not None:
                await requests.refuse(stream, answer)
            else:
                await requests.serve(stream, request, resend)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except Exception:
        log.exception("bug: unexpected error on an HTTP/2 stream; resetting it")
    finally:
        stream.finish()
        host.stream_over(stream)
    try:
        await host.flush()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the reader sees the end


class TrioStreams:
    """The stream tasks of one client's requests, on its HTTP/2 connection (H2Server's, or the engine's:
    engine/_handover.TaskStreams)."""

    __slots__ = ("requests",)

    def __init__(self, requests: Requests) -> None:
        self.requests = requests

    def start(self, host: StreamHost, stream_id: int, request: ev.Request, body: RequestBody,
              answer: ClientProtocolError | None, ended: bool, resend: HandBack | None = None) -> H2Stream:
        """The stream, served from now in its own task (serve_stream)."""
        stream = H2Stream(host, stream_id, body, ended=ended)
        host.nursery.start_soon(serve_stream, host, self.requests, stream, request, answer, resend)
        return stream


class H2Server(H2Mux):
    """One client's HTTP/2 connection on the trio path: its socket, and a task per stream."""

    def __init__(self, connection: Carrier, requests: Requests, bounds: H2Bounds = H2Bounds()) -> None:
        gateway = connection.gateway
        super().__init__(gateway.config.parser, gateway.config.limits, bounds, time.monotonic())
        self.connection = connection
        self.tasks = TrioStreams(requests)
        self.gateway = gateway
        self.timeouts = gateway.config.timeouts
        client = connection.client
        self.socket_stream = client.stream
        self.response_extra = client.response_extra
        self.secure = requests.secure
        self._send_lock = trio.Lock()
        self._window = trio.Event()  # set when a window may have opened (WINDOW_UPDATE, SETTINGS)
        self._read_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

    @property
    def nursery(self) -> trio.Nursery:
        assert self._nursery is not None
        return self._nursery

    # --- the connection --------------------------------------------------------

    async def run(self) -> None:
        pending = self.connection.client.pending
        data = bytes(pending)
        pending.clear()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self._receive(data):
                    await self.flush()
                    await self._read()
                nursery.cancel_scope.cancel()  # the client is gone, or the connection ended: every stream stops
        finally:
            await self._close()

    async def _read(self) -> None:
        """Frames in until the connection ends (see the rules above)."""
        connection = self.connection
        gateway = self.gateway
        first = True
        while True:
            if gateway.draining and self.goaway is None:
                self.drain()
                await self.flush()
            if self.over():
                return
            idle = not self.streams
            deadline = math.inf
            if idle:
                deadline = trio.current_time() + (self.timeouts.request_head if first else self.timeouts.keepalive)
            with trio.CancelScope(deadline=deadline) as scope:
                self._read_scope = connection.idle_scope = scope  # draining cancels it
                if gateway.draining and self.goaway is None:
                    scope.cancel()
                data = await receive_some(self.socket_stream, MAX_RECV)
            self._read_scope = connection.idle_scope = None
            if scope.cancelled_caught:
                if gateway.draining or self.streams or self.ending:
                    continue
                return  # idle for its time: GOAWAY NO_ERROR (_close)
            if not data:
                return
            first = False
            if not self._receive(data):
                return
            await self.flush()

    def _receive(self, data: bytes) -> bool:
        if self.receive(data, time.monotonic()):
            return True
        log.debug("HTTP/2 client broke the protocol or a bound; ending the connection")
        return False

    def open(self, stream_id: int, request: ev.Request, body: RequestBody, answer: ClientProtocolError | None,
             ended: bool) -> MuxStream:
        return self.tasks.start(self, stream_id, request, body, answer, ended)

    def stream_over(self, stream: MuxStream) -> None:
        self.finished(stream)
        scope = self._read_scope
        if not self.streams and scope is not None:  # the connection is idle from now
            if self.goaway is not None or self.ending:
                scope.cancel()  # the reader may end it now
            else:
                scope.deadline = trio.current_time() + self.timeouts.keepalive

    # --- writing -------------------------------------------------------------

    async def flush(self) -> None:
        """What the session wrote, to the socket, one writer at a time (the others wait: backpressure).

        Raises:
            trio.BrokenResourceError, trio.ClosedResourceError: the client is gone.
        """
        async with self._send_lock:
            data = self.conn.data_to_send()
            if data:
                await send_all(self.socket_stream, data)

    async def window_opened(self) -> None:
        """Until a window may have opened (the caller looks again)."""
        await self._window.wait()

    def window_changed(self) -> None:
        self._window.set()
        self._window = trio.Event()

    # --- the end -------------------------------------------------------------

    async def _close(self) -> None:
        """The last GOAWAY (unless one ended the connection already), within CLOSE_TIME; the caller
        closes the socket."""
        try:
            self.close()
            with trio.move_on_after(CLOSE_TIME):
                await self.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, H2SessionError):
            pass
