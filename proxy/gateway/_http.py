# The adapter between an HTTP/1.1 connection (sans-IO: the fast one or
# h11's, both speaking _events.py) and a trio stream, for the relay: the
# events of an exchange go through HttpStream. (The server reads request
# heads itself, for the head checks, and writes its refusals as bytes; the
# admin listener speaks h11 on its own.)
#
# Rules:
# - no timeouts here: callers wrap calls in trio.fail_after / move_on_after;
# - the peer going away surfaces as trio.BrokenResourceError or
#   trio.ClosedResourceError, or the CONNECTION_CLOSED event;
# - a peer that breaks the protocol surfaces as _events.RemoteProtocolError.

from __future__ import annotations

import errno
from typing import Any

import trio

from ..protocol._events import DONE, NEED_DATA, SEND_BODY
from ..protocol._fastconn import FastConnection
from ..protocol._h11conn import H11Connection
from ..protocol._rewrite import has_token

__all__ = ["MAX_RECV", "PARSERS", "HttpStream", "receive_some", "send_all"]

MAX_RECV = 64 * 1024  # bytes per receive_some
# --parser: the connection class each name stands for.
PARSERS: dict[str, Any] = {"fast": FastConnection, "h11": H11Connection}


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


class HttpStream:
    """A trio stream with an HTTP/1.1 connection (FastConnection or H11Connection) on it."""

    __slots__ = ("stream", "conn", "bytes_received", "pending", "response_bypassed", "request_bypassed", "head")

    def __init__(self, stream: trio.abc.Stream, conn: Any) -> None:
        self.stream = stream
        self.conn = conn  # None on the server side until a request head arrives
        self.bytes_received = 0
        # Server side: bytes of the next request head, read but not parsed
        # yet. Heads are checked (_head.py) before a parser sees them, and
        # each request gets a fresh connection object.
        self.pending = bytearray()
        # Server side: this response's body went out, or this request's
        # body came in, around the parser (spliced, exactly its Content-Length):
        # that half of the exchange is complete although the parser never saw it.
        self.response_bypassed = False
        self.request_bypassed = False
        # Server side: the checked head of the request in progress. The
        # parser tracks keep-alive itself, but not for a half it never saw;
        # then the head decides (only then: off the hot path).
        self.head: Any = None

    async def receive(self) -> bool:
        """Read once from the stream into the parser. Returns False at EOF."""
        data = await receive_some(self.stream, MAX_RECV)
        self.bytes_received += len(data)
        self.conn.receive_data(data)
        return bool(data)

    async def next_event(self) -> Any:
        """The next event, reading from the stream as needed (never NEED_DATA)."""
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                await self.receive()
                continue
            return event

    async def send(self, event: Any) -> None:
        data = self.conn.send(event)
        if data:
            await send_all(self.stream, data)

    async def send_many(self, *events: Any) -> None:
        send = self.conn.send
        data = b"".join([send(event) for event in events])
        if data:
            await send_all(self.stream, data)

    def reusable(self) -> bool:
        """Both sides finished the exchange cleanly and may start another."""
        conn = self.conn
        if self.response_bypassed or self.request_bypassed:
            if not _wants_keep_alive(self.head):
                return False
            ours = conn.our_state is DONE or (self.response_bypassed and conn.our_state is SEND_BODY)
            theirs = conn.their_state is DONE or (self.request_bypassed and conn.their_state is SEND_BODY)
            return ours and theirs
        return conn.our_state is DONE and conn.their_state is DONE

    async def aclose(self) -> None:
        """Close at once, whatever state the exchange is in."""
        await trio.aclose_forcefully(self.stream)


def _wants_keep_alive(head: Any) -> bool:
    """HTTP/1.1 without "Connection: close" (a RequestHead from _head.py)."""
    return head is not None and head.version == b"1.1" and not has_token(head.headers, b"connection", b"close")
