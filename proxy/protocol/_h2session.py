# Pure, sans-IO: one HTTP/2 server connection as bytes in, events out, and
# bytes to send, whichever library frames it. H2Session is the contract;
# PyH2Session implements it over python-hyper's h2 (the reference), and
# _h2session_c.pyx over libnghttp2 (the engine's). A differential test
# (tests/proxy/protocol/test_h2session.py) feeds both the same client bytes.
#
# Events are tuples (kind, stream_id, a, b):
#   REQUEST  a: the header list as sent ((name, value) bytes pairs, pseudo-
#            headers first), b: whether its HEADERS ended the stream
#   DATA     a: the bytes, b: their flow-controlled size (consume() it once used)
#   END      the client ended the stream (after DATA or trailers; trailers are dropped)
#   RESET    a: the client's RST_STREAM error code
#   CLOSED   a: the error code the library closed the stream with by itself
#            (a malformed request it refused); the stream is gone
#   GOAWAY   stream_id: the last stream the client processed, a: its error code
#   PING, SETTINGS   a control frame came (the caller's bounds count them)
#   WINDOW   a WINDOW_UPDATE came (0: the connection's window)
#
# Rules:
# - flow control in: a stream's window reopens only when the caller
#   consume()s its DATA, so a slow backend slows its client;
# - flow control out: send_data queues; data_to_send() frames what the
#   windows and the client's frame size allow, END_STREAM with the last
#   byte; pending() says what is still queued (the caller's backpressure);
# - a connection error (a frame that breaks the protocol): receive() raises
#   H2SessionError with the GOAWAY code, the GOAWAY is in data_to_send();
# - respond() or send_data() on a stream that is gone (reset, or ended
#   both ways) raise StreamClosed: the peer went away, for that stream;
# - goaway() with `final` False (a drain) lets the streams up to
#   last_stream_id go on; with `final`, the connection is done.

from __future__ import annotations

from dataclasses import dataclass

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
from hyperframe.frame import GoAwayFrame

__all__ = [
    "CLOSED", "DATA", "END", "GOAWAY", "PING", "REQUEST", "RESET", "SETTINGS", "WINDOW",
    "INTERNAL_ERROR", "NO_ERROR", "PROTOCOL_ERROR",
    "H2Options", "H2Session", "H2SessionError", "PyH2Session", "StreamClosed",
]

REQUEST, DATA, END, RESET, CLOSED, GOAWAY, PING, SETTINGS, WINDOW = range(1, 10)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR = 0x0, 0x1, 0x2  # error codes the caller sends (RFC 9113 section 7)
Event = tuple[int, int, object, object]


@dataclass(frozen=True, slots=True)
class H2Options:
    max_concurrent_streams: int = 100
    max_header_list_size: int = 65_536
    initial_window_size: int = 65_535  # a stream's receive window
    connection_window: int = 100 * 65_535  # the connection's receive window (every stream's at once)


