# HTTPS through the gateway, on real sockets with the standard library's
# TLS client: SNI, the protocol settings, plain HTTP on the TLS port, stalled
# handshakes, reloads that drop nothing, tickets, HSTS and the redirect.

from __future__ import annotations

import logging
import ssl
import warnings
from pathlib import Path

import pytest
import trio

from proxy._config import Address, Tls
from proxy.gateway._tls import PLAIN_ON_TLS_PORT

from ...helpers import LOOPBACK, echo, fetch, route, serve_raw, start_backend, start_gateway, unused_port
from .tls_support import Pki, connect_tls, peer_names

API, SHOP = "api.example.test", "*.shop.test"


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def tls_config(*pairs, **changes) -> Tls:  # type: ignore[no-untyped-def]
    return Tls(listen=(Address(LOOPBACK, 0),), pairs=tuple(p.pair for p in pairs), **changes)


async def test_a_request_over_https_reaches_the_backend_marked_https(pki: Pki) -> None:
    api = pki.issue(API)
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        gateway = await start_gateway(nursery, [route("/", backend)], tls=tls_config(api))
        client, tls = await connect_tls(gateway, pki.client_context(), API)
        reply = await client.request("GET", "/x?y=1", host=API)
        again = await client.request("GET", "/second", host=API)  # the same connection, kept alive
        assert (reply.status, again.status) == (200, 200)
        seen = dict((n.decode(), v.decode()) for n, v in backend.seen[0].headers)
        assert seen["x-forwarded-proto"] == "https"
        assert backend.seen[0].target == b"/x?y=1"
        assert tls.selected_alpn_protocol() == "http/1.1"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        # The plain listener still says http.
        plain = await fetch(gateway, "GET", "/plain")
        assert plain.status == 200
        assert dict(backend.seen[-1].headers)[b"x-forwarded-proto"] == b"http"
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(("server_name", "expected"), [
    pytest.param(API, [API], id="exact"),
    pytest.param("API.Example.Test.", [API], id="case_and_dot"),
    pytest.param("a.shop.test", [SHOP], id="wildcard"),
    pytest.param("b.a.shop.test", [API], id="wildcard_one_label_only"),
    pytest.param("other.test", [API], id="unknown_gets_default"),
    pytest.param(None, [API], id="no_sni_gets_default"),
])
async def test_the_certificate_is_chosen_by_sni(pki: Pki, server_name: str | None, expected: list[str]) -> None:
    api, shop = pki.issue(API), pki.issue(SHOP)
    async with trio.open_nursery() as nursery:
        gateway = await start_gateway(nursery, [], tls=tls_config(api, shop))
        context = pki.client_context()
        context.check_hostname = False  # the fallback cases are about what is presented, not trusted
        _, tls = await connect_tls(gateway, context, server_name)
        assert peer_names(tls) == expected
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["1.2", "1.3"])
async def test_tls_1_2_and_1_3_are_spoken(pki: Pki, version: ssl.TLSVersion) -> None:
    api = pki.issue(API)
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        gateway = await start_gateway(nursery, [route("/", backend)], tls=tls_config(api))
        context = pki.client_context()
        context.minimum_version = context.maximum_version = version
        client, tls = await connect_tls(gateway, context, API)
        assert tls.version() == version.name.replace("_", ".")
        assert (await client.request("GET", "/", host=API)).status == 200
        if version is ssl.TLSVersion.TLSv1_2:
            assert tls.cipher()[0].startswith("ECDHE-ECDSA-")  # forward secret, AEAD
            assert "GCM" in tls.cipher()[0] or "CHACHA20" in tls.cipher()[0]
        assert tls.compression() is None
        nursery.cancel_scope.cancel()


