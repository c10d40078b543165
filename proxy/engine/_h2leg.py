# One HTTP/2 stream the engine serves itself: the `Connection` (_contract.py)
# a StreamShell asks of its client, for one stream of an HTTP/2 connection
# (_h2.NativeH2), and the encoder that hands the stream's response to the
# connection's session as HEADERS and DATA instead of HTTP/1.1 bytes. The
# StreamShell is the one HTTP/1.1 streams have: the same backend, retries,
# deadlines and response rules, without the lane and the splice (neither
# carries HTTP/2's frames).
#
# Rules:
# - a stream has its own state (engine/_states.py: from HEAD, its request
#   routed, to CLOSED) and its own deadline; the socket, its interest and its
#   buffers are the connection's (watch() asks nothing of the loop);
# - the response's head is held until its body's first bytes or its end
#   come, and the body's last bytes until the end or the next flush, so that
#   a response ends on its HEADERS or on its last DATA frame, not on an
#   empty one;
# - flush() writes what the session frames; the stream waits (the shell
#   stops reading its backend) until its queued bytes are framed and the
#   socket took them: a client that does not read, or whose window is shut,
#   slows that stream's backend and no other's buffers grow;
# - the stream's end: a whole response ends it; a failed one is reset
#   (INTERNAL_ERROR), the client's reset stops it where it is (its backend
#   connection closed, the exchange recorded); a request to go back to the
#   trio path (a hold, a wait for backends to leave) becomes a stream task
#   there, on the same connection.

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..protocol import _events as ev
from ..protocol._h2_body import RequestBody
from ..protocol._h2_head import response_fields
from ..protocol._h2session import INTERNAL_ERROR, StreamClosed
from ._loop import Timed
from ._states import CLOSED, START, moved

if TYPE_CHECKING:
    from ..protocol._h2_mux import Session
    from ..routing._retry import Waiting
    from ..tls._session import TlsSession
    from ._handover import EngineParts, Front
    from ._stream_shell import StreamShell
    from ._transport import Transport

__all__ = ["H2Encoder", "H2Leg", "LegMux"]


class H2Encoder:
    """The client's side of one HTTP/2 stream's exchange, as the StreamShell writes its response."""

    __slots__ = ("session", "stream_id", "head", "data", "gone")

    keep_alive = False  # (HTTP/1.1's question: a stream carries one exchange)
    trailing_data = (b"", False)  # nothing comes after a stream's request

    def __init__(self, session: Session, stream_id: int) -> None:
        self.session = session
        self.stream_id = stream_id
        self.head: list[tuple[bytes, bytes]] | None = None  # the response's fields, held
        self.data = b""  # the body's last bytes, held
        self.gone = False  # the session said the stream is gone

    def send(self, event: ev.Event) -> bytes:
        """The response's `event` to the session (see the rules above); no bytes for outbuf."""
        kind = type(event)
        try:
            if kind is ev.Data:
                assert isinstance(event, ev.Data)
                self.release()
                self.data = bytes(event.data)
            elif kind is ev.Response:
                assert isinstance(event, ev.Response)
                self.head = response_fields(event.status_code, event.headers)
            elif kind is ev.EndOfMessage:
                head, self.head = self.head, None
                data, self.data = self.data, b""
                if head is not None:
                    self.session.respond(self.stream_id, head, end_stream=not data)
                    if data:
                        self.session.send_data(self.stream_id, data, end_stream=True)
                else:
                    self.session.send_data(self.stream_id, data, end_stream=True)
            elif kind is ev.InformationalResponse:
                assert isinstance(event, ev.InformationalResponse)
                self.session.respond(self.stream_id, response_fields(event.status_code, event.headers),
                                     end_stream=False)
        except StreamClosed:
            self.gone = True
        return b""

    def release(self) -> None:
        """What is held, to the session, the stream left open."""
        try:
            if self.head is not None:
                head, self.head = self.head, None
                self.session.respond(self.stream_id, head, end_stream=False)
            if self.data:
                data, self.data = self.data, b""
                self.session.send_data(self.stream_id, data, end_stream=False)
        except StreamClosed:
            self.gone = True


class LegMux(Protocol):
    """What a leg uses of its HTTP/2 connection (_h2.NativeH2)."""

    engine: EngineParts
    front: Front
    fd: int
    tls: TlsSession | None
    response_extra: list[tuple[bytes, bytes]]
    conn: Session
    transport: Transport
    backlogged: bool  # bytes wait for the socket
    blocked: dict[int, H2Leg]  # legs whose bytes wait (flush)

    def write(self) -> None:
        """What the session has to send, framed, and written (see _h2.NativeH2.write)."""

    def to_task(self, leg: H2Leg, waiting: Waiting | None, failures: int) -> None:
        """`leg`'s request, not sent anywhere, goes on in a trio task."""

    def leg_over(self, leg: H2Leg) -> None:
        """`leg`'s exchange ended."""


