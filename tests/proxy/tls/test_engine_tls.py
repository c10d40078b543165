# HTTPS served by the native engine (engine/_exchange.py over the trio
# path's TLS session): the engine, not the trio path, answers; what it sends
# is the trio path's answer (X-Forwarded-Proto https, HSTS when asked);
# pipelined requests, long responses (no splice over TLS) and a hand-back to
# the trio path in the middle of a connection keep the byte stream whole.
# The engine makes the handshake itself (HANDSHAKE), and tells a CA's
# TLS-ALPN-01 validation from a client by its ClientHello.

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import h11
import pytest
import trio

from proxy._config import Address, Tls
from proxy.engine import _handshake, _socket, _transport
from proxy.engine._cycle import CYCLE_COMPILED
from proxy.gateway import _connection
from proxy.gateway._tlsstream import TlsStream
from proxy.tls._hello import ACME_TLS_ALPN

from ...helpers import LOOPBACK, Backend, BackendExchange, Seen, fetch, route, start_backend, start_gateway
from .tls_support import Pki, connect_tls

API = "api.example.test"
CHALLENGED = "new.example.test"  # a name with a TLS-ALPN-01 validation pending
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


# --- the handshake, made by the engine ------------------------------------------


async def test_the_engine_makes_the_handshake_and_sends_close_notify_at_the_end(
        pki: Pki, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch) -> None:
    def trio_handshake(*args: object) -> None:
        raise AssertionError("the trio path made a handshake the engine makes")

    monkeypatch.setattr(_connection, "accept_tls", trio_handshake)
    closed_before: list[bool] = []  # the session's close_notify written when the trio task closes
    close_notify = TlsStream.close_notify

    async def watched(self: TlsStream) -> None:
        closed_before.append(self.session.closed)
        await close_notify(self)

    monkeypatch.setattr(TlsStream, "close_notify", watched)
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native", tls=tls_config(pki))
    assert gateway.engine is not None
    _, tls = await connect_tls(gateway, pki.client_context(), API)
    await tls.send_all(f"GET /x HTTP/1.1\r\nhost: {API}\r\nconnection: close\r\n\r\n".encode())
    reply = b""
    with trio.fail_after(10):
        while chunk := await tls.receive_some(65536):  # trio.SSLStream raises on an end without close_notify
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200 ") and b"\r\nconnection: close\r\n" in reply.lower()
    with trio.fail_after(5):
        while not closed_before:
            await trio.sleep(0.01)
    assert closed_before == [True]  # by the engine
    assert (gateway.engine.handshakes, gateway.engine.served, gateway.engine.handed_back) == (1, 1, 0)


async def test_writes_the_socket_takes_in_pieces_keep_the_handshake_and_every_response_whole(
        pki: Pki, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every write of the engine to a TLS client takes 50 bytes at most, as a
    # socket with a full buffer would: the handshake's flights, the cycle's
    # responses and the general path's all wait as ciphertext and go out whole.
    real_write = _socket.write

    def fifty(fd: int, data: bytes | bytearray | memoryview) -> int:
        written.append(fd)
        return real_write(fd, memoryview(data)[:50])

    written: list[int] = []
    for module in (_transport, _handshake):  # the client's socket's writers (the backend's are _socket's too)
        monkeypatch.setattr(module, "write", fifty)
    backend = await start_backend(nursery, handler=sized)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native", tls=tls_config(pki))
    assert gateway.engine is not None
    with trio.fail_after(30):
        client, tls = await connect_tls(gateway, pki.client_context(), API)
        for size in (1, 70000, 20):
            assert (await client.request("GET", f"/n/{size}", host=API)).body == pattern(size)
        sizes = (300, 5)
        await tls.send_all(b"".join(f"GET /n/{size} HTTP/1.1\r\nhost: {API}\r\n\r\n".encode() for size in sizes))
        assert await read_responses(tls, len(sizes)) == [pattern(size) for size in sizes]
    assert (gateway.engine.handshakes, gateway.engine.served, gateway.engine.handed_back) == (1, 5, 0)
    assert len(written) > 70000 // 50  # the long response went out 50 bytes at a time


async def test_draining_closes_a_connection_still_in_its_handshake(pki: Pki, nursery: trio.Nursery) -> None:
    gateway = await start_gateway(nursery, [], io="native", tls=tls_config(pki), timeouts={"request_head": 60})
    assert gateway.engine is not None
    host, port = gateway.tls_addresses[0]
    async with await trio.open_tcp_stream(host, port) as stream:
        await stream.send_all(b"\x16\x03\x01\x02\x00\x01")  # half a ClientHello
        await trio.sleep(0.2)  # the engine has it, in its handshake
        async with trio.open_nursery() as inner:
            inner.start_soon(gateway.drain)
            with trio.fail_after(5):  # closed now, not at the head timeout
                assert await stream.receive_some(10) == b""


@pytest.mark.parametrize("cuts", [(), (3, 40, 120)], ids=["whole", "in_pieces"])
async def test_a_tls_alpn_01_validation_is_told_from_a_client_however_its_hello_comes(
        pki: Pki, nursery: trio.Nursery, cuts: tuple[int, ...], caplog: pytest.LogCaptureFixture) -> None:
    # RFC 8737: the CA's ClientHello asks for ALPN acme-tls/1 and the
    # validation's certificate answers it; the engine reads the ClientHello
    # whole before OpenSSL sees a byte of it.
    gateway = await start_gateway(nursery, [], io="native", tls=tls_config(pki))
    assert gateway.engine is not None
    validation = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    validation.set_alpn_protocols([ACME_TLS_ALPN])
    challenge = pki.issue(CHALLENGED)
    validation.load_cert_chain(challenge.pair.cert, challenge.pair.key)
    gateway.acme_challenge = lambda name: validation if name == CHALLENGED else None
    context = pki.client_context()
    context.set_alpn_protocols([ACME_TLS_ALPN])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=CHALLENGED)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    hello = outgoing.read()
    host, port = gateway.tls_addresses[0]
    with caplog.at_level(logging.INFO, logger="fastroute"), trio.fail_after(10):
        async with await trio.open_tcp_stream(host, port) as stream:
            start = 0
            for cut in cuts:
                await stream.send_all(hello[start:cut])
                await trio.sleep(0.05)
                start = cut
            await stream.send_all(hello[start:])
            while True:
                data = await stream.receive_some(65536)
                assert data, "closed in the handshake"
                incoming.write(data)
                try:
                    client.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pass
            await stream.send_all(outgoing.read())  # the client's Finished
            assert client.selected_alpn_protocol() == ACME_TLS_ALPN
            cert = client.getpeercert()
            assert cert is not None and [value for _, value in cert["subjectAltName"]] == [CHALLENGED]
            while await stream.receive_some(65536):  # and then the gateway closes
                pass
    assert "ACME: answered a TLS-ALPN-01 challenge" in caplog.messages
    assert (gateway.engine.handshakes, gateway.engine.served) == (1, 0)
