# One HTTP/2 stream as the client's side of one exchange (ClientSide,
# _http.py), so the relay serves it as it serves an HTTP/1.1 request: the
# request body's events as the connection (_h2.py) hands them over, the
# response's events written as HEADERS and DATA frames.
#
# Rules:
# - the request body: DATA is checked against the request's Content-Length
#   (protocol/_h2_body.py) before it goes on; its bytes are acknowledged
#   (the client's window reopens) only once the relay took them, so a
#   backend that reads slowly slows its client, and at most a window's worth
#   waits here;
# - the response: HEADERS as protocol/_h2_head.response_fields makes them
#   (no connection-specific field); its body queued in the session, which
#   frames it within the windows and the client's frame size; the stream
#   waits until the session framed it (a WINDOW_UPDATE, if the window is
#   shut) before it takes more from the backend, so at most one read of it
#   waits here. END_STREAM on the last frame; a response with no body ends
#   on its HEADERS;
# - the client resetting the stream, or the connection ending, makes every
#   further write fail as a closed peer does (trio.BrokenResourceError);
# - finish() ends what the relay left: a response not sent whole is reset
#   (INTERNAL_ERROR: the client never takes a truncated body for a whole
#   one); a request whose body was not read to its end after a whole
#   response is reset with NO_ERROR (RFC 9113 section 8.1).

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import trio

from ..protocol import _events as ev
from ..protocol._h2_body import RequestBody
from ..protocol._h2_head import response_fields
from ..protocol._h2session import INTERNAL_ERROR, NO_ERROR, StreamClosed

if TYPE_CHECKING:
    from ..engine._handover import StreamHost

__all__ = ["H2Stream"]


class _Sides:
    """The two sides' states (the Sides protocol, _http.py) and the request's events not taken yet."""

    __slots__ = ("our_state", "their_state", "events")

    trailing_data = (b"", False)  # nothing comes after a stream's request

    def __init__(self) -> None:
        self.our_state = ev.IDLE  # SEND_BODY once the response's HEADERS went, DONE once it ended
        self.their_state = ev.SEND_BODY  # DONE once the request's end was taken
        self.events: deque[tuple[ev.Event, int]] = deque()  # and each DATA's flow-controlled size

    def next_event(self) -> ev.Event | ev.State:
        if not self.events:
            return ev.NEED_DATA
        event, _ = self.events.popleft()
        if event is ev.END_OF_MESSAGE:
            self.their_state = ev.DONE
        return event


class H2Stream:
    """The client's side of the exchange one HTTP/2 stream carries."""

    __slots__ = ("server", "stream_id", "body", "conn", "ended", "reset", "by_client", "scope", "secure",
                 "response_extra", "_arrived")

    stream = None  # no socket of its own: the relay never splices nor tunnels it

    def __init__(self, server: StreamHost, stream_id: int, body: RequestBody, *, ended: bool) -> None:
        self.server = server
        self.stream_id = stream_id
        self.body = body
        self.conn = _Sides()
        self.secure = server.secure  # HTTPS (X-Forwarded-Proto says so)
        self.response_extra = server.response_extra
        self.ended = False  # the client ended its side (END_STREAM)
        self.reset = False  # the stream was reset (by the client, or by us: malformed)
        self.by_client = False  # by the client
        self.scope = trio.CancelScope()  # the exchange's: cancelled when the client resets the stream
        self._arrived = trio.Event()  # a request event came for next_event
        if ended:
            self.end()

    # --- what the connection hands over ----------------------------------------

    def data(self, data: bytes, flow: int) -> None:
        """A DATA frame's payload (`flow`: its flow-controlled size, padding included).

        Raises:
            H2Malformed: past the request's Content-Length.
        """
        self.body.data(len(data))
        self.conn.events.append((ev.Data(data), flow))
        self._arrived.set()

    def end(self) -> None:
        """The client ended the stream.

        Raises:
            H2Malformed: short of the request's Content-Length.
        """
        self.ended = True
        self.body.end()
        self.conn.events.append((ev.END_OF_MESSAGE, 0))
        self._arrived.set()

    def cancel(self, *, by_client: bool) -> None:
        """The stream was reset: the exchange stops where it is."""
        self.reset = True
        self.by_client = by_client
        self.scope.cancel()
        self._arrived.set()

    # --- ClientSide --------------------------------------------------------------

    def request_complete(self) -> bool:
        return self.conn.their_state is ev.DONE

    def reusable(self) -> bool:
        return False  # a stream carries one exchange (the connection goes on all the same)

    def request_spliced(self) -> None:  # never: `stream` is no socket
        raise AssertionError("an HTTP/2 stream is not spliced")

    response_spliced = request_spliced

    async def next_event(self) -> ev.Event:
        """The request body's next event; CONNECTION_CLOSED when the client reset the stream."""
        sides = self.conn
        while not sides.events:
            if self.reset:
                return ev.CONNECTION_CLOSED
            self._arrived = trio.Event()
            await self._arrived.wait()
        event, flow = sides.events[0]
        sides.next_event()
        if flow:
            self.server.conn.consume(self.stream_id, flow)
            await self.server.flush()
        return event

    async def send(self, event: ev.Event) -> None:
        await self.send_many(event)

    async def send_many(self, *events: ev.Event) -> None:
        """The response's events to the session, then to the socket.

        Raises:
            trio.BrokenResourceError: the stream or the connection is gone.
        """
        server = self.server
        session = server.conn
        sides = self.conn
        stream_id = self.stream_id
        count = len(events)
        try:
            for at, event in enumerate(events):
                kind = type(event)
                if kind is ev.Response or kind is ev.InformationalResponse:
                    assert isinstance(event, ev.Response)
                    final = kind is ev.Response
                    # A response without a body (HEAD, 204, 304, or an empty one) ends on its HEADERS.
                    last = final and at + 1 < count and events[at + 1] is ev.END_OF_MESSAGE
                    session.respond(stream_id, response_fields(event.status_code, event.headers), end_stream=last)
                    if final:
                        sides.our_state = ev.DONE if last else ev.SEND_BODY
                elif kind is ev.Data:
                    assert isinstance(event, ev.Data)
                    # The last DATA of a whole response carries END_STREAM itself.
                    last = at + 1 < count and events[at + 1] is ev.END_OF_MESSAGE
                    session.send_data(stream_id, event.data, end_stream=last)
                    if last:
                        sides.our_state = ev.DONE
                elif kind is ev.EndOfMessage:
                    if sides.our_state is not ev.DONE:
                        session.send_data(stream_id, b"", end_stream=True)
                        sides.our_state = ev.DONE
        except StreamClosed as error:
            raise trio.BrokenResourceError(f"the HTTP/2 stream closed: {error}") from None
        await server.flush()
        while session.pending(stream_id):  # framed as the windows open, before more is taken
            if self.reset:
                raise trio.BrokenResourceError("the client reset the stream")
            await server.window_opened()
            await server.flush()

    # --- the end -------------------------------------------------------------

    def finish(self) -> None:
        """After the exchange: whatever it left unfinished ends here (see the rules above)."""
        session = self.server.conn
        unread = sum(flow for _, flow in self.conn.events)
        if unread:  # the connection's window, given back (the stream's closes with it)
            session.consume(self.stream_id, unread)
        if self.reset:
            return
        if self.conn.our_state is not ev.DONE:
            session.reset(self.stream_id, INTERNAL_ERROR)
        elif not self.ended:
            session.reset(self.stream_id, NO_ERROR)
