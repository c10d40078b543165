# HTTPS served by the native engine (engine/_exchange.py over the trio
# path's TLS session): the engine, not the trio path, answers; what it sends
# is the trio path's answer (X-Forwarded-Proto https, HSTS when asked);
# pipelined requests, long responses (no splice over TLS) and a hand-back to
# the trio path in the middle of a connection keep the byte stream whole.

from __future__ import annotations

from pathlib import Path

import h11
import pytest
import trio

from proxy._config import Address, Tls
from proxy.engine._cycle import CYCLE_COMPILED

from ...helpers import LOOPBACK, Backend, BackendExchange, Seen, fetch, route, start_backend, start_gateway
from .tls_support import Pki, connect_tls

API = "api.example.test"
LONG = 3 * 1024 * 1024 + 7  # past the splice threshold (engine/_pipe.SPLICE_MIN)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def tls_config(pki: Pki, **changes) -> Tls:  # type: ignore[no-untyped-def]
    return Tls(listen=(Address(LOOPBACK, 0),), pairs=(pki.issue(API).pair,), **changes)


def pattern(size: int) -> bytes:
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


async def sized(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
    """Answer /n/SIZE with SIZE bytes of a pattern, in 64 KiB writes."""
    size = int(seen.target.rsplit(b"/", 1)[1])
    await exchange.send(h11.Response(status_code=200, headers=[(b"content-length", str(size).encode())]))
    data = pattern(size)
    for start in range(0, size, 65536):
        await exchange.send(h11.Data(data=data[start : start + 65536]))
    await exchange.send(h11.EndOfMessage())


async def read_responses(stream: trio.abc.Stream, count: int) -> list[bytes]:
    """The bodies of `count` responses to pipelined GETs, read from one stream in order."""
    bodies: list[bytes] = []
    data = b""
    while len(bodies) < count:
        conn = h11.Connection(h11.CLIENT)  # one per response: h11 does not pipeline
        conn.send(h11.Request(method="GET", target="/", headers=[("host", API)]))
        conn.send(h11.EndOfMessage())
        if data:  # (b"" would say the stream ended)
            conn.receive_data(data)
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                break
        bodies.append(body)
        data = conn.trailing_data[0]
    return bodies


async def test_https_requests_are_served_by_the_engine_as_the_trio_path_would(
        pki: Pki, nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native", tls=tls_config(pki, hsts=600))
    assert gateway.engine is not None
    client, _ = await connect_tls(gateway, pki.client_context(), API)
    for _ in range(3):
        reply = await client.request("GET", "/x", host=API)
        assert reply.status == 200
        assert reply.header(b"strict-transport-security") == b"max-age=600"
    assert (gateway.engine.served, gateway.engine.handed_back) == (3, 0)
    if CYCLE_COMPILED:  # the first request connects (the general path); the others are the cycle's, whole
        assert gateway.engine.cycled == 2
    for seen in backend.seen:
        fields = dict(seen.headers)
        assert fields[b"x-forwarded-proto"] == b"https"
        assert fields[b"x-forwarded-for"] == LOOPBACK.encode()


async def test_pipelined_https_requests_are_answered_in_order(pki: Pki, nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery, handler=sized)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native", tls=tls_config(pki))
    assert gateway.engine is not None
    _, tls = await connect_tls(gateway, pki.client_context(), API)
    sizes = (5, 70000, 1)
    heads = b"".join(f"GET /n/{size} HTTP/1.1\r\nhost: {API}\r\n\r\n".encode() for size in sizes)
    await tls.send_all(heads)  # three requests in one TLS record
    with trio.fail_after(10):
        bodies = await read_responses(tls, len(sizes))
    assert bodies == [pattern(size) for size in sizes]
    assert (gateway.engine.served, gateway.engine.handed_back) == (3, 0)


async def test_a_long_https_response_is_encrypted_whole(pki: Pki, nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery, handler=sized)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native", tls=tls_config(pki))
    assert gateway.engine is not None
    client, _ = await connect_tls(gateway, pki.client_context(), API)
    with trio.fail_after(30):
        reply = await client.request("GET", f"/n/{LONG}", host=API)
        again = await client.request("GET", "/n/10", host=API)
    assert reply.body == pattern(LONG)
    assert again.body == pattern(10)
    assert gateway.engine.served == 2


async def test_a_connection_handed_back_mid_way_goes_on_over_the_same_session(
        pki: Pki, nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery, read_body=True)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native", tls=tls_config(pki))
    assert gateway.engine is not None
    client, _ = await connect_tls(gateway, pki.client_context(), API)
    assert (await client.request("GET", "/first", host=API)).status == 200
    posted = await client.request("POST", "/body", host=API, body=b"x" * 100000)  # the trio path's
    assert posted.status == 200 and posted.json()["body_length"] == 100000
    # The trio path goes on with the engine's session (the connection stays there to its end).
    assert (await client.request("GET", "/after", host=API)).status == 200
    assert (gateway.engine.served, gateway.engine.handed_back) == (1, 1)
    assert [seen.target for seen in backend.seen] == [b"/first", b"/body", b"/after"]


async def test_a_client_gone_mid_https_response_ends_only_its_connection(pki: Pki, nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery, handler=sized)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native", tls=tls_config(pki))
    assert gateway.engine is not None
    _, tls = await connect_tls(gateway, pki.client_context(), API)
    await tls.send_all(f"GET /n/{LONG} HTTP/1.1\r\nhost: {API}\r\n\r\n".encode())
    await tls.receive_some(1000)
    await trio.aclose_forcefully(tls.transport_stream)  # gone, mid-body
    other, _ = await connect_tls(gateway, pki.client_context(), API)
    with trio.fail_after(10):
        assert (await other.request("GET", "/n/3", host=API)).body == b"012"


async def test_a_client_slow_to_read_gets_the_compiled_cycles_https_response_whole(
        pki: Pki, nursery: trio.Nursery) -> None:
    # The cycle encrypts what it reads at once; what the socket does not
    # take waits as ciphertext, and the general path goes on from there.
    backend = await start_backend(nursery, handler=sized)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native", tls=tls_config(pki))
    assert gateway.engine is not None
    client, tls = await connect_tls(gateway, pki.client_context(), API)
    assert (await client.request("GET", "/n/1", host=API)).body == b"0"  # the backend connection, pooled
    size = 900_000  # short of a splice's length: the lane's
    await tls.send_all(f"GET /n/{size} HTTP/1.1\r\nhost: {API}\r\n\r\n".encode())
    await trio.sleep(0.3)  # the client reads nothing for a while: the socket fills
    with trio.fail_after(10):
        assert (await read_responses(tls, 1)) == [pattern(size)]
        client.conn = h11.Connection(h11.CLIENT)
        assert (await client.request("GET", "/n/2", host=API)).body == b"01"
    assert (gateway.engine.served, gateway.engine.handed_back) == (3, 0)


async def test_with_redirect_https_plain_http_is_redirected_and_https_is_the_engines(
        pki: Pki, nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native", tls=tls_config(pki, redirect_https=True))
    assert gateway.engine is not None
    redirected = await fetch(gateway, "GET", "/x", host=API)
    assert redirected.status == 308
    client, _ = await connect_tls(gateway, pki.client_context(), API)
    assert (await client.request("GET", "/x", host=API)).status == 200
    assert (gateway.engine.served, gateway.engine.handed_back) == (1, 0)
