# Pure, sans-IO: the streams of one HTTP/2 server connection and the bounds
# it is held to, whichever shell moves its bytes (the trio path's
# gateway/_h2.py, or the engine's engine/_h2.py) and whichever library
# frames them (a session of protocol/_h2session.py's contract). The shell
# hands the client's bytes to receive(), writes what the session has to
# send, and opens each request's stream (open(), the one thing it decides:
# how the request is served); this carries out every other event.
#
# Rules:
# - every stream is a request of its own; its head is checked
#   (protocol/_h2_head.py) before the shell sees it: a malformed one is
#   reset (PROTOCOL_ERROR), one HTTP/1.1 would refuse is opened with the
#   error that answers it (the same status HTTP/1.1 gets);
# - bounds (protocol/_h2_guard.py): past max_concurrent_streams a stream is
#   refused (REFUSED_STREAM), never queued; client resets and control frames
#   past their budgets end the connection (GOAWAY ENHANCE_YOUR_CALM); a
#   broken frame ends it with the code the session names;
# - after our drain's GOAWAY, or the client's, new streams are refused;
#   the connection ends once the streams in flight did (finished()).

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from .._errors import ClientProtocolError
from . import _events as ev
from . import _h2session as session_events
from ._compiled import H2SESSION_COMPILED, H2Session
from ._h2_body import RequestBody
from ._h2_guard import ENHANCE_YOUR_CALM, OK, REFUSED_STREAM, Guard, H2Bounds
from ._h2_head import H2Malformed, request_head
from ._h2session import NO_ERROR, PROTOCOL_ERROR, Event, H2Options, H2SessionError, PyH2Session

if TYPE_CHECKING:
    from .._config import Limits

__all__ = ["H2Mux", "MuxStream", "Session", "options_for", "session_for"]

HEADER_OVERHEAD = 32  # bytes RFC 7541 section 4.1 counts per field in a header list's size
STREAM_WINDOW = 65_535  # bytes of a request body a stream may send ahead (SETTINGS_INITIAL_WINDOW_SIZE's default)


class Session(Protocol):
    """An HTTP/2 server session (protocol/_h2session.py's contract: PyH2Session, or the compiled one)."""

    def receive(self, data: bytes) -> list[Event]: ...

    def respond(self, stream_id: int, fields: list[tuple[bytes, bytes]], *, end_stream: bool) -> None: ...

    def send_data(self, stream_id: int, data: bytes, *, end_stream: bool) -> None: ...

    def pending(self, stream_id: int) -> int: ...

    def consume(self, stream_id: int, size: int) -> None: ...

    def reset(self, stream_id: int, code: int) -> None: ...

    def goaway(self, code: int, last_stream_id: int, *, final: bool = True) -> None: ...

    def data_to_send(self) -> bytes: ...


class MuxStream(Protocol):
    """One stream as the mux hands it the client's events (the shells' streams)."""

    stream_id: int
    ended: bool  # the client ended its side (END_STREAM)
    reset: bool  # the stream was reset (by the client, or by us)
    by_client: bool  # by the client

    def data(self, data: bytes, flow: int) -> None:
        """A DATA frame's payload (`flow`: its flow-controlled size). Raises H2Malformed past the length."""

    def end(self) -> None:
        """The client ended the stream. Raises H2Malformed short of the length."""

    def cancel(self, *, by_client: bool) -> None:
        """The stream was reset: its exchange stops where it is."""


def options_for(limits: Limits, bounds: H2Bounds) -> H2Options:
    """The session's settings for a connection held to `limits` (the same as HTTP/1.1's) and `bounds`."""
    return H2Options(
        max_concurrent_streams=bounds.max_concurrent_streams,
        max_header_list_size=limits.max_header_bytes + limits.max_target + HEADER_OVERHEAD * (limits.max_headers + 4),
        initial_window_size=STREAM_WINDOW,
        connection_window=bounds.max_concurrent_streams * STREAM_WINDOW,  # every stream's at once
    )


def session_for(parser: str, options: H2Options) -> Session:
    """The HTTP/2 session of a connection: libnghttp2's with --parser fast (when built), else h2's."""
    if parser == "fast" and H2SESSION_COMPILED:
        return H2Session(options)
    return PyH2Session(options)