async def test_tls_before_1_2_is_refused(pki: Pki) -> None:
    api = pki.issue(API)
    async with trio.open_nursery() as nursery:
        gateway = await start_gateway(nursery, [], tls=tls_config(api))
        context = gateway.certificates.context  # type: ignore[union-attr]
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2
        # A client that offers at most TLS 1.1 (with the old ciphers it needs) gets no session.
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        client.set_ciphers("ALL:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # (TLS 1.1 is, which is the point)
            client.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            client.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(trio.BrokenResourceError) as failed:
            await connect_tls(gateway, client, API)
        assert isinstance(failed.value.__cause__, ssl.SSLError)
        nursery.cancel_scope.cancel()


async def test_plain_http_on_the_tls_port_gets_a_short_400(pki: Pki) -> None:
    api = pki.issue(API)
    async with trio.open_nursery() as nursery:
        gateway = await start_gateway(nursery, [], tls=tls_config(api))
        host, port = gateway.tls_addresses[0]
        async with await trio.open_tcp_stream(host, port) as stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65536):
                    answer += chunk
        assert answer == PLAIN_ON_TLS_PORT
        assert answer.startswith(b"HTTP/1.1 400 ")
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("io", ["trio", "native"])
async def test_a_tls_hello_on_the_plain_port_is_closed_without_a_word(
        pki: Pki, io: str, caplog: pytest.LogCaptureFixture) -> None:
    async with trio.open_nursery() as nursery:
        gateway = await start_gateway(nursery, [], io=io)
        host, port = gateway.addresses[0]
        async with await trio.open_tcp_stream(host, port) as stream:
            tls = trio.SSLStream(stream, pki.client_context(), server_hostname=API)
            with caplog.at_level(logging.DEBUG, logger="fastroute"), trio.fail_after(5):
                with pytest.raises(trio.BrokenResourceError):
                    await tls.do_handshake()
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01\x02\x00\x01"], ids=["nothing", "half_a_hello"])
async def test_a_stalled_handshake_is_cut_at_the_head_timeout_and_frees_its_slot(pki: Pki, sent: bytes) -> None:
    api = pki.issue(API)
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        gateway = await start_gateway(nursery, [route("/", backend)], tls=tls_config(api),
                                      timeouts={"request_head": 0.3}, limits={"max_connections": 1})
        host, port = gateway.tls_addresses[0]
        async with await trio.open_tcp_stream(host, port) as staller:
            await staller.send_all(sent)
            with trio.fail_after(10):  # closed by the gateway, with nothing said
                assert await staller.receive_some(100) == b""
        # The one slot is free again: a real client is served.
        client, _ = await connect_tls(gateway, pki.client_context(), API)
        assert (await client.request("GET", "/", host=API)).status == 200
        nursery.cancel_scope.cancel()


async def test_changed_files_are_picked_up_and_open_connections_keep_going(pki: Pki) -> None:
    api = pki.issue(API)
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        gateway = await start_gateway(nursery, [route("/", backend)], tls=tls_config(api))
        certificates = gateway.certificates
        assert certificates is not None
        old_client, old_tls = await connect_tls(gateway, pki.client_context(), API)
        assert (await old_client.request("GET", "/", host=API)).status == 200
        # A renewal: the same names, new files in place, with one name more.
        pki.issue(API, "www.example.test", into=api.pair)
        with trio.fail_after(10):
            while certificates.loads < 2:
                await trio.sleep(0.05)
        new_client, new_tls = await connect_tls(gateway, pki.client_context(), "www.example.test")
        assert peer_names(new_tls) == [API, "www.example.test"]
        assert peer_names(old_tls) == [API]
        # The connection from before the reload is untouched.
        assert (await old_client.request("GET", "/after", host=API)).status == 200
        assert (await new_client.request("GET", "/", host="www.example.test")).status == 200
        nursery.cancel_scope.cancel()


