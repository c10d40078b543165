# The adapter between an HTTP/1.1 connection (sans-IO: a protocol Connection,
# the fast one or h11's) and a trio stream: the events of an exchange, both
# sides, go through HttpStream. Around it, on purpose: a client's request
# head is read as bytes (_connection.py checks it before any parser sees it,
# and writes a refusal as bytes), spliced bodies go socket to socket
# (_splice.py), and a tunnel moves raw bytes (_tunnel.py).
#
# Rules:
# - no timeouts here: callers wrap calls in trio.fail_after / move_on_after;
# - the peer going away surfaces as trio.BrokenResourceError or
#   trio.ClosedResourceError, or the CONNECTION_CLOSED event;
# - a peer that breaks the protocol surfaces as _events.RemoteProtocolError.

from __future__ import annotations

import errno
import select
import ssl
from typing import Protocol

import trio

from ..protocol._events import DONE, SEND_BODY, SEND_RESPONSE, Connection, ConnectionClass, Event, Sides, State
from ..protocol._fastconn import SERVER, FastConnection
from ..protocol._h11conn import H11Connection
from ..protocol._head import RequestHead
from ..protocol._rewrite import has_token
from ._tlsstream import TlsStream

__all__ = ["MAX_RECV", "PARSERS", "ClientSide", "HttpStream", "receive_some", "send_all"]

MAX_RECV = 64 * 1024  # bytes per receive_some
TLS_CLOSE_TIME = 1.0  # seconds a TLS close may wait to send its close_notify
LINGER_TIME = 2.0  # seconds a client's connection is read (and dropped) at most after our end of it
LINGER_MAX = 1024 * 1024  # bytes so dropped at most
# --parser: the connection class each name stands for.
PARSERS: dict[str, ConnectionClass] = {"fast": FastConnection, "h11": H11Connection}


_CLOSED_ERRNOS = {errno.EBADF, errno.ENOTSOCK}