class H2Mux:
    """One client's HTTP/2 connection: its session, its streams, its bounds (see the rules above)."""

    def __init__(self, parser: str, limits: Limits, bounds: H2Bounds, now: float) -> None:
        self.conn = session_for(parser, options_for(limits, bounds))
        self.limits = limits
        self.guard = Guard(bounds, now)
        self.streams: dict[int, MuxStream] = {}
        self.last_taken = 0  # the highest stream id served or being served
        self.goaway: int | None = None  # the last stream id our drain's GOAWAY named
        self.ending = False  # the client sent GOAWAY, or a bound ended the connection

    # --- what the shell calls ----------------------------------------------------

    def receive(self, data: bytes, now: float) -> bool:
        """The client's bytes through the session, and each event carried out; False: the connection
        ends (the session holds its GOAWAY)."""
        try:
            events = self.conn.receive(data)
        except H2SessionError:  # the session wrote its GOAWAY with the code
            self.ending = True
            return False
        for kind, stream_id, a, b in events:
            if kind == session_events.REQUEST:  # (the commonest event: no call to _carry_out)
                self._request(stream_id, a, ended=b)  # type: ignore[arg-type]
            elif not self._carry_out(kind, stream_id, a, b, now):
                self.conn.goaway(ENHANCE_YOUR_CALM, self.last_taken)
                self.ending = True
                return False
        return True

    def drain(self) -> None:
        """GOAWAY naming the last stream taken; the streams in flight go on."""
        self.goaway = self.last_taken
        self.conn.goaway(NO_ERROR, self.last_taken, final=False)

    def finished(self, stream: MuxStream) -> None:
        """`stream`'s exchange is over (whatever it left unfinished was reset by its shell)."""
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
        if not stream.by_client:  # (a client's reset was counted as one)
            self.guard.stream_closed()

    def over(self) -> bool:
        """Nothing more to serve: a GOAWAY was sent or came, and no stream is left."""
        return (self.goaway is not None or self.ending) and not self.streams

    def close(self) -> None:
        """The last GOAWAY (unless one ended the connection already), in what the session sends."""
        if not self.ending:
            try:
                self.conn.goaway(NO_ERROR, self.last_taken)
            except H2SessionError:
                pass

    # --- what the shell decides ------------------------------------------------------

    def open(self, stream_id: int, request: ev.Request, body: RequestBody, answer: ClientProtocolError | None,
             ended: bool) -> MuxStream:
        """A request's stream, served from now (with `answer`: refused with it)."""
        raise NotImplementedError

    def fast(self, stream_id: int, fields: list[tuple[bytes, bytes]]) -> MuxStream | None:
        """A request whose HEADERS ended its stream, served by a stream of the shell's own from its
        header list as it came (the engine's compiled cycle), or None: the head is checked and the
        stream opened (open())."""
        return None

    def window_changed(self) -> None:
        """A flow-control window may have opened (WINDOW_UPDATE, SETTINGS)."""

    # --- the events ----------------------------------------------------------------

    def _carry_out(self, kind: int, stream_id: int, a: object, b: object, now: float) -> bool:
        """One event of the session's but a request (receive() opens those); False when a bound ends
        the connection."""
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
            self.window_changed()
        elif kind == session_events.SETTINGS:
            self.window_changed()
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
        fast = self.fast(stream_id, fields) if ended else None
        if fast is not None:
            self.streams[stream_id] = fast
            return
        answer: ClientProtocolError | None = None
        try:
            request, body = self.request_of(fields, ended=ended)
        except H2Malformed:
            self.guard.stream_closed()
            conn.reset(stream_id, PROTOCOL_ERROR)
            return
        except ClientProtocolError as error:  # what HTTP/1.1 answers (400, 414, 431, 501)
            answer = error
            request = ev.Request(b"-", b"-", [])
            body = RequestBody.dropped()
        self.streams[stream_id] = self.open(stream_id, request, body, answer, ended)

    def request_of(self, fields: list[tuple[bytes, bytes]], *, ended: bool) -> tuple[ev.Request, RequestBody]:
        """The request a header list makes, and its body.

        Raises:
            H2Malformed: the request is malformed (the stream is reset).
            ClientProtocolError: HTTP/1.1's rules refuse it, with the status the client gets.
        """
        head = request_head(fields, self.limits)
        body = RequestBody(head, end_stream=ended)
        return ev.Request(head.method, head.target, head.headers + body.head_fields(), b"2"), body

    def _malformed(self, stream: MuxStream) -> None:
        """The request's body broke its Content-Length: the stream is reset, its exchange stops."""
        self.conn.reset(stream.stream_id, PROTOCOL_ERROR)
        stream.cancel(by_client=False)
