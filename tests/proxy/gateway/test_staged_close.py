# The gateway's end of a client connection is a staged close (RFC 9112
# section 9.6, gateway/_http.HttpStream.aclose): a client that sent more
# than the gateway read still gets every answer sent before the close,
# where a close with unread bytes would reset the connection and destroy
# them in the client's receive buffer.

from __future__ import annotations

import logging

import pytest
import trio

from proxy.gateway._http import LINGER_TIME, HttpStream
from proxy.gateway._server import Gateway

from ...helpers import fetch, route, start_backend, start_gateway

JUNK = b"x" * 200_000  # what the client goes on sending


async def send_on_then_read(gateway: Gateway, first: bytes, then: list[bytes], pause: float) -> bytes:
    """`first`, then each of `then` after `pause` (a reset would fail one of those sends), then all
    the gateway sends until its end."""
    host, port = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    with trio.fail_after(10):
        await stream.send_all(first)
        for piece in then:
            await trio.sleep(pause)
            await stream.send_all(piece)
        received = b""
        while chunk := await stream.receive_some(65536):
            received += chunk
    await stream.aclose()
    return received


@pytest.mark.parametrize("io", ["trio", "native"])
async def test_a_client_still_sending_when_the_gateway_is_done_is_not_reset(io: str, nursery: trio.Nursery) -> None:
    # As a client uploading when its answer (a 413, a 400) comes: it finishes
    # sending, then reads the answers and a clean end, where a reset would
    # fail its send and show it an error instead of the answer.
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], io=io)
    # A request, a line that is no request (a 400, then the gateway's end), and more, sent on.
    received = await send_on_then_read(gateway, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nBAD\r\n\r\n" + JUNK,
                                       [JUNK[:10_000]] * 20, 0.01)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert b"HTTP/1.1 400 " in received


@pytest.mark.parametrize("io", ["trio", "native"])
async def test_a_client_whose_refused_head_is_still_coming_is_not_reset(io: str, nursery: trio.Nursery) -> None:
    # The rest of its head comes after the refusal went out and the gateway
    # closed: nothing was unread at that moment, and yet the client is sending.
    gateway = await start_gateway(nursery, [], io=io)
    # Refused at its first line; the rest comes after the answer and the gateway's end.
    received = await send_on_then_read(gateway, b"BAD\r\n", [b"Host: x\r\n", b"Accept: */*\r\n", b"\r\n"], 0.1)
    assert received.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("io", ["trio", "native"])
async def test_a_client_pipelining_past_connection_close_is_not_reset(io: str, nursery: trio.Nursery) -> None:
    # The request after "Connection: close" came with it and was read (read
    # ahead, or into the next head's bytes): nothing is unread at the close,
    # and yet the client has more to send.
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], io=io)
    received = await send_on_then_read(
        gateway, b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n",
        [b"Host: x\r\n", b"Accept: */*\r\n", b"\r\n"], 0.1)
    assert received.startswith(b"HTTP/1.1 200 ") and received.count(b"HTTP/1.1 ") == 1


async def test_a_client_that_never_stops_sending_is_let_go_after_the_linger_time(nursery: trio.Nursery) -> None:
    gateway = await start_gateway(nursery, [])
    host, port = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(b"BAD\r\n\r\n" + JUNK)
    start = trio.current_time()
    with trio.fail_after(LINGER_TIME + 5):
        received = b""
        while chunk := await stream.receive_some(65536):  # the gateway's end comes with the answer
            received += chunk
        assert received.startswith(b"HTTP/1.1 400 ")
        # Still open on the client's side, sending: the gateway reads and drops, then closes.
        try:
            while True:
                await stream.send_all(b"y" * 1000)
                await trio.sleep(0.05)
        except trio.BrokenResourceError:
            pass
    assert trio.current_time() - start >= LINGER_TIME * 0.9
    await stream.aclose()


async def test_a_connection_read_to_its_end_closes_at_once(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    host, port = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    with trio.fail_after(5):
        while await stream.receive_some(65536):
            pass
    # The gateway did not wait for this client's end: it is gone, and a byte sent now is refused.
    with pytest.raises(trio.BrokenResourceError), trio.fail_after(5):
        for _ in range(100):
            await stream.send_all(b"y")
            await trio.sleep(0.01)
    await stream.aclose()


async def test_a_bug_in_closing_one_connection_ends_that_connection_only(
        nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    real = HttpStream.aclose
    broken = []

    async def failing(self: HttpStream, *, linger: bool = False) -> None:
        if linger and not broken:
            broken.append(self)
            raise ValueError("a bug in the close")
        await real(self, linger=linger)

    monkeypatch.setattr(HttpStream, "aclose", failing)
    with caplog.at_level(logging.ERROR, logger="fastroute"):
        assert (await fetch(gateway, "GET", "/one", headers=[("connection", "close")])).status == 200
        assert (await fetch(gateway, "GET", "/two")).status == 200  # the gateway serves on
    assert broken
    assert any(r.getMessage().startswith("bug: unexpected error closing") for r in caplog.records)
