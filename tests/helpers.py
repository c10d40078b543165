# Shared test helpers: in-process backends and clients over real loopback
# sockets, and an in-process gateway started with nursery.start.

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
import trio

from proxy._config import Address, Config, Limits, Route, Timeouts
from proxy.gateway._server import Gateway

LOOPBACK = "127.0.0.1"


# --- backends ---------------------------------------------------------------


@dataclass
class Seen:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        values = [v for n, v in self.headers if n == name]
        return b", ".join(values) if values else None


Handler = Callable[["Backend", Seen, "BackendExchange"], Awaitable[None]]


@dataclass
class BackendExchange:
    stream: trio.SocketStream
    conn: h11.Connection

    async def send(self, *events: Any) -> None:
        for event in events:
            data = self.conn.send(event)
            if data:
                await self.stream.send_all(data)

    async def respond(self, status: int, body: bytes = b"", headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        headers = [(b"content-length", str(len(body)).encode()), *headers]
        await self.send(h11.Response(status_code=status, headers=headers), h11.Data(data=body), h11.EndOfMessage())


async def echo(backend: "Backend", seen: Seen, exchange: BackendExchange) -> None:
    """Answer with JSON describing the request, and which backend answered."""
    body = json.dumps({
        "backend": backend.name,
        "method": seen.method.decode(),
        "target": seen.target.decode(),
        "headers": [[n.decode(), v.decode()] for n, v in seen.headers],
        "body_length": len(seen.body),
    }).encode()
    await exchange.respond(200, body, [(b"content-type", b"application/json")])


async def reset(backend: "Backend", seen: Seen, exchange: BackendExchange) -> None:
    """Read the request, then reset the connection (a crash-looping server; one that exits on SIGTERM)."""
    sock = exchange.stream.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@dataclass
class Backend:
    """An HTTP/1.1 backend on loopback that runs `handler` for every request."""

    name: str
    handler: Handler = echo
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    read_body: bool = True
    listeners: list[trio.SocketListener] = field(default_factory=list)

    @property
    def address(self) -> Address:
        return Address(LOOPBACK, self.port)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.listeners = await trio.open_tcp_listeners(self.port, host=LOOPBACK)
        self.port = self.listeners[0].socket.getsockname()[1]
        task_status.started(self)
        try:
            await trio.serve_listeners(self._connection, self.listeners)
        finally:
            for listener in self.listeners:
                listener.socket.close()

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = await _next(conn, stream)
                if type(event) is not h11.Request:
                    return
                body = b""
                if self.read_body:
                    while True:
                        event2 = await _next(conn, stream)
                        if type(event2) is h11.Data:
                            body += event2.data
                        elif type(event2) is h11.EndOfMessage:
                            break
                        else:
                            return
                seen = Seen(event.method, event.target, list(event.headers), body)
                self.seen.append(seen)
                await self.handler(self, seen, BackendExchange(stream, conn))
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                else:
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def stop(self) -> None:
        for listener in self.listeners:
            await listener.aclose()


async def _next(conn: h11.Connection, stream: trio.abc.Stream) -> Any:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
            continue
        return event


async def start_backend(nursery: trio.Nursery, name: str = "b1", handler: Handler = echo, **kw: Any) -> Backend:
    backend = Backend(name, handler, **kw)
    await nursery.start(backend.serve)
    return backend


@contextmanager
def blackhole() -> Iterator[Address]:
    """A loopback address whose connects hang, as to a blackholed host.

    A listener with backlog 0, filled by a few pending connections, drops
    further SYNs; nothing leaves loopback.
    """
    import socket

    hole = socket.socket()
    hole.bind((LOOPBACK, 0))
    hole.listen(0)
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(hole.getsockname())
            except BlockingIOError:
                pass
            fillers.append(filler)
        yield Address(LOOPBACK, hole.getsockname()[1])
    finally:
        for filler in fillers:
            filler.close()
        hole.close()


def unused_port() -> int:
    """A loopback port nothing listens on (bound then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


# --- the gateway ----------------------------------------------------------------


# The gateway's parser in these tests: the default (fast) unless
# FASTROUTE_TEST_PARSER says otherwise (tests/proxy/gateway/test_parser_h11.py runs
# the gateway's tests again with h11).
PARSER = os.environ.get("FASTROUTE_TEST_PARSER", "fast")
# Likewise the I/O path: native (the default) unless FASTROUTE_TEST_IO=trio
# (tests/proxy/gateway/test_io_native.py runs the gateway's tests on the engine).
IO = os.environ.get("FASTROUTE_TEST_IO", "native")


def make_config(**changes: Any) -> Config:
    timeouts = changes.pop("timeouts", {})
    limits = changes.pop("limits", {})
    return Config(
        listen=changes.pop("listen", (Address(LOOPBACK, 0),)),
        access_log=changes.pop("access_log", "off"),
        parser=changes.pop("parser", PARSER),
        io=changes.pop("io", IO),
        timeouts=Timeouts(**timeouts),
        limits=Limits(**limits),
        **changes,
    )


async def start_gateway(nursery: trio.Nursery, routes: Sequence[Route] = (), **changes: Any) -> Gateway:
    gateway = Gateway(make_config(**changes))
    gateway.set_routes(routes)
    await nursery.start(gateway.serve)
    return gateway


async def serve_raw(nursery: trio.Nursery, handle: Callable[[trio.SocketStream], Awaitable[None]]) -> Address:
    """A backend that is just `handle` on each connection (raw bytes, no HTTP library); its address."""
    listeners = await trio.open_tcp_listeners(0, host=LOOPBACK)
    nursery.start_soon(trio.serve_listeners, handle, listeners)
    return Address(LOOPBACK, listeners[0].socket.getsockname()[1])


def route(prefix: str, *backends: Backend | Address, strip: bool = False) -> Route:
    addresses = tuple(b.address if isinstance(b, Backend) else b for b in backends)
    return Route(prefix, addresses, strip)


# --- clients ----------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    informational: list[int] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        values = [v for n, v in self.headers if n == name]
        return b", ".join(values) if values else None

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One client connection to the gateway, speaking HTTP/1.1 through h11."""

    opened: list["Client"] = []  # closed after each test by the autouse fixture

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)
        Client.opened.append(self)

    @classmethod
    async def connect(cls, gateway: Gateway) -> "Client":
        host, port = gateway.addresses[0]
        return cls(await trio.open_tcp_stream(host, port))

    async def send(self, *events: Any) -> None:
        for event in events:
            data = self.conn.send(event)
            if data:
                await self.stream.send_all(data)

    async def next_event(self) -> Any:
        return await _next(self.conn, self.stream)

    async def request(
        self, method: str, target: str | bytes, headers: Sequence[tuple[str | bytes, str | bytes]] = (),
        body: bytes = b"", host: str = "gateway.test",
    ) -> Reply:
        all_headers = [("host", host), *headers]
        if body and not any(str(n).lower() in ("content-length", "transfer-encoding") for n, _ in headers):
            all_headers.append(("content-length", str(len(body))))
        await self.send(h11.Request(method=method, target=target, headers=all_headers))
        if body:
            await self.send(h11.Data(data=body))
        await self.send(h11.EndOfMessage())
        return await self.read_reply()

    async def read_reply(self) -> Reply:
        informational = []
        while True:
            event = await self.next_event()
            if type(event) is h11.InformationalResponse:
                informational.append(event.status_code)
                continue
            break
        assert type(event) is h11.Response, event
        body = b""
        while True:
            part = await self.next_event()
            if type(part) is h11.Data:
                body += part.data
            elif type(part) is h11.EndOfMessage:
                break
            else:
                raise AssertionError(f"unexpected {part!r}")
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return Reply(event.status_code, list(event.headers), body, informational)

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    @classmethod
    async def close_all(cls) -> None:
        while cls.opened:
            await trio.aclose_forcefully(cls.opened.pop().stream)


async def fetch(gateway: Gateway, method: str, target: str | bytes, **kw: Any) -> Reply:
    client = await Client.connect(gateway)
    try:
        return await client.request(method, target, **kw)
    finally:
        await client.aclose()


async def raw_exchange(gateway: Gateway, data: bytes, *, read_limit: float = 5.0) -> bytes:
    """Send raw bytes; read until the gateway closes (or read_limit seconds pass)."""
    host, port = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    chunks = []
    try:
        await stream.send_all(data)
        with trio.move_on_after(read_limit):
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        await trio.aclose_forcefully(stream)
    return b"".join(chunks)


def stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reaped either way."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rerun_tests(modules: Sequence[str], env: dict[str, str], *, timeout: float,
                args: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """Run tests/proxy/<module>... again in a child pytest, with `env` added (another parser, another I/O path,
    another engine) and pytest `args` (--deselect, say)."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args,
         *[str(root / "tests" / "proxy" / name) for name in modules]],
        cwd=root, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout,
    )
