# HTTP/2 on the engine (engine/_h2.py, _h2leg.py): the streams it serves
# itself, checked against the trio path (the reference: the same requests
# through a gateway with --io trio reach the backend and the client the
# same), and its rules: streams answered in any order, a client's reset and
# a bug ending that stream only, backpressure, TLS with ALPN h2.

from __future__ import annotations

import json
from pathlib import Path

import h2.errors
import pytest
import trio

from proxy._config import Address, Tls
from proxy.engine import _stream_shell
from proxy.engine._h2cycle import H2CYCLE_C
from proxy.routing._pool import BackendState
from proxy.gateway._server import Gateway

from ...h2_support import H2Client
from ...helpers import LOOPBACK, Backend, BackendExchange, Seen, route, serve_raw, start_backend, start_gateway, unused_port
from ..gateway.test_h2_differential import CASES, echo_or_head
from ..tls.tls_support import Pki

pytestmark = pytest.mark.usefixtures("clients_closed")

ERR = h2.errors.ErrorCodes
API = "api.test"


def engine_of(gateway: Gateway) -> tuple[int, int]:
    assert gateway.engine is not None
    return gateway.engine.served, gateway.engine.handed_back


def client_view(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[object, ...]:
    fields = sorted((n, v) for n, v in headers if n != b"date")
    try:
        return status, fields, json.loads(body)
    except ValueError:
        return status, fields, body


# HTTP/2 has no chunked framing: that case is post_with_length's here.
H2_CASES = [case for case in CASES if not case.values[4]]


# The cases the compiled HTTP/2 stream (engine/_h2cycle.py) serves once a pooled backend connection
# waits: a header list of the plainest kind, routed to a backend; a request with a body, HEAD, a Cookie
# or a TE field, a target to normalise, a spoofed or underscored field, a refusal is the general path's.
CYCLED_CASES = {"get_query", "fields", "delete", "options"}


@pytest.mark.parametrize(("method", "target", "fields", "body", "chunked"), H2_CASES)
async def test_a_request_over_http2_goes_the_same_through_the_engine_and_the_trio_path(
        nursery: trio.Nursery, request: pytest.FixtureRequest, method: str, target: str,
        fields: list[tuple[str, str]], body: bytes, chunked: bool) -> None:
    backend = await start_backend(nursery, handler=echo_or_head)
    h2_fields = [(n, v) for n, v in fields if n != "cookie"]
    h2_fields += [("cookie", c) for n, v in fields if n == "cookie" for c in v.split("; ")]
    if body:
        h2_fields.append(("content-length", str(len(body))))
    views = []
    for io in ("native", "trio"):
        gateway = await start_gateway(nursery, [route("/", backend)], io=io)
        client = await H2Client.connect(gateway.addresses[0])
        # Twice on one connection: the second finds the first's backend connection pooled (the cycle's).
        for _ in range(2):
            reply = await client.request(method, target, h2_fields, body=body, authority=API)
            views.append(client_view(reply.status, reply.headers, reply.body))
        if io == "native" and not body and reply.status == 200:
            assert engine_of(gateway) == (2, 0)  # the engine's own streams served them
            cycled = request.node.callspec.id.split("-")[-1] in CYCLED_CASES and H2CYCLE_C is not None
            assert gateway.engine is not None and gateway.engine.cycled == (1 if cycled else 0)
    assert views[:2] == views[2:]
    seen = [(s.method, s.target, s.headers, s.body) for s in backend.seen]
    assert len(seen) in (0, 4) and all(one == seen[0] for one in seen)


async def test_many_streams_answered_out_of_order_each_get_their_own_response(nursery: trio.Nursery) -> None:
    count = 30
    arrived: list[tuple[Seen, trio.Event]] = []
    all_arrived = trio.Event()

    async def reverse(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        release = trio.Event()
        arrived.append((seen, release))
        if len(arrived) == count:
            all_arrived.set()
        await release.wait()
        await exchange.respond(200, seen.target * 100)

    backend = await start_backend(nursery, handler=reverse)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native")
    client = await H2Client.connect(gateway.addresses[0])
    ids = {client.start("GET", f"/s{i}"): f"/s{i}".encode() for i in range(count)}
    await client.flush()
    with trio.fail_after(30):  # a hang's bound
        await all_arrived.wait()
    for seen, release in reversed(arrived):
        release.set()
    for stream_id, target in ids.items():
        reply = await client.reply(stream_id)
        assert (reply.status, reply.body) == (200, target * 100)
    assert engine_of(gateway) == (count, 0)


async def test_a_client_reset_closes_that_streams_backend_and_the_connection_goes_on(nursery: trio.Nursery) -> None:
    started, backend_closed = trio.Event(), trio.Event()

    async def partial(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"p" * 10)
        started.set()
        while await stream.receive_some(65536):  # until the gateway closes the connection
            pass
        backend_closed.set()

    slow = await serve_raw(nursery, partial)
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/slow", slow), route("/", backend)], io="native")
    client = await H2Client.connect(gateway.addresses[0])
    stream_id = client.start("GET", "/slow")
    await client.flush()
    with trio.fail_after(30):  # a hang's bound
        await client.until(lambda: client.replies[stream_id].body == b"p" * 10)
        client.conn.reset_stream(stream_id, ERR.CANCEL)
        await client.flush()
        await backend_closed.wait()
    assert started.is_set()
    reply = await client.request("GET", "/next")
    assert reply.status == 200 and client.goaway is None
    assert engine_of(gateway) == (1, 0)  # the reset one was recorded, not served


@pytest.mark.parametrize("path", ["general", "cycle"])
async def test_a_bug_in_one_stream_resets_that_stream_only(nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch,
                                                           path: str) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native")
    client = await H2Client.connect(gateway.addresses[0])
    assert (await client.request("GET", "/before")).status == 200

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    if path == "general":  # (a Cookie: not the cycle's)
        monkeypatch.setattr(_stream_shell.StreamShell, "wrote", broken)
        fields = [("cookie", "a=1")]
    else:  # the cycle's stream, as its backend's part ends
        if H2CYCLE_C is None:
            pytest.skip("FASTROUTE_NO_EXTENSIONS is set: the engine's HTTP/2 runs without the compiled stream")
        monkeypatch.setattr(BackendState, "end", broken)
        fields = []
    reply = await client.request("GET", "/bug", fields)
    assert reply.reset == ERR.INTERNAL_ERROR
    monkeypatch.undo()
    assert (await client.request("GET", "/after")).status == 200
    assert client.goaway is None and not client.closed


async def test_a_backend_that_refuses_gets_the_gateways_502_on_that_stream(nursery: trio.Nursery) -> None:
    gateway = await start_gateway(nursery, [route("/", Address(LOOPBACK, unused_port()))], io="native")
    client = await H2Client.connect(gateway.addresses[0])
    reply = await client.request("GET", "/x")
    assert reply.status == 502 and reply.ended and b"502" in reply.body
    assert engine_of(gateway) == (1, 0)
    assert client.goaway is None


async def test_a_large_response_is_framed_within_the_windows_and_arrives_whole(nursery: trio.Nursery) -> None:
    size = 5 * 1024 * 1024 + 3

    async def big(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.respond(200, bytes(range(256)) * (size // 256) + b"xyz")

    backend = await start_backend(nursery, handler=big)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native")
    client = await H2Client.connect(gateway.addresses[0])
    first, second = client.start("GET", "/a"), client.start("GET", "/b")
    await client.flush()
    for stream_id in (first, second):
        reply = await client.reply(stream_id)
        assert (reply.status, len(reply.body), reply.body[-3:]) == (200, size, b"xyz")
    assert engine_of(gateway) == (2, 0)


async def test_https_with_alpn_h2_is_served_by_the_engine(nursery: trio.Nursery, tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    backend = await start_backend(nursery)
    tls = Tls(listen=(Address(LOOPBACK, 0),), pairs=(pki.issue(API).pair,), hsts=600)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native", tls=tls)
    host, port = gateway.tls_addresses[0]
    stream = trio.SSLStream(await trio.open_tcp_stream(host, port), pki.client_context(alpn=("h2", "http/1.1")),
                            server_hostname=API)
    await stream.do_handshake()
    assert stream.selected_alpn_protocol() == "h2"
    client = H2Client(stream)
    await client.flush()
    for path in ("/a", "/b", "/c"):
        reply = await client.request("GET", path, authority=API)
        assert reply.status == 200 and reply.header(b"strict-transport-security") == b"max-age=600"
    assert engine_of(gateway) == (3, 0)
    # On the first's pooled connection (with the compiled stream: FASTROUTE_NO_EXTENSIONS sets it aside).
    assert gateway.engine is not None and gateway.engine.cycled == (2 if H2CYCLE_C is not None else 0)
    assert dict(backend.seen[0].headers)[b"x-forwarded-proto"] == b"https"
