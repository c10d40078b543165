# One HTTP/2 client connection, in the trio shell: HTTP/2 to clients on the
# trio path. A session (protocol/_h2session.py's contract: libnghttp2's with
# --parser fast when it is built, h2's with --parser h11, the reference)
# reads and writes the frames; the reader here hands each request to a
# stream task that serves it as any request (_request.py, over the stream's
# ClientSide, _h2stream.py), and holds the connection to its bounds
# (protocol/_h2_guard.py).
#
# Rules:
# - every stream is a request of its own, served at once in its own task;
#   its head is checked (protocol/_h2_head.py) before anything is routed: a
#   malformed one is reset (PROTOCOL_ERROR), one HTTP/1.1 would refuse gets
#   the same status HTTP/1.1 gets;
# - bounds: past max_concurrent_streams a stream is refused
#   (REFUSED_STREAM), never queued; client resets and control frames past
#   their budgets end the connection (GOAWAY ENHANCE_YOUR_CALM); a broken
#   frame ends it with the code h2 names; anything of h2's that would grow
#   without bound waits for the socket instead: one writer at a time
#   (flush), and the reader writes what it owes before reading again, so a
#   client that does not read stops being read;
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
from ..protocol import _h2session as session_events
from ..protocol._h2_body import RequestBody
from ..protocol._h2_guard import ENHANCE_YOUR_CALM, OK, REFUSED_STREAM, Guard, H2Bounds
from ..protocol._h2_head import H2Malformed, request_head
from ..protocol._compiled import H2SESSION_COMPILED, H2Session
from ..protocol._h2session import NO_ERROR, PROTOCOL_ERROR, H2Options, H2SessionError, PyH2Session
from ._h2stream import H2Stream, Session
from ._http import MAX_RECV, HttpStream, receive_some, send_all

if TYPE_CHECKING:
    from ._request import NativeHost, Requests

__all__ = ["Carrier", "H2Server", "serve_h2"]

log = logging.getLogger("fastroute")

HEADER_OVERHEAD = 32  # bytes RFC 7541 section 4.1 counts per field in a header list's size
STREAM_WINDOW = 65_535  # bytes of a request body a stream may send ahead (SETTINGS_INITIAL_WINDOW_SIZE's default)
CLOSE_TIME = 1.0


def session_for(parser: str, options: H2Options) -> Session:
    """The HTTP/2 session of a connection: libnghttp2's with --parser fast (when built), else h2's."""
    if parser == "fast" and H2SESSION_COMPILED:
        return H2Session(options)
    return PyH2Session(options)  # seconds the last GOAWAY may wait to go out


class Carrier(Protocol):
    """The client connection an HTTP/2 connection is carried on (_connection.ClientConnection)."""

    gateway: NativeHost
    client: HttpStream  # its stream, and what was read of it (pending)
    idle_scope: trio.CancelScope | None  # the wait for the client's next bytes: the gateway's drain cancels it


async def serve_h2(connection: Carrier, requests: Requests) -> None:
    """Serve the HTTP/2 connection `connection` carries (its client.pending: what it read of it)."""
    await H2Server(connection, requests).run()


