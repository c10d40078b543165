# Long response bodies of known length are spliced in the kernel (os.splice)
# once their head is out: the bytes must arrive intact, the client's
# connection stays usable, a backend that dies mid-body still cuts the
# client off, and short bodies, HEAD and chunked bodies keep the h11 path.

from __future__ import annotations

import h11
import pytest
import trio

from proxy.gateway._splice import SPLICE_AVAILABLE, SPLICE_MIN

from ...helpers import Backend, BackendExchange, Client, Seen, route, start_backend, start_gateway

pytestmark = [
    pytest.mark.usefixtures("clients_closed"),
    pytest.mark.skipif(not SPLICE_AVAILABLE, reason="os.splice is Linux only"),
]

SIZE = 5 * SPLICE_MIN + 12345
BLOCK = bytes(range(256)) * 256  # 64 KiB with a pattern: a lost or moved byte shows


def body_of(size: int) -> bytes:
    return (BLOCK * (size // len(BLOCK) + 1))[:size]


async def big(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
    size = int(seen.target.rsplit(b"/", 1)[1])
    cut = seen.target.startswith(b"/cut")
    await exchange.send(h11.Response(status_code=200, headers=[(b"content-length", str(size).encode())]))
    if seen.method == b"HEAD":
        await exchange.send(h11.EndOfMessage())
        return
    data = body_of(size)
    sent = 0
    for start in range(0, size // 2 if cut else size, len(BLOCK)):
        await exchange.send(h11.Data(data=data[start : start + len(BLOCK)]))
        sent += len(BLOCK)
    if cut:
        await trio.aclose_forcefully(exchange.stream)
        return
    await exchange.send(h11.EndOfMessage())


async def test_a_long_body_arrives_intact_and_the_client_connection_is_reused(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery, "big", big)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await Client.connect(gateway)

    first = await client.request("GET", f"/big/{SIZE}")
    second = await client.request("GET", f"/big/{SIZE}")
    small = await client.request("GET", "/big/100")

    assert first.status == 200 and first.body == body_of(SIZE)
    assert second.body == body_of(SIZE) and small.body == body_of(100)
    assert backend.connections == 3  # a backend connection that carried a spliced body is not pooled


async def test_a_backend_that_dies_mid_body_cuts_the_client_off(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery, "big", big)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await Client.connect(gateway)

    await client.send(h11.Request(method="GET", target=f"/cut/{SIZE}", headers=[("host", "t")]), h11.EndOfMessage())
    response = await client.next_event()
    assert type(response) is h11.Response and response.status_code == 200
    received = 0
    with pytest.raises(h11.RemoteProtocolError):  # the connection closes before the announced length
        while type(event := await client.next_event()) is h11.Data:
            received += len(event.data)
    assert 0 < received < SIZE


async def test_head_requests_and_short_bodies_do_not_splice(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery, "big", big)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await Client.connect(gateway)

    head = await client.request("HEAD", f"/big/{SIZE}")
    short = await client.request("GET", f"/big/{SPLICE_MIN - 1}")

    assert head.status == 200 and head.body == b"" and head.header(b"content-length") == str(SIZE).encode()
    assert short.body == body_of(SPLICE_MIN - 1)
    assert backend.connections == 1  # both went over one pooled backend connection


async def test_a_long_request_body_arrives_intact_and_the_client_connection_is_reused(
    nursery: trio.Nursery,
) -> None:
    received: list[bytes] = []

    async def keep(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        received.append(seen.body)
        await exchange.respond(200, b"%d" % len(seen.body))

    backend = await start_backend(nursery, "sink", keep)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await Client.connect(gateway)

    first = await client.request("POST", "/up", body=body_of(SIZE))
    second = await client.request("POST", "/up", body=b"small")

    assert (first.status, first.body, second.body) == (200, str(SIZE).encode(), b"5")
    assert received == [body_of(SIZE), b"small"]
    assert backend.connections == 2  # the connection that carried a spliced body is not pooled


async def test_a_client_that_sends_less_than_its_length_is_cut_off(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery, "sink")
    gateway = await start_gateway(nursery, [route("/", backend)], timeouts={"body_idle": 0.5})
    host, port = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % SIZE)
    await stream.send_all(body_of(SPLICE_MIN))  # then nothing more

    with trio.fail_after(10):
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    await trio.aclose_forcefully(stream)
    assert not data.startswith(b"HTTP/1.1 200")  # never answered as if complete
    assert backend.seen == []  # the backend never got a whole request


@pytest.mark.parametrize("version", ["1.1 close", "1.0"])
async def test_both_bodies_spliced_still_honour_connection_close(nursery: trio.Nursery, version: str) -> None:
    # h11 decides keep-alive from what it saw; with both bodies around it,
    # the gateway must still close when the client asked (or HTTP/1.0 implies) it.
    async def echo_big(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.respond(200, seen.body)

    backend = await start_backend(nursery, "echo", echo_big)
    gateway = await start_gateway(nursery, [route("/", backend)])
    host, port = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    protocol, close = ("HTTP/1.1", b"Connection: close\r\n") if version == "1.1 close" else ("HTTP/1.0", b"")
    await stream.send_all(b"POST /e %s\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n" % (protocol.encode(), close, SIZE))
    await stream.send_all(body_of(SIZE))

    data = b""
    with trio.fail_after(10):  # the gateway closes after the response: reading to EOF ends
        while chunk := await stream.receive_some(1 << 20):
            data += chunk
    await trio.aclose_forcefully(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == body_of(SIZE)
