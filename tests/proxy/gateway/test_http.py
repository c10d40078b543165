# The hot path's direct socket calls (proxy/gateway/_http.py send_all, receive_some)
# behave as trio.SocketStream's own: whole sends, the same two errors.

from __future__ import annotations

import socket

import pytest
import trio

from proxy.gateway._http import receive_some, send_all


def stream_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = trio.socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return trio.SocketStream(a), trio.SocketStream(b)


async def test_a_send_larger_than_the_socket_buffer_goes_out_whole() -> None:
    left, right = stream_pair()
    data = bytes(range(256)) * 40_000  # 10 MB: many partial sends
    received = bytearray()

    async def read() -> None:
        while len(received) < len(data):
            received.extend(await receive_some(right, 65536))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await send_all(left, data)
    assert received == data
    await left.aclose()
    assert await receive_some(right, 10) == b""  # EOF
    await right.aclose()


async def test_a_closed_socket_is_closed_resource_error() -> None:
    left, right = stream_pair()
    left.socket.close()
    with pytest.raises(trio.ClosedResourceError):
        await send_all(left, b"x")
    with pytest.raises(trio.ClosedResourceError):
        await receive_some(left, 10)
    await right.aclose()


async def test_a_peer_gone_is_broken_resource_error() -> None:
    left, right = stream_pair()
    await right.aclose()
    with pytest.raises(trio.BrokenResourceError):
        for _ in range(100):  # the first sends may land in the buffer
            await send_all(left, b"x" * 65536)
    await left.aclose()


async def test_other_streams_go_the_usual_way() -> None:
    import trio.testing

    left, right = trio.testing.memory_stream_pair()
    await send_all(left, b"hello")
    assert await receive_some(right, 10) == b"hello"
