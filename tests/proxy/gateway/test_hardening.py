# Bad input through the real gateway: the head checks of proxy/protocol/_head.py hold
# on a socket, whether the bytes come in one write or one at a time, and
# nothing after a rejected head reaches a backend.

from __future__ import annotations

import pytest
import trio

from proxy.gateway._server import Gateway

from ...helpers import PARSER, Backend, raw_exchange, route, start_backend, start_gateway

pytestmark = pytest.mark.usefixtures("clients_closed")


async def gateway_with_backend(nursery: trio.Nursery, **changes: object) -> tuple[Gateway, Backend]:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], **changes)
    return gateway, backend


async def send_slowly(gateway: Gateway, data: bytes) -> bytes:
    host, port = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    received = b""
    try:
        for i in range(len(data)):
            try:
                await stream.send_all(data[i : i + 1])
            except trio.BrokenResourceError:
                break
        with trio.move_on_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
    except trio.BrokenResourceError:
        pass
    finally:
        await trio.aclose_forcefully(stream)
    return received


SMUGGLING = [
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", b"400", id="cl_te"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"
                 b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", b"400", id="two_te"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"
                 b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", b"400", id="two_cl"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nX: y\r\n Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"
                 b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", b"400", id="obs_fold"),
    pytest.param(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                 b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", b"400", id="te_http10"),
    pytest.param(b"GET / HTTP/1.1\nHost: x\nContent-Length: 0\n\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"400", id="bare_lf"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"zz\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", b"400", id="bad_chunk_size"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"3\r\nabcGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", b"400", id="chunk_without_crlf"),
    pytest.param(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"ffffffffffffffffffffffff\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", b"400",
                 id="chunk_size_overflow"),
]


@pytest.mark.parametrize(("data", "status"), SMUGGLING)
@pytest.mark.parametrize("delivery", ["whole", "byte_at_a_time"])
async def test_smuggling_never_reaches_a_backend(
    nursery: trio.Nursery, data: bytes, status: bytes, delivery: str
) -> None:
    gateway, backend = await gateway_with_backend(nursery)

    raw = await (raw_exchange(gateway, data) if delivery == "whole" else send_slowly(gateway, data))

    assert b"/smuggled" not in b"".join(seen.target for seen in backend.seen)
    statuses = [line.split(b" ")[1] for line in raw.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    assert statuses and statuses[-1] == status, raw
    assert b"connection: close" in raw.lower() or statuses[0] == b"200"


@pytest.mark.parametrize("delivery", ["whole", "byte_at_a_time"])
async def test_pipelined_requests_are_each_routed(nursery: trio.Nursery, delivery: str) -> None:
    gateway, backend = await gateway_with_backend(nursery)
    data = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3))
    data += b"POST /p3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"

    raw = await (raw_exchange(gateway, data) if delivery == "whole" else send_slowly(gateway, data))

    assert [seen.target for seen in backend.seen] == [b"/p0", b"/p1", b"/p2", b"/p3"]
    assert backend.seen[3].body == b"hello"
    assert raw.count(b"HTTP/1.1 200 ") == 4


async def test_the_route_is_chosen_on_the_path_the_backend_receives(nursery: trio.Nursery) -> None:
    foo = await start_backend(nursery, "foo")
    other = await start_backend(nursery, "other")
    gateway = await start_gateway(nursery, [route("/steve/foo", foo), route("/", other)])

    raw = await raw_exchange(gateway, b"GET //%73teve/%66oo//x?q=%2F HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    assert raw.startswith(b"HTTP/1.1 200 ")
    assert [s.target for s in foo.seen] == [b"/steve/foo/x?q=%2F"] and other.seen == []


@pytest.mark.parametrize(
    "target", [b"/other/../steve/foo", b"/other/%2e%2e/steve/foo", b"/steve%2ffoo", b"/steve/foo/%00"]
)
async def test_path_tricks_are_refused(nursery: trio.Nursery, target: bytes) -> None:
    gateway, backend = await gateway_with_backend(nursery)

    raw = await raw_exchange(gateway, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")

    assert raw.startswith(b"HTTP/1.1 400 ") and backend.seen == []


async def test_options_asterisk_is_answered_by_the_gateway(nursery: trio.Nursery) -> None:
    gateway, backend = await gateway_with_backend(nursery)

    raw = await raw_exchange(gateway, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    assert raw.startswith(b"HTTP/1.1 200 ") and b"allow: get, head" in raw.lower() and backend.seen == []


async def test_absolute_form_naming_the_host_is_forwarded_in_origin_form(nursery: trio.Nursery) -> None:
    gateway, backend = await gateway_with_backend(nursery)

    raw = await raw_exchange(gateway, b"GET http://app.test/x?y HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")

    assert raw.startswith(b"HTTP/1.1 200 ")
    assert backend.seen[0].target == b"/x?y" and backend.seen[0].header(b"host") == b"app.test"


async def test_tls_on_the_plain_port_is_closed_at_once(nursery: trio.Nursery) -> None:
    gateway, _ = await gateway_with_backend(nursery)

    with trio.fail_after(2):
        raw = await raw_exchange(gateway, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")

    assert raw == b""


@pytest.mark.parametrize("delivery", ["whole", "byte_at_a_time"])
async def test_oversized_heads_whatever_the_split(nursery: trio.Nursery, delivery: str) -> None:
    gateway, backend = await gateway_with_backend(nursery, limits={"max_header_bytes": 1000, "max_target": 200})
    big_head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 2000 + b"\r\n\r\n"
    long_line = b"GET /" + b"a" * 400 + b" HTTP/1.1\r\nHost: x\r\n\r\n"

    send = raw_exchange if delivery == "whole" else send_slowly
    assert (await send(gateway, big_head)).startswith(b"HTTP/1.1 431 ")
    assert (await send(gateway, long_line)).startswith(b"HTTP/1.1 414 ")
    assert backend.seen == []


# --- the response side ----------------------------------------------------------


async def test_backend_body_longer_than_its_content_length_never_desyncs(nursery: trio.Nursery) -> None:
    from ...helpers import BackendExchange, Client, Seen

    calls = 0

    async def handler(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        nonlocal calls
        calls += 1
        # 5 bytes of body announced, 5 + a whole fake response sent.
        fake = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhijack!"
        await exchange.stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst" + fake
        )
        await trio.sleep_forever()  # and keep the connection open, looking reusable

    backend = await start_backend(nursery, handler=handler)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await Client.connect(gateway)

    first = await client.request("GET", "/1")
    second = await client.request("GET", "/2")

    assert first.body == b"first"
    assert second.body == b"first"  # from a new backend connection, never "hijack!"
    assert calls == 2


async def test_backend_sending_cl_and_te_is_502(nursery: trio.Nursery) -> None:
    from ...helpers import BackendExchange, Seen, fetch

    async def handler(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        )
        await trio.aclose_forcefully(exchange.stream)

    backend = await start_backend(nursery, handler=handler)
    gateway = await start_gateway(nursery, [route("/", backend)])

    assert (await fetch(gateway, "GET", "/")).status == 502


async def test_backend_sending_differing_content_lengths_is_502(nursery: trio.Nursery) -> None:
    from ...helpers import BackendExchange, Seen, fetch

    async def handler(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
        await trio.aclose_forcefully(exchange.stream)

    backend = await start_backend(nursery, handler=handler)
    gateway = await start_gateway(nursery, [route("/", backend)])

    assert (await fetch(gateway, "GET", "/")).status == 502


async def test_endless_1xx_is_502(nursery: trio.Nursery) -> None:
    from ...helpers import BackendExchange, Seen, fetch

    async def handler(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        for _ in range(1000):
            await exchange.stream.send_all(b"HTTP/1.1 102 Processing\r\n\r\n")
            await trio.sleep(0)

    backend = await start_backend(nursery, handler=handler)
    gateway = await start_gateway(nursery, [route("/", backend)])

    reply = await fetch(gateway, "GET", "/")

    assert reply.status == 502 and b"1xx" in reply.body
    assert len(reply.informational) <= 16


async def test_backend_head_over_the_limit_is_502(nursery: trio.Nursery) -> None:
    from ...helpers import BackendExchange, Seen, fetch

    async def handler(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.stream.send_all(b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 200_000 + b"\r\n\r\n")

    backend = await start_backend(nursery, handler=handler)
    gateway = await start_gateway(nursery, [route("/", backend)])

    assert (await fetch(gateway, "GET", "/")).status == 502



@pytest.mark.parametrize(
    ("trailers", "status"),
    [
        pytest.param(b"X-T: 1\r\nX-99: 2\r\n", b"200", id="dropped"),
        pytest.param(b"Transfer-Encoding: identity\r\n", b"400", id="framing_trailer_refused"),
        # h11 reads a well-formed Content-Length trailer (and drops it); the
        # fast parser refuses framing fields in trailers (proxy/protocol/_wire.py).
        pytest.param(b"X-T: 1\r\nContent-Length: 99\r\n", b"400" if PARSER == "fast" else b"200",
                     id="length_trailer_refused"),
    ],
)
async def test_trailers_never_reach_a_backend(nursery: trio.Nursery, trailers: bytes, status: bytes) -> None:
    from proxy._config import Address

    from ...helpers import LOOPBACK

    received = b""

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal received
        try:
            while b"\r\n0\r\n\r\n" not in received:
                data = await stream.receive_some(65536)
                if not data:
                    return
                received += data
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        except trio.BrokenResourceError:
            pass

    listeners = await trio.open_tcp_listeners(0, host=LOOPBACK)
    nursery.start_soon(trio.serve_listeners, handle, listeners)
    gateway = await start_gateway(nursery, [route("/", Address(LOOPBACK, listeners[0].socket.getsockname()[1]))])

    raw = await raw_exchange(gateway, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                             b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n" + trailers + b"\r\n")

    assert raw.startswith(b"HTTP/1.1 " + status + b" ")
    assert b"99" not in received and b"identity" not in received and b"X-T" not in received
    for listener in listeners:
        await listener.aclose()


# --- round two: what outside tools and real clients found (issue 15) -------------------


async def test_h2c_is_never_offered_to_the_backend(nursery: trio.Nursery) -> None:
    from ...helpers import fetch

    gateway, backend = await gateway_with_backend(nursery)
    reply = await fetch(gateway, "GET", "/route/a", headers=[
        ("connection", "Upgrade, HTTP2-Settings"), ("upgrade", "h2c"), ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
    ])

    assert reply.status == 200 and not reply.informational
    seen = backend.seen[0]
    assert seen.header(b"upgrade") is None and seen.header(b"http2-settings") is None
    assert seen.header(b"connection") is None


async def test_h2c_beside_websocket_offers_websocket_alone(nursery: trio.Nursery) -> None:
    from ...helpers import fetch

    gateway, backend = await gateway_with_backend(nursery)
    await fetch(gateway, "GET", "/ws", headers=[("connection", "upgrade"), ("upgrade", "h2c, websocket")])

    assert backend.seen[0].header(b"upgrade") == b"websocket"


@pytest.mark.parametrize("allow", [pytest.param(False, id="default"), pytest.param(True, id="allow_underscores")])
async def test_underscored_forwarded_headers_never_reach_the_backend(nursery: trio.Nursery, allow: bool) -> None:
    from ...helpers import fetch

    gateway, backend = await gateway_with_backend(nursery, allow_underscores=allow)
    await fetch(gateway, "GET", "/x", headers=[
        ("X_Forwarded_For", "6.6.6.6"), ("X_Forwarded_Prefix", "/evil"), ("X-Forwarded_Host", "evil"),
        ("My_Header", "1"),
    ])

    seen = backend.seen[0]
    assert not any(n.replace(b"_", b"-").startswith(b"x-forwarded") and b"_" in n for n, _ in seen.headers)
    assert seen.header(b"x-forwarded-for") == b"127.0.0.1" and seen.header(b"x-forwarded-prefix") is None
    assert (seen.header(b"my_header") == b"1") is allow


async def test_connection_cannot_remove_host(nursery: trio.Nursery) -> None:
    from ...helpers import fetch

    gateway, backend = await gateway_with_backend(nursery)
    await fetch(gateway, "GET", "/route/p", host="h", headers=[("connection", "host")])

    seen = backend.seen[0]
    assert seen.header(b"host") == b"h" and seen.header(b"x-forwarded-host") == b"h"


async def test_connection_cannot_remove_content_length(nursery: trio.Nursery) -> None:
    from ...helpers import Client

    gateway, backend = await gateway_with_backend(nursery)
    client = await Client.connect(gateway)
    first = await client.request("POST", "/p", headers=[("connection", "content-length"), ("content-length", "5")],
                                 body=b"hello")
    second = await client.request("GET", "/again")  # the connection carries on

    assert first.status == 200 and first.json()["body_length"] == 5
    assert backend.seen[0].body == b"hello" and second.status == 200


async def test_a_backend_answering_with_bare_lf_never_waits_for_the_timeout(nursery: trio.Nursery) -> None:
    from ...helpers import fetch, serve_raw

    async def bare_lf(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello")
        await trio.sleep_forever()  # and keeps the connection open

    address = await serve_raw(nursery, bare_lf)
    gateway = await start_gateway(nursery, [route("/", address)], timeouts={"response_head": 3.0})

    reply = await fetch(gateway, "GET", "/")

    # The fast parser refuses bare LF from a backend; h11 reads it. Neither waits (that would be 504).
    assert (reply.status, reply.body) == ((200, b"hello") if PARSER == "h11" else (502, reply.body))
    assert reply.status != 502 or b"bare LF" in reply.body


@pytest.mark.parametrize("delivery", ["whole", "byte_by_byte"])
async def test_a_request_with_bare_lf_is_400_at_once(nursery: trio.Nursery, delivery: str) -> None:
    gateway, backend = await gateway_with_backend(nursery)  # the head timeout is 10 s
    data = b"GET /x HTTP/1.1\nHost: a\n\n"

    with trio.fail_after(3):
        reply = await (raw_exchange(gateway, data, read_limit=3) if delivery == "whole" else send_slowly(gateway, data))

    assert reply.startswith(b"HTTP/1.1 400 ") and not backend.seen


async def read_one_response(stream: trio.SocketStream) -> bytes:
    """One response with a Content-Length, read off a raw stream (whatever came until the peer closed)."""
    data = b""
    with trio.move_on_after(5):
        while True:
            head, blank, body = data.partition(b"\r\n\r\n")
            if blank:
                length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                               if line.startswith(b"content-length:")), 0)
                if len(body) >= length:
                    break
            chunk = await stream.receive_some(65536)
            if not chunk:
                break
            data += chunk
    return data


async def test_an_http_1_0_client_gets_keep_alive_when_it_asks(nursery: trio.Nursery) -> None:
    gateway, backend = await gateway_with_backend(nursery)
    host, port = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    request = b"GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    answers = []
    try:
        for _ in range(2):
            await stream.send_all(request)
            answers.append(await read_one_response(stream))
            if PARSER == "h11":
                break  # h11 never keeps an HTTP/1.0 connection: see below
    finally:
        await trio.aclose_forcefully(stream)

    heads = [answer.partition(b"\r\n\r\n")[0].lower() for answer in answers]
    assert all(head.startswith(b"http/1.1 200 ") for head in heads)
    if PARSER == "h11":  # the reference parser closes (it does not implement RFC 9112 appendix C.2.2)
        assert b"\r\nconnection: close" in heads[0]
    else:
        assert len(answers) == 2 and all(b"\r\nconnection: keep-alive" in head for head in heads)
        assert len(backend.seen) == 2


async def test_an_http_1_0_client_without_keep_alive_is_closed(nursery: trio.Nursery) -> None:
    gateway, _ = await gateway_with_backend(nursery)

    reply = await raw_exchange(gateway, b"GET /x HTTP/1.0\r\n\r\n")

    assert reply.startswith(b"HTTP/1.1 200 ") and b"\r\nConnection: close" in reply.partition(b"\r\n\r\n")[0]


async def test_a_strip_route_named_without_its_slash_is_redirected(nursery: trio.Nursery) -> None:
    from ...helpers import fetch

    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/app", backend, strip=True), route("/plain", backend)])

    redirect = await fetch(gateway, "GET", "/app?q=1")
    assert redirect.status == 308 and redirect.header(b"location") == b"/app/?q=1"
    assert (await fetch(gateway, "POST", "/app", body=b"x")).status == 308
    assert (await fetch(gateway, "GET", "/app/?q=1")).json()["target"] == "/?q=1"
    assert (await fetch(gateway, "GET", "/plain")).json()["target"] == "/plain"  # not stripped: as it is
    assert [seen.target for seen in backend.seen] == [b"/?q=1", b"/plain"]
