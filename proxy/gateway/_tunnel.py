# An upgraded connection (101 Switching Protocols, asked for): the bytes both
# ways, until one side is done or neither moved for the tunnel's idle time.

from __future__ import annotations

import trio

from ..protocol import _events as ev
from ..protocol._rewrite import response_headers
from ..routing._record import Exchange
from ._http import HttpStream

__all__ = ["tunnel"]


async def tunnel(
    conn: HttpStream, client: HttpStream, switch: ev.InformationalResponse, idle: float, exchange: Exchange
) -> None:
    """Relay an upgraded connection's bytes both ways until one side is done."""
    exchange.status = 101
    await client.send(ev.InformationalResponse(101, response_headers(switch.headers, upgrade=True), switch.reason))
    exchange.response_started = True
    exchange.keep_client = False
    early_up = client.conn.trailing_data[0]
    early_down = conn.conn.trailing_data[0]
    if early_up:
        await conn.stream.send_all(early_up)
    if early_down:
        await client.stream.send_all(early_down)
    exchange.bytes_in += len(early_up)
    exchange.bytes_out += len(early_down)

    async with trio.open_nursery() as nursery:
        scope = nursery.cancel_scope
        scope.deadline = trio.current_time() + idle

        async def pump(source: trio.abc.Stream, sink: trio.abc.Stream, up: bool) -> None:
            try:
                while True:
                    data = await source.receive_some(64 * 1024)
                    if not data:
                        break
                    scope.deadline = trio.current_time() + idle
                    if up:
                        exchange.bytes_in += len(data)
                    else:
                        exchange.bytes_out += len(data)
                    await sink.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            # One side is done: so is the tunnel (most upgraded protocols,
            # WebSocket included, end with a close from either side).
            scope.cancel()

        nursery.start_soon(pump, client.stream, conn.stream, True)
        nursery.start_soon(pump, conn.stream, client.stream, False)
