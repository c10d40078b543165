# The native engine of `serve --io native`: the loop (_loop.py), the
# backend pools (_upstream.py), and the client connections it serves
# (_exchange.py). The trio path accepts each connection and hands it here;
# the engine serves its requests until the connection ends or a request
# needs the trio path, and then hands it back (HandBack) exactly where it
# is. Control stays in trio: the table swap (a request keeps the table it
# was routed on), Docker, drain, signals, the admin.

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from ._exchange import NativeClient
from ._h2 import NativeH2
from ._handover import Front, HandBack, TaskStreams
from ._loop import Loop
from ._upstream import Pools

if TYPE_CHECKING:
    from .._config import Config
    from ._host import Host

__all__ = ["Engine"]


class Engine:
    """Serves client connections' steady-state exchanges from one epoll set."""

    def __init__(self, gateway: Host) -> None:
        self.gateway = gateway
        self.config: Config = gateway.config
        self.loop = Loop()
        self.pools = Pools(self.loop)
        self._clients: set[NativeClient | NativeH2] = set()
        self.served = 0  # requests the engine answered (the backend's response or the gateway's own)
        self.handed_back = 0  # times a connection went on in the trio path
        self.laned = 0  # responses that took the lane (protocol/_lane.py)
        self.cycled = 0  # exchanges the compiled cycle served whole (_cycle.py), of those
        self.handshakes = 0  # TLS handshakes the engine made (the trio path makes the rest)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The loop, until cancelled; then every pooled connection is closed."""
        try:
            await self.loop.run(task_status=task_status)
        finally:
            self.pools.close_all()

    async def serve(self, front: Front, *, first: bool, handshake: bool = False) -> HandBack | None:
        """Serve `front`'s requests (after the TLS handshake, with `handshake`); returns when it closed
        (None) or goes back to the trio path."""
        client = NativeClient(self, front, bytes(front.client.pending))
        front.client.pending.clear()
        self._clients.add(client)
        try:
            self.loop.tick()
            client.start(first, handshake=handshake)
            await client.done.wait()
        finally:
            self._clients.discard(client)
            client.fail()  # cancelled (shutdown): out of the loop before the socket closes
        return client.result

    async def serve_h2(self, front: Front, tasks: TaskStreams, *, secure: bool) -> None:
        """Serve `front`'s HTTP/2 connection (from what its client stream read and did not serve) to its
        end; the streams the engine does not serve itself run as `tasks`."""
        pending = bytes(front.client.pending)
        front.client.pending.clear()
        async with trio.open_nursery() as nursery:
            client = NativeH2(self, front, tasks, nursery, secure=secure)
            self._clients.add(client)
            try:
                client.start(pending)
                await client.done.wait()
            finally:
                self._clients.discard(client)
                client.fail()  # cancelled (shutdown): out of the loop before the socket closes
                nursery.cancel_scope.cancel()  # the stream tasks stop with the connection

    def drain(self) -> None:
        """Close the idle connections now; the others close after their exchange."""
        for client in list(self._clients):
            client.drain()