class H2SessionError(Exception):
    """The client broke HTTP/2 at the connection level: the GOAWAY with `code` is to be sent."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class StreamClosed(Exception):
    """The stream is gone (the client reset it, or it ended both ways): nothing more goes on it."""


class _Server(h2.connection.H2Connection):
    # h2 told of no concurrent-stream bound (the caller refuses past it with REFUSED_STREAM, RFC 9113
    # section 5.1.2), and no Content-Length tracking (the caller checks it as a stream error,
    # section 8.1.1): h2 would end the whole connection for either.

    @property
    def open_inbound_streams(self) -> int:
        h2.connection.H2Connection.open_inbound_streams.fget(self)  # type: ignore[attr-defined]  # forgets closed ones
        return 0

    def _begin_new_stream(self, stream_id: int, allowed_ids: h2.connection.AllowedStreamIDs) -> h2.stream.H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        stream._initialize_content_length = _length_unchecked  # type: ignore[method-assign]
        return stream


def _length_unchecked(headers: object) -> None:
    """(h2's Content-Length tracking, off.)"""


class PyH2Session:
    """One HTTP/2 server connection over h2 (see the contract above)."""

    def __init__(self, options: H2Options = H2Options()) -> None:
        self.conn = _Server(h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=False,
            normalize_inbound_headers=False))
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: options.max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: options.max_header_list_size,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: options.initial_window_size,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        })
        self.conn.initiate_connection()
        if options.connection_window > 65_535:
            self.conn.increment_flow_control_window(options.connection_window - 65_535)
        self._aside = bytearray()  # a drain's GOAWAY, after what h2 wrote before it
        self._queued: dict[int, bytearray] = {}  # stream -> response bytes not framed yet
        self._ending: set[int] = set()  # streams whose response ends with what is queued

    def receive(self, data: bytes) -> list[Event]:
        """The client's bytes; the events they make.

        Raises:
            H2SessionError: a connection error (the GOAWAY is in data_to_send()).
        """
        try:
            received = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as error:
            raise H2SessionError(int(error.error_code), str(error)) from None
        events: list[Event] = []
        for event in received:
            kind = type(event)
            if kind is h2.events.RequestReceived:
                assert isinstance(event, h2.events.RequestReceived)
                events.append((REQUEST, event.stream_id, list(event.headers or []), event.stream_ended is not None))
            elif kind is h2.events.DataReceived:
                assert isinstance(event, h2.events.DataReceived)
                events.append((DATA, event.stream_id, event.data or b"", event.flow_controlled_length))
            elif kind is h2.events.StreamEnded:
                assert isinstance(event, h2.events.StreamEnded)
                if not (events and events[-1][0] == REQUEST and events[-1][1] == event.stream_id):
                    events.append((END, event.stream_id, None, None))
            elif kind is h2.events.StreamReset:
                assert isinstance(event, h2.events.StreamReset)
                self._forget(event.stream_id)
                events.append((RESET, event.stream_id, int(event.error_code), None))
            elif kind is h2.events.ConnectionTerminated:
                assert isinstance(event, h2.events.ConnectionTerminated)
                events.append((GOAWAY, event.last_stream_id or 0, int(event.error_code or 0), None))
            elif kind is h2.events.PingReceived:
                events.append((PING, 0, None, None))
            elif kind is h2.events.RemoteSettingsChanged:
                events.append((SETTINGS, 0, None, None))
            elif kind is h2.events.WindowUpdated:
                assert isinstance(event, h2.events.WindowUpdated)
                events.append((WINDOW, event.stream_id or 0, None, None))
        return events

    def respond(self, stream_id: int, fields: list[tuple[bytes, bytes]], *, end_stream: bool) -> None:
        """A response's (or a 1xx's) HEADERS.

        Raises:
            StreamClosed: the stream is gone.
        """
        try:
            self.conn.send_headers(stream_id, fields, end_stream=end_stream)
        except h2.exceptions.ProtocolError as error:  # (StreamClosedError is one)
            raise StreamClosed(str(error)) from None

    def send_data(self, stream_id: int, data: bytes, *, end_stream: bool) -> None:
        """Body bytes, queued; framed by data_to_send() as the windows allow.

        Raises:
            StreamClosed: the stream is gone.
        """
        stream = self.conn.streams.get(stream_id)
        if stream is None or stream.closed:
            raise StreamClosed(f"stream {stream_id} is gone")
        self._queued.setdefault(stream_id, bytearray()).extend(data)
        if end_stream:
            self._ending.add(stream_id)

    def pending(self, stream_id: int) -> int:
        """Body bytes queued for the stream and not framed yet."""
        queued = self._queued.get(stream_id)
        return len(queued) if queued is not None else 0

    def consume(self, stream_id: int, size: int) -> None:
        """`size` bytes of the stream's DATA were used: its window (and the connection's) reopen."""
        self.conn.acknowledge_received_data(size, stream_id)

    def reset(self, stream_id: int, code: int) -> None:
        self._forget(stream_id)
        try:
            self.conn.reset_stream(stream_id, code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass  # closed already

    def goaway(self, code: int, last_stream_id: int, *, final: bool = True) -> None:
        if final:
            self.conn.close_connection(code, last_stream_id=last_stream_id)
            return
        # A drain: the GOAWAY written around h2 (its state would refuse the streams still going on).
        frame = GoAwayFrame(0)
        frame.last_stream_id = last_stream_id
        frame.error_code = code
        self._aside += frame.serialize()

    def data_to_send(self) -> bytes:
        """What to write to the client: control frames, HEADERS, and DATA as far as the windows allow."""
        conn = self.conn
        if self._aside:
            aside = conn.data_to_send() + bytes(self._aside)
            self._aside.clear()
            return aside + self.data_to_send()
        for stream_id in list(self._queued):
            queued = self._queued[stream_id]
            try:
                while queued:
                    size = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size, len(queued))
                    if size <= 0:
                        break
                    conn.send_data(stream_id, bytes(queued[:size]))
                    del queued[:size]
                if not queued:
                    del self._queued[stream_id]
                    if stream_id in self._ending:
                        self._ending.discard(stream_id)
                        conn.end_stream(stream_id)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                self._forget(stream_id)
        return conn.data_to_send()

    def _forget(self, stream_id: int) -> None:
        self._queued.pop(stream_id, None)
        self._ending.discard(stream_id)


H2Session = PyH2Session  # the twin under the compiled one's name (_compiled.py chooses)