class H2Leg:
    """One stream of an HTTP/2 connection, as its StreamShell's client connection."""

    __slots__ = ("mux", "stream_id", "request", "body", "engine", "front", "fd", "tls", "extra", "outbuf",
                 "state", "timed", "shell", "encoder", "reset", "by_client")

    plain = False  # HTTP/2's frames: never spliced
    ended = True  # the engine serves only requests whose HEADERS ended the stream

    def __init__(self, mux: LegMux, stream_id: int, request: ev.Request, body: RequestBody) -> None:
        self.mux = mux
        self.stream_id = stream_id
        self.request = request
        self.body = body
        self.engine = mux.engine
        self.front = mux.front
        self.fd = mux.fd
        self.tls = mux.tls
        self.extra = mux.response_extra
        self.outbuf = bytearray()  # stays empty: the encoder hands the response to the session
        self.state = START
        self.timed = Timed()
        self.encoder = H2Encoder(mux.conn, stream_id)
        self.shell: StreamShell | None = None
        self.reset = False  # the stream was reset (by the client, or by us)
        self.by_client = False

    def start(self) -> None:
        """Its first step, once the mux has it among its streams: to a backend."""
        if self.shell is not None and not self.reset:
            self.shell.next_backend()

    # --- Connection (_contract.py) ----------------------------------------------------

    def enter(self, state: int) -> None:
        self.state = moved(self.state, state)

    def deadline(self, seconds: float) -> None:
        loop = self.engine.loop
        loop.at(loop.now + seconds, self, self.timed)

    def watch(self, *, writing: bool) -> None:
        """(The socket's interest is the connection's.)"""

    def flush(self) -> None:
        """What the stream's response put in the session, framed and written; then the shell is told
        whether any of it waits (see the rules above)."""
        if self.state == CLOSED:
            return
        encoder = self.encoder
        encoder.release()
        shell = self.shell
        assert shell is not None
        if encoder.gone:
            self.abort("the client reset the stream")
            return
        mux = self.mux
        mux.write()
        if self.state == CLOSED:  # the write found the client gone
            return
        shell.wrote()
        waiting = mux.backlogged or mux.conn.pending(self.stream_id) > 0
        if waiting:
            mux.blocked[self.stream_id] = self
        shell.flushed(waiting)

    def unblocked(self) -> None:
        """The connection wrote what waited, the stream's own bytes too: the shell goes on."""
        if self.state != CLOSED and self.shell is not None:
            self.shell.flushed(False)

    def abort(self, why: str) -> None:
        """The response cannot go on: the exchange recorded as it stands, the stream reset."""
        if self.shell is not None:
            self.shell.record()
        self._end(INTERNAL_ERROR)

    def fail(self) -> None:
        """A handler raised (a bug, logged): this stream alone ends."""
        self.abort("bug")

    def hand_back_request(self, waiting: Waiting | None = None, failures: int = 0) -> None:
        """The request, not sent anywhere, to the trio path: a stream task on the same connection."""
        self._stop()
        self.mux.to_task(self, waiting, failures)

    def finished(self) -> None:
        """The response is out whole."""
        assert self.shell is not None
        self.shell.finish()
        self._end(None)

    # --- the loop's handler (the stream's deadline) ---------------------------------------

    def ready(self, fd: int, mask: int) -> None:  # (never: the connection's socket is the connection's)
        raise AssertionError("a stream has no socket of its own")

    def expired(self) -> None:
        if self.state != CLOSED and self.shell is not None:
            self.shell.expired()

    # --- MuxStream (protocol/_h2_mux.py) --------------------------------------------------

    def data(self, data: bytes, flow: int) -> None:  # (never: the request ended on its HEADERS)
        raise AssertionError("DATA after END_STREAM is the session's to refuse")

    def end(self) -> None:  # (never, as data())
        raise AssertionError("the request ended on its HEADERS")

    def cancel(self, *, by_client: bool) -> None:
        """The stream was reset (by the client, or by the mux: malformed): the exchange stops here."""
        if self.state == CLOSED:
            return
        self.reset = True
        self.by_client = by_client
        if self.shell is not None:
            self.shell.record()
        self._end(None)

    # --- the end -----------------------------------------------------------------------

    def _stop(self) -> None:
        if self.state != CLOSED:
            self.enter(CLOSED)
        self.engine.loop.cancel(self.timed)
        self.mux.blocked.pop(self.stream_id, None)
        if self.shell is not None:
            self.shell.drop()

    def _end(self, code: int | None) -> None:
        if self.state == CLOSED:
            return
        self._stop()
        if code is not None and not self.reset:
            self.reset = True
            self.mux.conn.reset(self.stream_id, code)
        self.mux.leg_over(self)
