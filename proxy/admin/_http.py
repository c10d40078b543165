# One small HTTP/1.1 server for both admin listeners: a gateway's own
# (_server.py) and the admin front of --workers N (_front.py). Each answers
# through respond(); this owns the sockets and the h11 loop.
#
# Rules: one request per connection (Connection: close), a deadline of
# ADMIN_DEADLINE per connection, heads up to MAX_ADMIN_HEAD bytes; a
# malformed request or a peer going away just closes; anything else is a
# bug, logged, and ends that connection only.

from __future__ import annotations

import json
import logging
import os
import socket

import h11
import trio

from .._config import Address
from .._errors import ConfigError
from .._json import Json

__all__ = ["ADMIN_DEADLINE", "MAX_ADMIN_HEAD", "AdminListener", "json_body"]

log = logging.getLogger("fastroute.admin")

ADMIN_DEADLINE = 5.0  # seconds for one admin connection, request to response
MAX_ADMIN_HEAD = 8 * 1024  # bytes


class AdminListener:
    """An admin listener on `address`, or (a worker of --workers N) on the Unix socket `unix_path`."""

    def __init__(self, address: Address | None, *, unix_path: str | None = None) -> None:
        self.address = address
        self.unix_path = unix_path
        self.addresses: list[tuple[str, int]] = []
        self._listeners: list[trio.SocketListener] = []

    async def listen(self) -> None:
        """Raises ConfigError: the address cannot be listened on."""
        if self.unix_path is not None:
            try:  # a worker started again: its predecessor's socket file is still there
                os.unlink(self.unix_path)
            except FileNotFoundError:
                pass
            sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            await sock.bind(self.unix_path)
            sock.listen(64)
            self._listeners = [trio.SocketListener(sock)]
            return
        assert self.address is not None
        try:
            self._listeners = await trio.open_tcp_listeners(self.address.port, host=self.address.host)
        except OSError as error:
            raise ConfigError(f"cannot listen on --admin {self.address}: {error.strerror or error}") from None
        self.addresses = [listener.socket.getsockname()[:2] for listener in self._listeners]

    async def serve(self, *, task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (listening first unless listen() did).

        task_status.started() gets the bound addresses.
        """
        if not self._listeners:
            await self.listen()
        task_status.started(self.addresses)
        await trio.serve_listeners(self._connection, self._listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_ADMIN_HEAD)
        try:
            with trio.move_on_after(ADMIN_DEADLINE):
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        conn.receive_data(data)
                        continue
                    break
                if type(event) is not h11.Request:
                    return
                status, content_type, body = await self.respond(event.method, event.target)
                headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                           (b"cache-control", b"no-store"), (b"connection", b"close")]
                await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
                if event.method != b"HEAD":
                    await stream.send_all(conn.send(h11.Data(data=body)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
        except h11.RemoteProtocolError:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("bug: unexpected error on an admin connection")
        finally:
            await trio.aclose_forcefully(stream)

    async def respond(self, method: bytes, target: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for one admin request."""
        raise NotImplementedError


def json_body(document: Json) -> bytes:
    return json.dumps(document, indent=1).encode() + b"\n"
