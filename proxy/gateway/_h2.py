# One HTTP/2 client connection, in the trio shell: the reference
# implementation of HTTP/2 to clients, over python-hyper's h2 (sans-IO).
# h2 reads and writes the frames; the reader here hands each request to a
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

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import trio
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from .._errors import ClientProtocolError
from ..protocol import _events as ev
from ..protocol._h2_body import RequestBody
from ..protocol._h2_guard import ENHANCE_YOUR_CALM, OK, Guard, H2Bounds
from ..protocol._h2_head import H2Malformed, request_head
from ._h2stream import H2Stream
from ._http import MAX_RECV, HttpStream, receive_some, send_all

if TYPE_CHECKING:
    from ._request import NativeHost, Requests

__all__ = ["Carrier", "H2Server", "serve_h2"]

log = logging.getLogger("fastroute")

HEADER_OVERHEAD = 32  # bytes RFC 7541 section 4.1 counts per field in a header list's size
STREAM_WINDOW = 65_535  # bytes of a request body a stream may send ahead (SETTINGS_INITIAL_WINDOW_SIZE's default)
CLOSE_TIME = 1.0  # seconds the last GOAWAY may wait to go out


class _Connection(h2.connection.H2Connection):
    """h2's server connection, with two of its checks left to us, because h2 ends the whole
    connection where RFC 9113 makes them errors of one stream:
    - concurrent streams: past SETTINGS_MAX_CONCURRENT_STREAMS, the Guard refuses the stream
      (REFUSED_STREAM, section 5.1.2);
    - a body against its Content-Length: protocol/_h2_body.py (PROTOCOL_ERROR on the stream,
      section 8.1.1).
    (Both reach into h2: tests/proxy/gateway/test_h2.py fails if a release moves them.)"""

    @property
    def open_inbound_streams(self) -> int:
        h2.connection.H2Connection.open_inbound_streams.fget(self)  # type: ignore[attr-defined]  # forgets closed streams
        return 0

    def _begin_new_stream(self, stream_id: int, allowed_ids: h2.connection.AllowedStreamIDs) -> h2.stream.H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        stream._initialize_content_length = _length_unchecked  # type: ignore[method-assign]
        return stream


def _length_unchecked(headers: object) -> None:
    """(h2's Content-Length tracking, off: the length stays unknown to h2.)"""


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
        self.conn = _Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None,
            # protocol/_h2_head.py checks each request, so that a malformed one resets its stream
            # only (h2's checks would end the connection); cookies are joined there too.
            validate_inbound_headers=False, normalize_inbound_headers=False,
        ))
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: bounds.max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE:
                limits.max_header_bytes + limits.max_target + HEADER_OVERHEAD * (limits.max_headers + 4),
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        })
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
        conn = self.conn
        conn.initiate_connection()
        # The connection's window: every stream's at once (h2's default is one stream's).
        conn.increment_flow_control_window(self.guard.bounds.max_concurrent_streams * STREAM_WINDOW - STREAM_WINDOW)
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
        """The client's bytes through h2, and each event carried out; False: the connection ends."""
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as error:  # h2 wrote its GOAWAY with the code
            log.debug("HTTP/2 client broke the protocol: %s", error)
            return False
        now = time.monotonic()
        for event in events:
            if not self._carry_out(event, now):
                self.conn.close_connection(ENHANCE_YOUR_CALM)
                self.ending = True
                return False
        return True

    def _carry_out(self, event: h2.events.Event, now: float) -> bool:
        """One event of h2's; False when a bound ends the connection."""
        kind = type(event)
        if kind is h2.events.RequestReceived:
            assert isinstance(event, h2.events.RequestReceived)
            self._request(event.stream_id, event.headers or [], ended=event.stream_ended is not None)
        elif kind is h2.events.DataReceived:
            assert isinstance(event, h2.events.DataReceived)
            stream = self.streams.get(event.stream_id)
            if stream is None or stream.ended or stream.reset:  # gone, or reset: its window is the connection's still
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                return True
            try:
                stream.data(event.data or b"", event.flow_controlled_length)
            except H2Malformed:
                self._malformed(stream)
        elif kind is h2.events.StreamEnded:
            stream = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
            if stream is not None and not stream.ended and not stream.reset:
                try:
                    stream.end()
                except H2Malformed:
                    self._malformed(stream)
        elif kind is h2.events.StreamReset:
            stream = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
            if stream is not None and not stream.reset:
                stream.cancel(by_client=True)
                return self.guard.stream_reset(now) == OK
        elif kind is h2.events.WindowUpdated:
            self._window_changed()
        elif kind is h2.events.RemoteSettingsChanged:
            self._window_changed()
            return self.guard.control_frame(now) == OK
        elif kind is h2.events.ConnectionTerminated:
            self.ending = True
        elif kind is h2.events.TrailersReceived:
            pass  # request trailers never become header fields (protocol/_h2_body.py); StreamEnded follows
        elif kind is not h2.events.SettingsAcknowledged:
            return self.guard.control_frame(now) == OK  # PING, PRIORITY, unknown frames: they cost work
        return True

    def _request(self, stream_id: int, fields: list[tuple[bytes, bytes]], *, ended: bool) -> None:
        conn = self.conn
        if self.goaway is not None or self.ending or self.guard.stream_opened() != OK:
            conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)  # after our GOAWAY, or past the bound
            return
        self.last_taken = stream_id
        answer: ClientProtocolError | None = None
        try:
            head = request_head(fields, self.limits)
            body = RequestBody(head, end_stream=ended)
        except H2Malformed:
            self.guard.stream_closed()
            conn.reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)
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
        self.conn.reset_stream(stream.stream_id, ErrorCodes.PROTOCOL_ERROR)
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
        """GOAWAY naming the last stream taken; the streams in flight go on (h2 is not told: its
        state would refuse their frames)."""
        self.goaway = self.last_taken
        frame = GoAwayFrame(0)
        frame.last_stream_id = self.last_taken
        frame.error_code = ErrorCodes.NO_ERROR
        async with self._send_lock:
            data = self.conn.data_to_send() + frame.serialize()
            await send_all(self.socket_stream, data)

    async def _close(self) -> None:
        """The last GOAWAY (h2's, with its code), within CLOSE_TIME; the caller closes the socket."""
        conn = self.conn
        try:
            if conn.state_machine.state is not h2.connection.ConnectionState.CLOSED:
                conn.close_connection(ErrorCodes.NO_ERROR, last_stream_id=self.last_taken)
            with trio.move_on_after(CLOSE_TIME):
                await self.flush()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h2.exceptions.ProtocolError):
            pass
