# The contract between the relay and an HTTP/1.1 connection (sans-IO): the
# events one side of an exchange produces and consumes, the states of each
# side, and the two protocol errors. Two connections speak it:
# _fastconn.FastConnection (the compiled parser, the default) and
# _h11conn.H11Connection (h11, `--parser h11`), so the relay never names a
# parser.
#
# The vocabulary is h11's, cut down to what a proxy needs: header names are
# lowercase bytes, values bytes; a message's body is Data events then one
# END_OF_MESSAGE; the peer's EOF outside a message is CONNECTION_CLOSED.
# Events are plain slotted objects: building one costs an allocation, no
# validation (the parser validated the bytes they came from).

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ._errors import LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from ._head import RequestHead

__all__ = [
    "CLOSED",
    "CONNECTION_CLOSED",
    "Connection",
    "ConnectionClass",
    "ConnectionClosed",
    "DONE",
    "END_OF_MESSAGE",
    "ERROR",
    "IDLE",
    "MIGHT_SWITCH_PROTOCOL",
    "MUST_CLOSE",
    "NEED_DATA",
    "SEND_BODY",
    "SEND_RESPONSE",
    "SWITCHED_PROTOCOL",
    "Sides",
    "State",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "InformationalResponse",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Request",
    "Response",
]

Headers = list[tuple[bytes, bytes]]


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


State = _Sentinel

# What next_event() returns when it needs more bytes.
NEED_DATA = _Sentinel("NEED_DATA")

# The states of one side of a connection (h11's, same meaning).
IDLE = _Sentinel("IDLE")
SEND_RESPONSE = _Sentinel("SEND_RESPONSE")  # server: the request head is in, no response head sent yet
SEND_BODY = _Sentinel("SEND_BODY")
DONE = _Sentinel("DONE")
MUST_CLOSE = _Sentinel("MUST_CLOSE")  # done, and the connection cannot carry another exchange
CLOSED = _Sentinel("CLOSED")
ERROR = _Sentinel("ERROR")
MIGHT_SWITCH_PROTOCOL = _Sentinel("MIGHT_SWITCH_PROTOCOL")
SWITCHED_PROTOCOL = _Sentinel("SWITCHED_PROTOCOL")


class Request:
    __slots__ = ("method", "target", "headers", "http_version")

    def __init__(self, method: bytes, target: bytes, headers: Headers, http_version: bytes = b"1.1") -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.http_version = http_version

    def __repr__(self) -> str:
        return f"Request({self.method!r}, {self.target!r}, {self.headers!r}, {self.http_version!r})"


class Response:
    __slots__ = ("status_code", "headers", "reason", "http_version")

    def __init__(self, status_code: int, headers: Headers, reason: bytes = b"", http_version: bytes = b"1.1") -> None:
        self.status_code = status_code
        self.headers = headers
        self.reason = reason
        self.http_version = http_version

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status_code}, {self.headers!r}, {self.reason!r})"


class InformationalResponse(Response):
    """A 1xx response: more follow, unless it is 101 (then the bytes are another protocol's)."""

    __slots__ = ()


class Data:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Data({self.data!r})"


class EndOfMessage:
    __slots__ = ()

    def __repr__(self) -> str:
        return "END_OF_MESSAGE"


class ConnectionClosed:
    __slots__ = ()

    def __repr__(self) -> str:
        return "CONNECTION_CLOSED"


END_OF_MESSAGE = EndOfMessage()
CONNECTION_CLOSED = ConnectionClosed()


Event = Request | Response | Data | EndOfMessage | ConnectionClosed  # InformationalResponse is a Response


class Sides(Protocol):
    """The two sides' states of an exchange, what was received past it, and its received events:
    what the relay reads of a client's side (an HTTP/1.1 Connection, or one HTTP/2 stream's)."""

    @property
    def our_state(self) -> State: ...

    @property
    def their_state(self) -> State: ...

    @property
    def trailing_data(self) -> tuple[bytes, bool]: ...

    def next_event(self) -> Event | State: ...


class Connection(Sides, Protocol):
    """One side of an HTTP/1.1 connection, sans-IO: what both parsers implement.

    The relay feeds it bytes (receive_data; b"" is the peer's EOF), takes
    events (next_event, NEED_DATA when it needs more) and turns events into
    bytes to send (send). our_state and their_state are the two sides'
    states; trailing_data is what was received past the current message
    (bytes, whether EOF came).

    Raises (from next_event): RemoteProtocolError; (from send, start_next_cycle):
    LocalProtocolError.
    """

    def receive_data(self, data: bytes) -> None: ...

    def send(self, event: Event) -> bytes: ...

    def start_next_cycle(self) -> None: ...


class ConnectionClass(Protocol):
    """A parser (--parser): how the gateway makes its connections.

    for_request: the client's side for one checked request head (a
    protocol._head.RequestHead) and the bytes after it; client: a backend's side.
    """

    def for_request(self, head: RequestHead, rest: bytes, *, max_head: int) -> tuple[Connection, Request]: ...

    def client(self, *, max_head: int) -> Connection: ...
