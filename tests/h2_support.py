# An HTTP/2 client for the tests, over python-hyper's h2 on a trio stream:
# requests as a well-behaved client sends them, and the frames a broken or
# hostile one sends (h2's own checks off, raw frames written as they are),
# with every event the gateway sends kept for the test to read.

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import trio


__all__ = ["H2Client", "H2Reply"]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@dataclass
class H2Reply:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    informational: list[int] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None  # the RST_STREAM's error code

    def header(self, name: bytes) -> bytes | None:
        values = [v for n, v in self.headers if n == name]
        return b", ".join(values) if values else None


class _ReadsOnAfterGoaway(h2.connection.H2ConnectionStateMachine):
    """h2's client state, kept open after the server's GOAWAY: the streams it names finish
    (RFC 9113 section 6.8), as nghttp2 and browsers let them; h2 alone would refuse their frames."""

    def process_input(self, input_: h2.connection.ConnectionInputs) -> list[h2.events.Event]:
        state = self.state
        events = super().process_input(input_)
        if input_ is h2.connection.ConnectionInputs.RECV_GOAWAY and state is not h2.connection.ConnectionState.CLOSED:
            self.state = state
        return events


class H2Client:
    """One HTTP/2 connection to the gateway (prior knowledge, or over a TLS stream that chose h2)."""

    opened: list[H2Client] = []  # closed after each test by the autouse fixture

    def __init__(self, stream: trio.abc.Stream, *, settings: dict[h2.settings.SettingCodes, int] | None = None,
                 window: int | None = None) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False, validate_inbound_headers=False))
        self.conn.state_machine = _ReadsOnAfterGoaway()
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.replies: dict[int, H2Reply] = {}
        self.events: list[h2.events.Event] = []
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False  # the gateway closed the connection
        self.auto_ack = True  # acknowledge DATA as it comes (False: the windows stay as they are)
        self.conn.initiate_connection()
        if window:
            self.conn.increment_flow_control_window(window)
        H2Client.opened.append(self)

    @classmethod
    async def connect(cls, address: tuple[str, int], **kw: Any) -> H2Client:
        host, port = address
        client = cls(await trio.open_tcp_stream(host, port), **kw)
        await client.flush()
        return client

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    def start(self, method: str, path: str, headers: Sequence[tuple[str | bytes, str | bytes]] = (), *,
              authority: str = "gateway.test", end: bool = True) -> int:
        """HEADERS of a new request (not flushed); its stream id."""
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":scheme", b"http"), (b":authority", authority.encode()),
                  (b":path", path.encode())]
        fields += [(_b(n), _b(v)) for n, v in headers]
        self.conn.send_headers(stream_id, fields, end_stream=end)
        self.replies[stream_id] = H2Reply()
        return stream_id

    async def request(self, method: str, path: str, headers: Sequence[tuple[str | bytes, str | bytes]] = (),
                      body: bytes = b"", **kw: Any) -> H2Reply:
        stream_id = self.start(method, path, headers, end=not body, **kw)
        if body:
            await self.send_body(stream_id, body)
        await self.flush()
        return await self.reply(stream_id)

    async def send_body(self, stream_id: int, body: bytes, *, end: bool = True) -> None:
        """DATA within the windows the gateway grants, waiting for them as needed."""
        view = memoryview(body)
        while view:
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                await self.flush()
                await self.receive_once()
                continue
            self.conn.send_data(stream_id, bytes(view[:window]))
            view = view[window:]
        if end:
            self.conn.end_stream(stream_id)
        await self.flush()

    async def reply(self, stream_id: int) -> H2Reply:
        """Read until the stream ends or is reset (or the connection ends)."""
        reply = self.replies[stream_id]
        while not (reply.ended or reply.reset is not None or self.closed):
            await self.receive_once()
        return reply

    async def until(self, done: Any) -> None:
        """Read until done() is true or the connection ends."""
        while not done() and not self.closed:
            await self.receive_once()

    async def receive_once(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self.events.append(event)
            self._take(event)
        await self.flush()

    def _take(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", 0)
        reply = self.replies.get(stream_id) if stream_id else None
        if isinstance(event, h2.events.ResponseReceived) and reply is not None:
            fields = list(event.headers or [])
            reply.status = int(dict(fields)[b":status"])
            reply.headers = [(n, v) for n, v in fields if not n.startswith(b":")]
        elif isinstance(event, h2.events.InformationalResponseReceived) and reply is not None:
            reply.informational.append(int(dict(event.headers or [])[b":status"]))
        elif isinstance(event, h2.events.DataReceived) and reply is not None:
            reply.body += event.data or b""
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        elif isinstance(event, h2.events.StreamEnded) and reply is not None:
            reply.ended = True
        elif isinstance(event, h2.events.StreamReset) and reply is not None:
            reply.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    @classmethod
    async def close_all(cls) -> None:
        while cls.opened:
            await trio.aclose_forcefully(cls.opened.pop().stream)


def _b(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