class H2Server:
    """One client's HTTP/2 connection: its frames, its streams, its bounds."""

    def __init__(self, connection: Carrier, requests: Requests, bounds: H2Bounds = H2Bounds()) -> None:
        gateway = connection.gateway
        self.connection = connection
        self.requests = requests
        self.gateway = gateway
        self.timeouts = gateway.config.timeouts
        self.limits = limits = gateway.config.limits
        client = connection.client
        self.socket_stream = client.stream
        self.response_extra = client.response_extra
        self.secure = requests.secure
        self.conn = session_for(gateway.config.parser, H2Options(
            max_concurrent_streams=bounds.max_concurrent_streams,
            max_header_list_size=limits.max_header_bytes + limits.max_target + HEADER_OVERHEAD * (limits.max_headers + 4),
            initial_window_size=STREAM_WINDOW,
            connection_window=bounds.max_concurrent_streams * STREAM_WINDOW,  # every stream's at once
        ))
        self.guard = Guard(bounds, time.monotonic())
        self.streams: dict[int, H2Stream] = {}
        self.last_taken = 0  # the highest stream id served or being served
        self.goaway: int | None = None  # the last stream id our drain's GOAWAY named
        self.ending = False  # the client sent GOAWAY, or a bound ended the connection
        self._send_lock = trio.Lock()
        self._window = trio.Event()  # set when a window may have opened (WINDOW_UPDATE, SETTINGS)
        self._read_scope: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

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
                await self._drain()
            if (self.goaway is not None or self.ending) and not self.streams:
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
        """The client's bytes through the session, and each event carried out; False: the connection ends."""
        try:
            events = self.conn.receive(data)
        except H2SessionError as error:  # the session wrote its GOAWAY with the code
            log.debug("HTTP/2 client broke the protocol: %s", error)
            self.ending = True
            return False
        now = time.monotonic()
        for kind, stream_id, a, b in events:
            if not self._carry_out(kind, stream_id, a, b, now):
                self.conn.goaway(ENHANCE_YOUR_CALM, self.last_taken)
                self.ending = True
                return False
        return True

    def _carry_out(self, kind: int, stream_id: int, a: object, b: object, now: float) -> bool:
        """One event of the session's; False when a bound ends the connection."""
        if kind == session_events.REQUEST:
            assert isinstance(a, list) and isinstance(b, bool)
            self._request(stream_id, a, ended=b)
            return True
        stream = self.streams.get(stream_id) if stream_id else None
        if kind == session_events.DATA:
            assert isinstance(a, bytes) and isinstance(b, int)
            if stream is None or stream.ended or stream.reset:  # gone, or reset: the connection's window still
                self.conn.consume(stream_id, b)
            else:
                try:
                    stream.data(a, b)
                except H2Malformed:
                    self._malformed(stream)
        elif kind == session_events.END:
            if stream is not None and not stream.ended and not stream.reset:
                try:
                    stream.end()
                except H2Malformed:
                    self._malformed(stream)
        elif kind == session_events.RESET:
            if stream is not None and not stream.reset:
                stream.cancel(by_client=True)
                return self.guard.stream_reset(now) == OK
        elif kind == session_events.CLOSED:  # the session refused it (malformed): it reset it itself
            if stream is not None and not stream.reset:
                stream.cancel(by_client=False)
        elif kind == session_events.WINDOW:
            self._window_changed()
        elif kind == session_events.SETTINGS:
            self._window_changed()
            return self.guard.control_frame(now) == OK
        elif kind == session_events.GOAWAY:
            self.ending = True
        elif kind == session_events.PING:
            return self.guard.control_frame(now) == OK
        return True

    def _request(self, stream_id: int, fields: list[tuple[bytes, bytes]], *, ended: bool) -> None:
        conn = self.conn
        if self.goaway is not None or self.ending or self.guard.stream_opened() != OK:
            conn.reset(stream_id, REFUSED_STREAM)  # after our GOAWAY, or past the bound
            return
        self.last_taken = stream_id
        answer: ClientProtocolError | None = None
        try:
            head = request_head(fields, self.limits)
            body = RequestBody(head, end_stream=ended)
        except H2Malformed:
            self.guard.stream_closed()
            conn.reset(stream_id, PROTOCOL_ERROR)
            return
        except ClientProtocolError as error:  # what HTTP/1.1 answers (400, 414, 431, 501)
            answer = error
            request = ev.Request(b"-", b"-", [])
            body = RequestBody.dropped()
        else:
            request = ev.Request(head.method, head.target, head.headers + body.head_fields(), b"2")
        stream = H2Stream(self, stream_id, body, ended=ended)
        self.streams[stream_id] = stream
        assert self._nursery is not None
        self._nursery.start_soon(self._serve, stream, request, answer)

    def _malformed(self, stream: H2Stream) -> None:
        """The request's body broke its Content-Length: the stream is reset, its exchange stops."""
        self.conn.reset(stream.stream_id, PROTOCOL_ERROR)
        stream.cancel(by_client=False)

    async def _serve(self, stream: H2Stream, request: ev.Request, answer: ClientProtocolError | None) -> None:
        """One stream's exchange, in its own task; whatever happens, the stream ends here."""
        try:
            with stream.scope:
                if answer is not None:
                    await self.requests.refuse(stream, answer)
                else:
                    await self.requests.serve(stream, request)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("bug: unexpected error on an HTTP/2 stream; resetting it")
        finally:
            stream.finish()
            del self.streams[stream.stream_id]
            if not stream.by_client:  # (a client's reset was counted as one)
                self.guard.stream_closed()
            scope = self._read_scope
            if not self.streams and scope is not None:  # the connection is idle from now
                if self.goaway is not None or self.ending:
                    scope.cancel()  # the reader may end it now
                else:
                    scope.deadline = trio.current_time() + self.timeouts.keepalive
        try:
            await self.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the reader sees the end

    # --- writing -------------------------------------------------------------

    async def flush(self) -> None:
        """What h2 wrote, to the socket, one writer at a time (the others wait: backpressure).

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

    def _window_changed(self) -> None:
        self._window.set()
        self._window = trio.Event()

    # --- the end -------------------------------------------------------------

    async def _drain(self) -> None:
        """GOAWAY naming the last stream taken; the streams in flight go on."""
        self.goaway = self.last_taken
        self.conn.goaway(NO_ERROR, self.last_taken, final=False)
        await self.flush()

    async def _close(self) -> None:
        """The last GOAWAY (unless one ended the connection already), within CLOSE_TIME; the caller
        closes the socket."""
        try:
            if not self.ending:
                self.conn.goaway(NO_ERROR, self.last_taken)
            with trio.move_on_after(CLOSE_TIME):
                await self.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, H2SessionError):
            pass