async def test_a_bad_reload_keeps_the_certificates_in_force(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    api, other = pki.issue(API), pki.issue("other.test")
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        gateway = await start_gateway(nursery, [route("/", backend)], tls=tls_config(api))
        certificates = gateway.certificates
        assert certificates is not None
        api.pair.key.write_bytes(other.pair.key.read_bytes())  # half-way through a renewal: the wrong key
        with caplog.at_level(logging.ERROR, logger="fastroute"):
            assert not certificates.reload("SIGHUP")
            assert not certificates.reload("SIGHUP")
        said = [r.getMessage() for r in caplog.records if "not reloaded" in r.getMessage()]
        assert said == ["SIGHUP: TLS certificates not reloaded, keeping those in force: TLS certificate "
                        f"{api.pair.cert} / key {api.pair.key}: the key does not belong to the certificate"]
        client, tls = await connect_tls(gateway, pki.client_context(), API)
        assert peer_names(tls) == [API]
        assert (await client.request("GET", "/", host=API)).status == 200
        assert certificates.loads == 1
        nursery.cancel_scope.cancel()


async def test_a_session_ticket_resumes_a_session(pki: Pki) -> None:
    api = pki.issue(API)
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        gateway = await start_gateway(nursery, [route("/", backend)], tls=tls_config(api))
        context = pki.client_context()
        first, tls = await connect_tls(gateway, context, API)
        assert (await first.request("GET", "/", host=API)).status == 200  # (TLS 1.3 tickets come after the handshake)
        session = tls.session
        assert session is not None and session.has_ticket
        second, resumed = await connect_tls(gateway, context, API, session=session)
        assert resumed.session_reused
        assert (await second.request("GET", "/", host=API)).status == 200
        nursery.cancel_scope.cancel()


async def test_hsts_only_when_asked_and_only_over_https(pki: Pki) -> None:
    api = pki.issue(API)
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        for hsts, expected in ((None, None), (31536000, b"max-age=31536000")):
            gateway = await start_gateway(nursery, [route("/", backend)], tls=tls_config(api, hsts=hsts))
            client, _ = await connect_tls(gateway, pki.client_context(), API)
            assert (await client.request("GET", "/", host=API)).header(b"strict-transport-security") == expected
            assert (await fetch(gateway, "GET", "/")).header(b"strict-transport-security") is None
        nursery.cancel_scope.cancel()


async def test_redirect_https_for_names_with_a_certificate_only(pki: Pki) -> None:
    api = pki.issue(API)
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        gateway = await start_gateway(nursery, [route("/", backend)], tls=tls_config(api, redirect_https=True))
        port = gateway.tls_addresses[0][1]
        reply = await fetch(gateway, "POST", "/x/y?z=1", host=f"{API.upper()}:8080", body=b"kept by a 308")
        assert reply.status == 308
        assert reply.header(b"location") == f"https://{API}:{port}/x/y?z=1".encode()
        # Names no certificate holds, and ACME's challenges, are served as they are.
        assert (await fetch(gateway, "GET", "/", host="other.test")).status == 200
        challenge = await fetch(gateway, "GET", "/.well-known/acme-challenge/token", host=API)
        assert challenge.status == 200
        assert [s.target for s in backend.seen] == [b"/", b"/.well-known/acme-challenge/token"]
        nursery.cancel_scope.cancel()


async def test_redirect_names_the_published_port_when_given(pki: Pki) -> None:
    api = pki.issue(API)
    async with trio.open_nursery() as nursery:
        for https_port, suffix in ((443, ""), (8443, ":8443")):
            gateway = await start_gateway(nursery, [], tls=tls_config(api, redirect_https=True, https_port=https_port))
            reply = await fetch(gateway, "GET", "/", host=API)
            assert reply.header(b"location") == f"https://{API}{suffix}/".encode()
        nursery.cancel_scope.cancel()


async def test_an_upgrade_over_https_is_tunnelled(pki: Pki) -> None:
    # A WebSocket-style upgrade: the tunnel moves bytes over the TLS stream
    # (never spliced: the kernel sees only ciphertext on the client side).
    api = pki.issue(API)

    async def upgrade_echo(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\n")
        while chunk := await stream.receive_some(65536):
            await stream.send_all(chunk.upper())

    async with trio.open_nursery() as nursery:
        address = await serve_raw(nursery, upgrade_echo)
        gateway = await start_gateway(nursery, [route("/", address)], tls=tls_config(api))
        _, tls = await connect_tls(gateway, pki.client_context(), API)
        await tls.send_all(f"GET /ws HTTP/1.1\r\nHost: {API}\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\n".encode())
        head = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in head:
                head += await tls.receive_some(65536)
            assert head.startswith(b"HTTP/1.1 101 ")
            await tls.send_all(b"hello over tls")
            echoed = b""
            while len(echoed) < 14:
                echoed += await tls.receive_some(65536)
        assert echoed == b"HELLO OVER TLS"
        nursery.cancel_scope.cancel()


async def test_long_bodies_over_https_are_relayed_whole(pki: Pki) -> None:
    # Long bodies are spliced between plain sockets; over TLS they go through Python, both ways.
    api = pki.issue(API)
    size = 3 * 1024 * 1024 + 7

    async def big(backend: object, seen: object, exchange: object) -> None:
        if seen.method == b"GET":  # type: ignore[attr-defined]
            await exchange.respond(200, b"z" * size)  # type: ignore[attr-defined]
        else:
            await echo(backend, seen, exchange)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery, "b", big)
        gateway = await start_gateway(nursery, [route("/", backend)], tls=tls_config(api))
        client, _ = await connect_tls(gateway, pki.client_context(), API)
        down = await client.request("GET", "/", host=API)
        up = await client.request("POST", "/", host=API, body=b"u" * size)
        assert (down.status, len(down.body), set(down.body)) == (200, size, {ord("z")})
        assert up.json()["body_length"] == size
        nursery.cancel_scope.cancel()


async def test_alpn_offers_h2_unless_the_listener_says_no_http2(pki: Pki) -> None:
    api, other = pki.issue(API), pki.issue("other.test")
    both, http1 = Address(LOOPBACK, unused_port()), Address(LOOPBACK, unused_port())
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        gateway = await start_gateway(nursery, [route("/", backend)], no_http2=(http1,),
                                      tls=Tls(listen=(both, http1), pairs=(api.pair, other.pair)))
        chosen = {}
        for address in (both, http1):
            for name in (API, "other.test"):  # the default certificate's context, and one SNI switches to
                stream = await trio.open_tcp_stream(address.host, address.port)
                tls = trio.SSLStream(stream, pki.client_context(alpn=("h2", "http/1.1")), server_hostname=name)
                await tls.do_handshake()
                chosen[(address.port, name)] = tls.selected_alpn_protocol()
                await trio.aclose_forcefully(tls)
        nursery.cancel_scope.cancel()
    assert chosen == {(both.port, API): "h2", (both.port, "other.test"): "h2",
                      (http1.port, API): "http/1.1", (http1.port, "other.test"): "http/1.1"}