def _stream_error(error: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    if error.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("the socket was closed")
    return trio.BrokenResourceError(f"socket error: {error}")


# SocketStream's send_all and receive_some, straight on its socket: the same
# system calls and the same errors (OSError becomes BrokenResourceError, or
# ClosedResourceError on a closed socket), without the generator-based
# context manager and the conflict detector they wrap each call in, which
# showed in profiles of the hot path. Any other stream goes the usual way.


async def send_all(stream: trio.abc.Stream, data: bytes) -> None:
    """stream.send_all(data), faster on a trio.SocketStream."""
    if type(stream) is not trio.SocketStream:
        await stream.send_all(data)
        return
    socket = stream.socket
    try:
        sent = await socket.send(data)
        if sent < len(data):
            view = memoryview(data)
            while sent < len(view):
                sent += await socket.send(view[sent:])
    except OSError as error:
        raise _stream_error(error) from error


async def receive_some(stream: trio.abc.Stream, max_bytes: int) -> bytes:
    """stream.receive_some(max_bytes), faster on a trio.SocketStream."""
    if type(stream) is not trio.SocketStream:
        return bytes(await stream.receive_some(max_bytes))
    try:
        return await stream.socket.recv(max_bytes)
    except OSError as error:
        raise _stream_error(error) from error


class ClientSide(Protocol):
    """The client's side of one exchange, as the relay uses it: an HttpStream (HTTP/1.1 over its
    connection), or one HTTP/2 stream (_h2stream.py). The relay splices only when `stream` is a
    socket, and tunnels only over an HttpStream."""

    @property
    def stream(self) -> trio.abc.Stream | None: ...

    @property
    def conn(self) -> Sides: ...

    @property
    def secure(self) -> bool: ...

    @property
    def response_extra(self) -> list[tuple[bytes, bytes]]: ...

    def request_complete(self) -> bool: ...

    def reusable(self) -> bool: ...

    def request_spliced(self) -> None: ...

    def response_spliced(self) -> None: ...

    async def next_event(self) -> Event: ...

    async def send(self, event: Event) -> None: ...

    async def send_many(self, *events: Event) -> None: ...


class HttpStream:
    """A trio stream with an HTTP/1.1 connection (a `Connection`) on it.

    Backend side: one connection for the stream's life. Client side: a fresh
    connection per request (start_request), since heads are checked
    (_head.py) before a parser sees them; the stream keeps what it read past
    the last request (the start of the next head) and what went around the
    parser (spliced bodies).
    """

    __slots__ = ("stream", "conn", "bytes_received", "pending", "secure", "response_extra", "unanswered",
                 "_response_bypassed", "_request_bypassed", "_head")

    def __init__(self, stream: trio.abc.Stream, conn: Connection | None = None) -> None:
        self.stream = stream
        self.secure = isinstance(stream, TlsStream)  # client side: HTTPS (X-Forwarded-Proto says so)
        # Client side: fields added to every proxied response (Strict-Transport-Security with --hsts).
        self.response_extra: list[tuple[bytes, bytes]] = []
        # Client side: an idle server connection until the first request head arrives.
        self.conn: Connection = conn if conn is not None else FastConnection(SERVER, max_head=0)
        self.bytes_received = 0  # backend side: bytes of the exchange in flight (0: a pooled one may be stale)
        self.pending = bytearray()  # client side: bytes of the next request head, read but not checked yet
        # Client side: the client sent what was not answered (a refused head, not read to its
        # end; requests pipelined past the last response, read ahead): it may be sending still,
        # so the close is staged whatever the socket holds at that moment.
        self.unanswered = False
        # This response's body went out, or this request's body came in,
        # around the parser (spliced, exactly its Content-Length): that half
        # of the exchange is complete although the parser never saw it.
        self._response_bypassed = False
        self._request_bypassed = False
        # The checked head of the request in progress. The parser tracks
        # keep-alive itself, but not for a half it never saw; then the head
        # decides (only then: off the hot path).
        self._head: RequestHead | None = None

    def start_request(self, conn: Connection, head: RequestHead) -> None:
        """Client side: the connection object that carries the request `head` (checked) and its response."""
        self.conn = conn
        self._head = head
        self._response_bypassed = self._request_bypassed = False

    def finish_request(self) -> None:
        """Client side: what the client sent after this request starts the next head."""
        self.pending += self.conn.trailing_data[0]

    def request_spliced(self) -> None:
        """The request body came in around the parser, exactly its Content-Length."""
        self._request_bypassed = True

    def response_spliced(self) -> None:
        """The response body (or the whole response: the native engine's lane) went out around the
        parser, exactly its Content-Length."""
        self._response_bypassed = True

    def request_complete(self) -> bool:
        """Client side: the whole request body was read (by the parser, or spliced)."""
        return self._request_bypassed or self.conn.their_state is DONE

    async def receive(self) -> bool:
        """Read once from the stream into the parser. Returns False at EOF."""
        data = await receive_some(self.stream, MAX_RECV)
        self.bytes_received += len(data)
        self.conn.receive_data(data)
        return bool(data)

    async def next_event(self) -> Event:
        """The next event, reading from the stream as needed (never NEED_DATA)."""
        while True:
            event = self.conn.next_event()
            if isinstance(event, State):  # NEED_DATA: the only state next_event() returns
                await self.receive()
                continue
            return event

    async def send(self, event: Event) -> None:
        data = self.conn.send(event)
        if data:
            await send_all(self.stream, data)

    async def send_many(self, *events: Event) -> None:
        send = self.conn.send
        data = b"".join([send(event) for event in events])
        if data:
            await send_all(self.stream, data)

    def reusable(self) -> bool:
        """Both sides finished the exchange cleanly and may start another."""
        conn = self.conn
        if self._response_bypassed or self._request_bypassed:
            if not _wants_keep_alive(self._head):
                return False
            ours = conn.our_state is DONE or (self._response_bypassed and conn.our_state in (SEND_RESPONSE, SEND_BODY))
            theirs = conn.their_state is DONE or (self._request_bypassed and conn.their_state is SEND_BODY)
            return ours and theirs
        return conn.our_state is DONE and conn.their_state is DONE

    def _client_may_send(self) -> bool:
        """Client side: it sent what was not answered, or its request is not read to its end (a body)."""
        return (self.unanswered or bool(self.pending) or bool(self.conn.trailing_data[0])
                or (self.conn.their_state is SEND_BODY and not self._request_bypassed))

    async def aclose(self, *, linger: bool = False) -> None:
        """Close, whatever state the exchange is in (over TLS, with a close_notify if it goes out at
        once: a client reading to the end then knows the end is real).

        With `linger` (a client's connection), a staged close (RFC 9112
        section 9.6) when the client sent what was not read: our end first,
        then what it still sends read and dropped until it closes,
        LINGER_TIME at most. Closing a socket
        with unread bytes resets the connection, and a reset destroys what
        the client has not read yet: the answer to a request it pipelined,
        or the 400 that ends the connection. (nginx's lingering_close.)
        """
        stream = self.stream
        transport = stream.transport_stream if isinstance(stream, TlsStream) else stream
        try:
            if isinstance(stream, TlsStream):
                with trio.move_on_after(TLS_CLOSE_TIME):
                    await stream.close_notify()
            if linger and isinstance(transport, trio.SocketStream):
                await _linger(transport, always=self._client_may_send())
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError, ssl.SSLError, OSError):
            pass
        finally:
            await trio.aclose_forcefully(transport)


async def _linger(stream: trio.SocketStream, *, always: bool) -> None:
    """Our end of the stream (a FIN), then the peer's bytes dropped until its end, within the bounds.

    Only when the peer may send on (`always`: its request was not read to
    its end), or sent bytes not read yet (or its end): a close then would
    reset. A connection whose last request and all before it were read
    closes at once, as nginx's lingering_close does by default; a peer that
    sends on after that (pipelining past "Connection: close") is reset.
    """
    fd = stream.socket.fileno()
    if fd < 0 or not (always or _readable(fd)):  # (closed already: a TLS-ALPN-01 validation's handshake)
        return
    await stream.send_eof()
    dropped = 0
    with trio.move_on_after(LINGER_TIME):
        while dropped < LINGER_MAX:
            data = await stream.receive_some(MAX_RECV)
            if not data:
                return
            dropped += len(data)


def _readable(fd: int) -> bool:
    """Bytes (or the end) wait unread on the socket `fd`, now."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _wants_keep_alive(head: RequestHead | None) -> bool:
    """HTTP/1.1 without "Connection: close"."""
    return head is not None and head.version == b"1.1" and not has_token(head.headers, b"connection", b"close")
