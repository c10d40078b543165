#!/usr/bin/env python3
"""The ceiling the gateway is measured against: a raw byte pipe in trio, no
HTTP at all. Each client connection gets its own backend connection and the
bytes are copied both ways with SocketStream (the same streams the gateway
uses). bench/compare.py runs it as one of its rows.

    .venv/bin/python bench/trio_pipe.py LISTEN_PORT BACKEND_PORT
"""

from __future__ import annotations

import sys

import trio


async def pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    await trio.aclose_forcefully(sink)


def serve(backend_port: int):  # type: ignore[no-untyped-def]
    async def handle(client: trio.SocketStream) -> None:
        try:
            backend = await trio.open_tcp_stream("127.0.0.1", backend_port)
        except OSError:
            await client.aclose()
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pipe, client, backend)
            nursery.start_soon(pipe, backend, client)

    return handle


async def main(port: int, backend_port: int) -> None:
    await trio.serve_tcp(serve(backend_port), port, host="127.0.0.1")


if __name__ == "__main__":
    try:
        trio.run(main, int(sys.argv[1]), int(sys.argv[2]))
    except KeyboardInterrupt:
        pass
