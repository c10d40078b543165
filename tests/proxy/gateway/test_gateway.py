# End to end over real loopback sockets: clients, the in-process gateway,
# and in-process backends (tests/helpers.py).

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import h11
import pytest
import trio

from proxy._config import Address, Discovery
from proxy.routing._stats import Stats

from ...helpers import (
    LOOPBACK,
    Backend,
    BackendExchange,
    Client,
    Seen,
    blackhole,
    fetch,
    raw_exchange,
    reset,
    route,
    serve_raw,
    start_backend,
    start_gateway,
    unused_port,
)

pytestmark = pytest.mark.usefixtures("clients_closed")


async def test_routes_by_longest_prefix(nursery: trio.Nursery) -> None:
    foo, deep, root = [await start_backend(nursery, n) for n in ("foo", "deep", "root")]
    gateway = await start_gateway(
        nursery, [route("/steve/foo", foo), route("/steve/foo/deep", deep), route("/", root)]
    )

    answers = {}
    for path in ["/steve/foo", "/steve/foo/x?q=1", "/steve/foo/deep/er", "/steve/foobar", "/other"]:
        reply = await fetch(gateway, "GET", path)
        assert reply.status == 200
        answers[path] = reply.json()["backend"]

    assert answers == {
        "/steve/foo": "foo", "/steve/foo/x?q=1": "foo", "/steve/foo/deep/er": "deep",
        "/steve/foobar": "root", "/other": "root",
    }


async def test_routes_by_host_then_prefix(nursery: trio.Nursery) -> None:
    import dataclasses

    api, api_v1, wild, anywhere = [await start_backend(nursery, n) for n in ("api", "api-v1", "wild", "any")]
    routes = [dataclasses.replace(route("/", api), host="api.example.com"),
              dataclasses.replace(route("/v1", api_v1), host="api.example.com"),
              dataclasses.replace(route("/", wild), host="*.example.com"), route("/", anywhere)]
    gateway = await start_gateway(nursery, routes)

    answers = []
    for host, path in [("api.example.com", "/x"), ("API.Example.com.:8080", "/v1/users"), ("shop.example.com", "/"),
                       ("a.b.example.com", "/"), ("example.com", "/"), ("other.test", "/v1")]:
        client = await Client.connect(gateway)
        try:  # each kind of request on the engine takes another way: a plain head, a checked one, the general path
            replies = [await client.request("GET", path, host=host),
                       await client.request("GET", path, host=host, headers=[("via", "1.0 other")]),
                       await client.request("GET", path, host=host, headers=[("connection", "close")])]
        finally:
            await client.aclose()
        assert [reply.status for reply in replies] == [200, 200, 200]
        answers.append([reply.json()["backend"] for reply in replies])

    assert [first for first, *_ in answers] == ["api", "api-v1", "wild", "any", "any", "any"]
    assert all(len(set(each)) == 1 for each in answers), answers
    assert api.seen[0].header(b"host") == b"api.example.com"  # the client's Host, passed on


async def test_backend_sees_the_original_path_by_default(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/steve/foo", backend)])

    reply = await fetch(gateway, "GET", "/steve/foo/x/y?q=1")

    assert reply.json()["target"] == "/steve/foo/x/y?q=1"
    assert backend.seen[0].header(b"x-forwarded-prefix") is None


async def test_strip_prefix(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/steve/foo", backend, strip=True)])

    targets = [(await fetch(gateway, "GET", path)).json()["target"]
               for path in ["/steve/foo/x?q", "/steve/foo/", "/steve/foo/?q=1"]]
    # The prefix without its slash is redirected to it (issue 15), so its page's relative links work.
    redirects = [(await fetch(gateway, "GET", path)).header(b"location") for path in ["/steve/foo", "/steve/foo?q=1"]]

    assert targets == ["/x?q", "/", "/?q=1"]
    assert redirects == [b"/steve/foo/", b"/steve/foo/?q=1"]
    assert all(seen.header(b"x-forwarded-prefix") == b"/steve/foo" for seen in backend.seen)


async def test_keep_alive_routes_each_request_and_reuses_upstream(nursery: trio.Nursery) -> None:
    a, b = await start_backend(nursery, "a"), await start_backend(nursery, "b")
    gateway = await start_gateway(nursery, [route("/a", a), route("/b", b)])
    client = await Client.connect(gateway)

    names = [(await client.request("GET", f"/{n}/{i}")).json()["backend"] for i in range(5) for n in "ab"]

    assert names == ["a", "b"] * 5
    assert (a.connections, b.connections) == (1, 1)  # pooled and reused
    await client.aclose()


async def test_http_1_0_client(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])

    raw = await raw_exchange(gateway, b"GET /x HTTP/1.0\r\n\r\n")

    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b'"target": "/x"' in body
    assert backend.seen[0].header(b"host") == str(backend.address).encode()


async def test_no_route_is_404_and_keeps_the_connection(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/a", backend)])
    client = await Client.connect(gateway)

    missing = await client.request("GET", "/b")
    found = await client.request("GET", "/a")

    assert missing.status == 404
    assert missing.header(b"content-type") == b"text/plain; charset=utf-8"
    assert b"no route" in missing.body
    assert found.status == 200
    await client.aclose()


async def test_hop_by_hop_headers_are_not_forwarded(nursery: trio.Nursery) -> None:
    async def handler(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.respond(200, b"ok", [(b"keep-alive", b"timeout=5"), (b"x-private", b"1"),
                                            (b"connection", b"x-private"), (b"x-kept", b"yes")])

    backend = await start_backend(nursery, handler=handler)
    gateway = await start_gateway(nursery, [route("/", backend)])

    reply = await fetch(gateway, "GET", "/", headers=[
        ("connection", "x-secret, keep-alive"), ("x-secret", "1"), ("keep-alive", "300"),
        ("proxy-connection", "keep-alive"), ("te", "trailers"), ("trailer", "x"), ("upgrade", "h2c"),
        ("x-normal", "yes"),
    ])

    sent = {name for name, _ in backend.seen[0].headers}
    assert sent.isdisjoint({b"connection", b"x-secret", b"keep-alive", b"proxy-connection", b"te",
                            b"trailer", b"upgrade"})
    assert b"x-normal" in sent
    got = {name for name, _ in reply.headers}
    assert b"x-private" not in got and b"keep-alive" not in got
    assert reply.header(b"x-kept") == b"yes"


async def test_forwarded_headers_replace_an_untrusted_clients(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])

    await fetch(gateway, "GET", "/", host="example.test", headers=[
        ("x-forwarded-for", "6.6.6.6"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "evil"),
        ("forwarded", "for=6.6.6.6"), ("via", "1.0 other"),
    ])

    seen = backend.seen[0]
    assert seen.header(b"x-forwarded-for") == b"127.0.0.1"
    assert seen.header(b"x-forwarded-proto") == b"http"
    assert seen.header(b"x-forwarded-host") == b"example.test"
    assert seen.header(b"forwarded") is None
    assert seen.header(b"via") == b"1.0 other, 1.1 fastroute"
    assert seen.header(b"host") == b"example.test"


async def test_forwarded_headers_are_appended_for_a_trusted_proxy(nursery: trio.Nursery) -> None:
    import ipaddress

    backend = await start_backend(nursery)
    gateway = await start_gateway(
        nursery, [route("/", backend)], trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)
    )

    reply = await fetch(gateway, "GET", "/", headers=[
        ("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "app.test"),
    ])

    assert reply.status == 200 and len(backend.seen) == 1, (reply, backend.seen)
    seen = backend.seen[0]
    assert seen.header(b"x-forwarded-for") == b"203.0.113.7, 127.0.0.1", seen
    assert seen.header(b"x-forwarded-proto") == b"https"
    assert seen.header(b"x-forwarded-host") == b"app.test"


async def test_backend_refusing_is_502(nursery: trio.Nursery) -> None:
    gateway = await start_gateway(nursery, [route("/", Address(LOOPBACK, unused_port()))])

    reply = await fetch(gateway, "GET", "/")

    assert reply.status == 502
    assert b"cannot connect" in reply.body


async def test_refused_request_is_retried_on_another_backend(nursery: trio.Nursery) -> None:
    good = await start_backend(nursery, "good")
    dead = Address(LOOPBACK, unused_port())
    # Ejected for ten minutes: not tried again however slowly the four requests go.
    gateway = await start_gateway(nursery, [route("/", dead, good.address)], timeouts={"eject": 600.0})

    replies = [await fetch(gateway, "GET", "/") for _ in range(4)]

    assert [r.status for r in replies] == [200] * 4
    assert len(good.seen) == 4
    dead_state = gateway.registry.states[dead]
    assert dead_state.failures == 1  # tried once, then out of rotation
    assert not dead_state.is_up(trio.current_time() * 0 + __import__("time").monotonic())


async def test_all_backends_out_of_rotation_is_503(nursery: trio.Nursery) -> None:
    dead = Address(LOOPBACK, unused_port())
    gateway = await start_gateway(nursery, [route("/", dead)], timeouts={"eject": 600.0})  # still out at the second

    first = await fetch(gateway, "GET", "/")
    second = await fetch(gateway, "GET", "/")

    assert first.status == 502
    assert second.status == 503
    assert b"out of rotation" in second.body


async def test_least_outstanding_requests(nursery: trio.Nursery) -> None:
    release = trio.Event()

    async def slow(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        if seen.target == b"/slow":
            await release.wait()
        await exchange.respond(200, backend.name.encode())

    a, b = await start_backend(nursery, "a", slow), await start_backend(nursery, "b", slow)
    gateway = await start_gateway(nursery, [route("/", a, b)])
    slow_client = await Client.connect(gateway)
    await slow_client.send(h11.Request(method="GET", target="/slow", headers=[("host", "x")]), h11.EndOfMessage())
    await trio.sleep(0.2)
    busy = "a" if a.seen else "b"

    quick = [(await fetch(gateway, "GET", "/quick")).body.decode() for _ in range(4)]

    assert set(quick) == {"ab".replace(busy, "")}
    release.set()
    assert (await slow_client.read_reply()).body.decode() == busy
    await slow_client.aclose()


async def test_backend_that_stalls_is_504(nursery: trio.Nursery) -> None:
    async def stall(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await trio.sleep_forever()

    backend = await start_backend(nursery, handler=stall)
    gateway = await start_gateway(nursery, [route("/", backend)], timeouts={"response_head": 0.3})

    reply = await fetch(gateway, "GET", "/")

    assert reply.status == 504


async def test_backend_dying_mid_response_closes_the_client_connection(nursery: trio.Nursery) -> None:
    async def die(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.send(h11.Response(status_code=200, headers=[(b"content-length", b"1000")]),
                            h11.Data(data=b"x" * 100))
        await trio.aclose_forcefully(exchange.stream)

    backend = await start_backend(nursery, handler=die)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await Client.connect(gateway)
    await client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]), h11.EndOfMessage())

    response = await client.next_event()
    assert response.status_code == 200
    received = b""
    with trio.fail_after(5):
        try:
            while True:
                event = await client.next_event()
                assert type(event) is h11.Data, event
                received += event.data
        except h11.RemoteProtocolError as error:
            assert "incomplete" in str(error) or "closed" in str(error)
    assert received == b"x" * 100


async def test_chunked_backend_dying_never_ends_the_chunked_body(nursery: trio.Nursery) -> None:
    async def die(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.send(h11.Response(status_code=200, headers=[]), h11.Data(data=b"part"))
        await trio.aclose_forcefully(exchange.stream)

    backend = await start_backend(nursery, handler=die)
    gateway = await start_gateway(nursery, [route("/", backend)])

    raw = await raw_exchange(gateway, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding: chunked" in raw.lower()
    assert b"part" in raw
    assert not raw.endswith(b"0\r\n\r\n")


async def test_close_delimited_response_is_rechunked(nursery: trio.Nursery) -> None:
    async def close_delimited(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.stream.send_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await trio.aclose_forcefully(exchange.stream)

    backend = await start_backend(nursery, handler=close_delimited)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await Client.connect(gateway)

    reply = await client.request("GET", "/")
    again = await client.request("GET", "/")  # the client connection stays usable

    assert reply.body == b"all of it" and again.body == b"all of it"
    assert reply.header(b"transfer-encoding") == b"chunked"
    await client.aclose()


async def test_chunked_upload_is_streamed(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await Client.connect(gateway)

    await client.send(h11.Request(method="POST", target="/", headers=[("host", "x"), ("transfer-encoding", "chunked")]))
    for _ in range(10):
        await client.send(h11.Data(data=b"y" * 10_000))
    await client.send(h11.EndOfMessage())
    reply = await client.read_reply()

    assert reply.json()["body_length"] == 100_000
    assert backend.seen[0].body == b"y" * 100_000
    await client.aclose()


async def test_expect_100_continue_end_to_end(nursery: trio.Nursery) -> None:
    async def continuing(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        raise AssertionError("not used")

    got_body = []

    async def handle(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        from ...helpers import _next

        request = await _next(conn, stream)
        assert request.headers and (b"expect", b"100-continue") in list(request.headers)
        await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        while True:
            event = await _next(conn, stream)
            if type(event) is h11.EndOfMessage:
                break
            got_body.append(event.data)
        await stream.send_all(conn.send(h11.Response(status_code=201, headers=[("content-length", "0")])))
        await stream.send_all(conn.send(h11.EndOfMessage()))

    gateway = await start_gateway(nursery, [route("/", await serve_raw(nursery, handle))])
    client = await Client.connect(gateway)

    await client.send(h11.Request(method="PUT", target="/", headers=[
        ("host", "x"), ("content-length", "5"), ("expect", "100-continue")]))
    with trio.fail_after(5):
        interim = await client.next_event()
    assert type(interim) is h11.InformationalResponse and interim.status_code == 100
    await client.send(h11.Data(data=b"hello"), h11.EndOfMessage())
    reply = await client.read_reply()

    assert reply.status == 201
    assert b"".join(got_body) == b"hello"
    await client.aclose()


async def test_websocket_style_upgrade_is_relayed_both_ways(nursery: trio.Nursery) -> None:
    async def handle(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        from ...helpers import _next

        request = await _next(conn, stream)
        assert (b"upgrade", b"websocket") in list(request.headers)
        assert await _next(conn, stream) == h11.EndOfMessage()
        await stream.send_all(conn.send(h11.InformationalResponse(
            status_code=101, headers=[("upgrade", "websocket"), ("connection", "Upgrade")])))
        await stream.send_all(b"server-hello")
        while data := await stream.receive_some(100):
            await stream.send_all(b"echo:" + data)

    gateway = await start_gateway(nursery, [route("/", await serve_raw(nursery, handle))])
    host, gport = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, gport)

    await stream.send_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    received = b""
    with trio.fail_after(5):
        while b"server-hello" not in received:
            received += await stream.receive_some(1000)
    assert received.startswith(b"HTTP/1.1 101 ")
    assert b"upgrade: websocket" in received.lower()
    await stream.send_all(b"ping")
    echoed = b""
    with trio.fail_after(5):
        while b"echo:ping" not in echoed:
            echoed += await stream.receive_some(1000)
    await stream.aclose()


def upgrading(after: Callable[[trio.SocketStream], Awaitable[None]]) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """A raw backend that switches protocols on any request, then runs `after` on the connection."""
    async def handle(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        from ...helpers import _next

        await _next(conn, stream)
        await _next(conn, stream)
        await stream.send_all(conn.send(h11.InformationalResponse(
            status_code=101, headers=[("upgrade", "x"), ("connection", "upgrade")])))
        await after(stream)

    return handle


async def test_a_busy_tunnel_outlives_the_response_head_timeout(nursery: trio.Nursery) -> None:
    # Regression: the tunnel ran inside the response-head deadline, so every
    # upgraded connection was cut after --response-timeout, busy or not.
    async def echo(stream: trio.SocketStream) -> None:
        while data := await stream.receive_some(100):
            await stream.send_all(b"echo:" + data)

    gateway = await start_gateway(nursery, [route("/", await serve_raw(nursery, upgrading(echo)))],
                                  timeouts={"response_head": 0.3})
    host, gport = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, gport)
    await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")
    received = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in received:
            received += await stream.receive_some(1000)
    assert received.startswith(b"HTTP/1.1 101 ")

    for i in range(8):  # 0.8 s of traffic: well past the 0.3 s response-head timeout
        await trio.sleep(0.1)
        await stream.send_all(b"m%d" % i)
        echoed = b""
        with trio.fail_after(5):
            while b"echo:m%d" % i not in echoed:
                data = await stream.receive_some(1000)
                assert data, f"the tunnel was closed after {i} messages"
                echoed += data
    await stream.aclose()


async def test_tunnel_idle_timeout_closes_it(nursery: trio.Nursery) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    gateway = await start_gateway(nursery, [route("/", await serve_raw(nursery, upgrading(silent)))],
                                  timeouts={"tunnel_idle": 0.3})

    raw = await raw_exchange(gateway, b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n")

    assert raw.startswith(b"HTTP/1.1 101 ")  # and then the gateway closed it: raw_exchange returned


async def test_max_body_by_content_length_is_413_before_the_backend(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], limits={"max_body": 10})

    raw = await raw_exchange(gateway, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")

    assert raw.startswith(b"HTTP/1.1 413 ")
    assert backend.seen == []


async def test_max_body_chunked_is_413_without_buffering(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery, read_body=False, handler=lambda b, s, e: trio.sleep_forever())
    gateway = await start_gateway(nursery, [route("/", backend)], limits={"max_body": 100})
    client = await Client.connect(gateway)

    await client.send(h11.Request(method="POST", target="/", headers=[("host", "x"), ("transfer-encoding", "chunked")]))
    await client.send(h11.Data(data=b"z" * 60))
    await client.send(h11.Data(data=b"z" * 60))
    with trio.fail_after(5):
        response = await client.next_event()

    assert response.status_code == 413
    await client.aclose()


async def test_head_not_finished_in_time_is_408(nursery: trio.Nursery) -> None:
    gateway = await start_gateway(nursery, [], timeouts={"request_head": 0.3})

    raw = await raw_exchange(gateway, b"GET / HTTP/1.1\r\nHost: x\r\n")

    assert raw.startswith(b"HTTP/1.1 408 ")


async def test_silent_connection_is_closed_without_a_word(nursery: trio.Nursery) -> None:
    gateway = await start_gateway(nursery, [], timeouts={"request_head": 0.3})

    assert await raw_exchange(gateway, b"") == b""


async def test_idle_keep_alive_connection_is_closed(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], timeouts={"keepalive": 0.3})
    client = await Client.connect(gateway)
    await client.request("GET", "/")

    with trio.fail_after(5):
        assert await client.stream.receive_some(10) == b""


async def test_limits_give_414_and_431(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(
        nursery, [route("/", backend)], limits={"max_target": 100, "max_headers": 5, "max_header_bytes": 1000}
    )

    long_target = await fetch(gateway, "GET", "/" + "a" * 100)
    many = await fetch(gateway, "GET", "/", headers=[(f"x-{i}", "1") for i in range(5)])
    large = await fetch(gateway, "GET", "/", headers=[("x-big", "b" * 1000)])

    assert (long_target.status, many.status, large.status) == (414, 431, 431)
    assert backend.seen == []


async def test_malformed_request_is_400_and_closed(nursery: trio.Nursery) -> None:
    gateway = await start_gateway(nursery, [])

    raw = await raw_exchange(gateway, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")

    assert raw.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in raw


async def test_unsupported_version_is_505_and_transfer_coding_501(nursery: trio.Nursery) -> None:
    gateway = await start_gateway(nursery, [])

    version = await raw_exchange(gateway, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")
    coding = await raw_exchange(gateway, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")

    assert version.startswith(b"HTTP/1.1 505 ")
    assert coding.startswith(b"HTTP/1.1 501 ")


async def test_table_swap_mid_request_keeps_the_snapshot(nursery: trio.Nursery) -> None:
    entered, release = trio.Event(), trio.Event()

    async def slow(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        entered.set()
        await release.wait()
        await exchange.respond(200, backend.name.encode())

    old, new = await start_backend(nursery, "old", slow), await start_backend(nursery, "new")
    gateway = await start_gateway(nursery, [route("/", old)])
    client = await Client.connect(gateway)
    await client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]), h11.EndOfMessage())
    await entered.wait()

    gateway.set_routes([route("/", new)])
    after_swap = await fetch(gateway, "GET", "/")
    release.set()
    in_flight = await client.read_reply()

    assert in_flight.body == b"old"
    assert after_swap.json()["backend"] == "new"
    await client.aclose()


async def test_backend_closing_an_idle_pooled_connection_is_retried(nursery: trio.Nursery) -> None:
    async def close_after(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.respond(200, b"ok")
        # The backend keeps the connection "alive", then drops it later,
        # as a keep-alive timeout would.
        async def drop_soon() -> None:
            await trio.sleep(0.1)
            await trio.aclose_forcefully(exchange.stream)
        trio.lowlevel.spawn_system_task(drop_soon)

    backend = await start_backend(nursery, handler=close_after)
    gateway = await start_gateway(nursery, [route("/", backend)])

    first = await fetch(gateway, "GET", "/")
    await trio.sleep(0.3)
    second = await fetch(gateway, "GET", "/")

    assert (first.status, second.status) == (200, 200)
    assert backend.connections == 2


async def test_max_connections_leaves_extra_ones_in_the_backlog(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], limits={"max_connections": 1})
    first = await Client.connect(gateway)
    await first.request("GET", "/")

    second = await Client.connect(gateway)  # the kernel completes the handshake (backlog)
    await second.send(h11.Request(method="GET", target="/", headers=[("host", "x")]), h11.EndOfMessage())
    with trio.move_on_after(0.5) as waited:
        await second.read_reply()
    assert waited.cancelled_caught  # not served while the first holds the only slot

    await first.aclose()
    with trio.fail_after(5):
        reply = await second.read_reply()
    assert reply.status == 200
    await second.aclose()


async def test_the_last_slot_goes_to_whichever_listener_has_a_connection(nursery: trio.Nursery) -> None:
    # Each listener's accept loop once held a slot while it waited: with two
    # listeners and one slot, a connection to the second waited for good.
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], limits={"max_connections": 1},
                                  listen=(Address(LOOPBACK, 0), Address(LOOPBACK, 0)))
    # Twice each: whichever loop held the slot, the other listener's second connection starved.
    for host, port in [gateway.addresses[0]] * 2 + [gateway.addresses[1]] * 2:
        client = Client(await trio.open_tcp_stream(host, port))
        with trio.fail_after(5):
            assert (await client.request("GET", "/")).status == 200
        await client.aclose()


async def test_drain_finishes_in_flight_and_closes_idle(nursery: trio.Nursery) -> None:
    entered, release = trio.Event(), trio.Event()

    async def slow(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        if seen.target == b"/slow":
            entered.set()
            await release.wait()
        await exchange.respond(200, b"done")

    backend = await start_backend(nursery, handler=slow)
    gateway = await start_gateway(nursery, [route("/", backend)])
    idle = await Client.connect(gateway)
    await idle.request("GET", "/quick")
    busy = await Client.connect(gateway)
    await busy.send(h11.Request(method="GET", target="/slow", headers=[("host", "x")]), h11.EndOfMessage())
    await entered.wait()

    async with trio.open_nursery() as inner:
        inner.start_soon(gateway.drain)
        with trio.fail_after(5):
            assert await idle.stream.receive_some(10) == b""  # idle: closed at once
        release.set()
        reply = await busy.read_reply()
    assert reply.status == 200 and reply.body == b"done"
    assert reply.header(b"connection") == b"close"
    host, port = gateway.addresses[0]
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError:
        pass  # refused: not listening any more
    else:
        with trio.fail_after(5):
            assert await stream.receive_some(10) == b""
        await stream.aclose()


async def test_client_leaving_mid_upload_frees_the_backend_and_the_gateway_carries_on(
    nursery: trio.Nursery,
) -> None:
    closed = trio.Event()

    async def reader(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        try:
            while await exchange.stream.receive_some(1000):
                pass
        except trio.BrokenResourceError:
            pass
        closed.set()

    slow = await start_backend(nursery, "slow", reader, read_body=False)
    other = await start_backend(nursery, "other")
    gateway = await start_gateway(nursery, [route("/up", slow), route("/", other)])
    client = await Client.connect(gateway)
    await client.send(h11.Request(method="POST", target="/up", headers=[("host", "x"), ("content-length", "1000")]))
    await client.send(h11.Data(data=b"a" * 10))
    await trio.sleep(0.1)

    await client.aclose()

    with trio.fail_after(5):
        await closed.wait()  # the gateway closed its backend connection too
    assert (await fetch(gateway, "GET", "/")).status == 200


async def test_non_idempotent_request_on_a_dead_pooled_connection_is_not_retried(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.gateway import _upstream

    import socket

    from proxy.engine import _upstream as native_upstream

    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    assert (await fetch(gateway, "GET", "/")).status == 200
    state = gateway.registry.states[backend.address]
    # A connection the backend has already dropped, that still looks alive.
    if gateway.engine is None:  # the trio path's pool
        conn, _ = state.idle[0]
        await trio.aclose_forcefully(conn.stream)
        monkeypatch.setattr(_upstream, "_looks_alive", lambda conn: True)
    else:  # the engine's: its pool closes what epoll reports, unless told not to
        monkeypatch.setattr(native_upstream.Pools, "ready", lambda self, fd, mask: None)
        [pooled] = gateway.engine.pools.idle_of(state)
        pooled.sock.shutdown(socket.SHUT_RDWR)

    reply = await fetch(gateway, "POST", "/")

    assert reply.status == 502
    assert len(backend.seen) == 1


async def test_sigterm_with_100_in_flight_and_idle_keep_alives(nursery: trio.Nursery) -> None:
    release = trio.Event()

    async def slow(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        if seen.target.startswith(b"/slow"):
            await release.wait()
        await exchange.respond(200, b"ok")

    backend = await start_backend(nursery, handler=slow)
    gateway = await start_gateway(nursery, [route("/", backend)], timeouts={"drain": 10.0})
    idle = [await Client.connect(gateway) for _ in range(20)]
    for client in idle:
        await client.request("GET", "/warm")
    busy = [await Client.connect(gateway) for _ in range(100)]
    for i, client in enumerate(busy):
        await client.send(h11.Request(method="GET", target=f"/slow/{i}", headers=[("host", "x")]), h11.EndOfMessage())
    with trio.fail_after(10):
        while len([s for s in backend.seen if s.target.startswith(b"/slow")]) < 100:
            await trio.sleep(0.01)

    replies = []
    async with trio.open_nursery() as inner:
        inner.start_soon(gateway.drain)
        with trio.fail_after(5):
            for client in idle:
                assert await client.stream.receive_some(10) == b""  # idle ones: closed
        release.set()
        for client in busy:
            replies.append(await client.read_reply())

    assert [r.status for r in replies] == [200] * 100
    assert all(r.header(b"connection") == b"close" for r in replies)


async def test_a_backend_that_resets_before_its_head_is_502_and_a_post_is_not_retried(
    nursery: trio.Nursery,
) -> None:
    import socket as stdlib_socket
    import struct

    async def reset(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        sock = exchange.stream.socket
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_LINGER, struct.pack("ii", 1, 0))
        exchange.stream.socket.close()  # RST

    backend = await start_backend(nursery, handler=reset)
    gateway = await start_gateway(nursery, [route("/", backend)])

    reply = await fetch(gateway, "POST", "/", body=b"data")

    assert reply.status == 502
    assert len(backend.seen) == 1


async def test_a_backend_that_resets_every_request_leaves_rotation_and_every_get_is_answered(
    nursery: trio.Nursery,
) -> None:
    import time

    from proxy.routing._pool import ERROR_LIMIT

    bad = await start_backend(nursery, "bad", handler=reset)
    good = await start_backend(nursery, "good")
    # Ejected for as long as the test needs to see it so.
    gateway = await start_gateway(nursery, [route("/", bad, good)], timeouts={"eject": 3600.0})

    replies = [await fetch(gateway, "GET", f"/{i}") for i in range(60)]

    assert [reply.status for reply in replies] == [200] * 60
    assert {reply.json()["backend"] for reply in replies} == {"good"}
    assert len(bad.seen) == ERROR_LIMIT  # then out of rotation
    assert gateway.registry.states[bad.address].status(time.monotonic()) == "ejected"


async def test_a_get_whose_only_backend_resets_waits_for_it_to_leave_and_goes_to_the_next(
    nursery: trio.Nursery,
) -> None:
    # docker stop of a server that exits at once on SIGTERM: the reset comes a
    # moment before the watcher sees the stop; the request waits for that.
    dying = await start_backend(nursery, "dying", handler=reset)
    new = await start_backend(nursery, "new")
    # A route of containers (Docker's): its backends leave the table by themselves.
    gateway = await start_gateway(nursery, [replace(route("/", dying), source="docker:label")],
                                  discovery=Discovery(hold=3600.0))

    async def recreated() -> None:
        while not dying.seen:
            await trio.sleep(0.001)
        gateway.set_routes([replace(route("/", new), source="docker:label")])

    nursery.start_soon(recreated)
    gateway.stats = Stats()
    with trio.fail_after(30):  # a bound only a hang reaches: the wait ends when the table changes
        reply = await fetch(gateway, "GET", "/")

    assert (reply.status, reply.json()["backend"]) == (200, "new")
    assert len(dying.seen) == 1 and len(new.seen) == 1
    assert gateway.stats.backend_failures == {"/": 1}  # counted once, on whichever path it failed


async def test_a_get_whose_only_backend_resets_is_502_when_it_is_not_a_container(nursery: trio.Nursery) -> None:
    # A static backend does not leave the table, and there is no other to send it to.
    backend = await start_backend(nursery, handler=reset)
    gateway = await start_gateway(nursery, [route("/", backend)])

    reply = await fetch(gateway, "GET", "/")

    assert reply.status == 502
    assert len(backend.seen) == 1


async def test_a_response_clears_the_failures_that_would_eject_its_backend(nursery: trio.Nursery) -> None:
    from proxy.routing._pool import ERROR_LIMIT

    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    assert (await fetch(gateway, "GET", "/")).status == 200  # a connection to pool (the engine's cycle takes it)
    state = gateway.registry.states[backend.address]
    state.errors = ERROR_LIMIT - 1  # one failure short of out

    assert (await fetch(gateway, "GET", "/")).status == 200

    assert state.errors == 0


async def test_a_get_on_a_pooled_connection_the_backend_resets_is_retried_on_a_new_one(
    nursery: trio.Nursery,
) -> None:
    import socket as stdlib_socket
    import struct

    requests: dict[int, int] = {}

    async def reset_the_second(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        key = id(exchange.stream)
        requests[key] = requests.get(key, 0) + 1
        if requests[key] == 2:  # the pooled connection's next request: reset before a byte of answer
            sock = exchange.stream.socket
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            return
        await exchange.respond(200, b"ok")

    backend = await start_backend(nursery, handler=reset_the_second)
    gateway = await start_gateway(nursery, [route("/", backend)])

    assert (await fetch(gateway, "GET", "/one")).status == 200
    reply = await fetch(gateway, "GET", "/two")

    assert (reply.status, reply.body) == (200, b"ok")
    assert [seen.target for seen in backend.seen] == [b"/one", b"/two", b"/two"]
    assert backend.connections == 2


@pytest.mark.parametrize(("idle", "connections"), [(0, 3), (1, 1)])
async def test_the_idle_backend_connections_kept_are_at_most_max_idle_upstream(
    nursery: trio.Nursery, idle: int, connections: int
) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], limits={"max_idle_upstream": idle})
    for _ in range(3):
        assert (await fetch(gateway, "GET", "/")).status == 200
    assert backend.connections == connections


async def test_past_max_idle_upstream_a_backend_connection_closes_after_its_exchange(nursery: trio.Nursery) -> None:
    gates = [trio.Event(), trio.Event()]

    async def held(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await gates[int(seen.target[1:])].wait()
        await exchange.respond(200, b"ok")

    backend = await start_backend(nursery, handler=held)
    gateway = await start_gateway(nursery, [route("/", backend)], limits={"max_idle_upstream": 2})

    async def burst(n: int, gate: int) -> list[int]:
        replies: list[int] = []

        async def one() -> None:
            replies.append((await fetch(gateway, "GET", f"/{gate}")).status)

        async with trio.open_nursery() as inner:
            for _ in range(n):
                inner.start_soon(one)
            with trio.fail_after(5):
                while len([s for s in backend.seen if s.target == b"/%d" % gate]) < n:
                    await trio.sleep(0.01)
            gates[gate].set()
        return replies

    assert await burst(4, 0) == [200] * 4  # four at once: four connections
    assert backend.connections == 4
    assert await burst(3, 1) == [200] * 3  # two of them were kept: one more is opened
    assert backend.connections == 5


@pytest.mark.parametrize("when", ["before_the_response", "after_it"])
async def test_a_client_that_half_closes_gets_its_answer_then_the_close_at_once(
    nursery: trio.Nursery, when: str
) -> None:
    # `printf 'GET ...' | nc`: the request, then the client's write side
    # shut. The answer goes out, then the gateway closes, not a keep-alive
    # timeout (60 s here) later.
    gate = trio.Event()

    async def answer(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await gate.wait()
        await exchange.respond(200, b"ok")

    backend = await start_backend(nursery, handler=answer)
    gateway = await start_gateway(nursery, [route("/", backend)], timeouts={"keepalive": 60.0})
    host, port = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    try:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        if when == "before_the_response":
            await stream.send_eof()
            await trio.sleep(0.1)  # the gateway sees the EOF while the backend holds its answer
            gate.set()
        else:
            gate.set()
            with trio.fail_after(5):
                while not (await stream.receive_some(65536)).endswith(b"ok"):
                    pass
            await stream.send_eof()
        received = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                received += chunk
    finally:
        await stream.aclose()
    if when == "before_the_response":
        assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"ok")


async def test_a_blackholed_connect_times_out_as_502(nursery: trio.Nursery) -> None:
    with blackhole() as address:
        gateway = await start_gateway(nursery, [route("/", address)], timeouts={"connect": 0.5})
        with trio.fail_after(5):
            reply = await fetch(gateway, "GET", "/")
    assert reply.status == 502 and b"timed out" in reply.body


async def test_slowloris_clients_do_not_stop_normal_ones(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], timeouts={"request_head": 2.0})
    host, port = gateway.addresses[0]
    slow = []
    for i in range(1000):  # bounded: 1,000 connections, each a few bytes of a head
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-%d: " % i)
        slow.append(stream)
    try:
        statuses = [(await fetch(gateway, "GET", f"/normal/{i}")).status for i in range(20)]
        assert statuses == [200] * 20
        with trio.fail_after(10):  # the head deadline fires for every slow one
            for stream in slow:
                data = b""
                while chunk := await stream.receive_some(1000):
                    data += chunk
                assert data.startswith(b"HTTP/1.1 408 ")
    finally:
        for stream in slow:
            await trio.aclose_forcefully(stream)


@pytest.mark.parametrize("framing", [
    pytest.param((b"content-length", b"%d" % (1 << 30)), id="spliced"),  # 1 GiB announced
    pytest.param((b"transfer-encoding", b"chunked"), id="chunked"),  # the path that is not spliced
])
async def test_a_client_that_stops_reading_is_cut_off_and_frees_the_backend(
    nursery: trio.Nursery, framing: tuple[bytes, bytes]
) -> None:
    finished = trio.Event()

    async def endless(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.send(h11.Response(status_code=200, headers=[framing]))
        try:
            while True:  # the client reads none of it
                await exchange.send(h11.Data(data=b"x" * 65536))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            finished.set()

    backend = await start_backend(nursery, handler=endless)
    gateway = await start_gateway(nursery, [route("/", backend)], timeouts={"body_idle": 0.5})
    host, port = gateway.addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read

    with trio.fail_after(10):
        await finished.wait()  # the gateway gave up on the slow reader and closed the backend side
    await trio.aclose_forcefully(stream)


@pytest.mark.parametrize(("framing", "size"), [
    pytest.param(b"transfer-encoding", 20 * 1000, id="chunked"),
    pytest.param(b"content-length", 1200 * 1024, id="spliced"),
])
async def test_a_slow_steady_body_outlives_the_body_timeout(nursery: trio.Nursery, framing: bytes, size: int) -> None:
    # The body timeout is for no progress, not for the whole body: a body
    # that keeps coming for 2 s passes a 0.4 s timeout, spliced or not.
    pieces = 20

    async def steady(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        header = b"chunked" if framing == b"transfer-encoding" else b"%d" % size
        await exchange.send(h11.Response(status_code=200, headers=[(framing, header)]))
        for _ in range(pieces):
            await trio.sleep(0.1)
            await exchange.send(h11.Data(data=b"y" * (size // pieces)))
        await exchange.send(h11.EndOfMessage())

    backend = await start_backend(nursery, handler=steady)
    gateway = await start_gateway(nursery, [route("/", backend)], timeouts={"body_idle": 0.4})

    reply = await fetch(gateway, "GET", "/")

    assert reply.status == 200 and len(reply.body) == size


async def test_a_body_trickling_in_below_chunk_granularity_outlives_the_body_timeout(nursery: trio.Nursery) -> None:
    # Bytes that complete no chunk (a chunk-size line arriving a byte at a
    # time) are progress too: each read gets the whole body timeout.
    async def handle(stream: trio.SocketStream) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += await stream.receive_some(1000)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for byte in b"00000000005\r\n":
            await trio.sleep(0.1)
            await stream.send_all(bytes([byte]))
        await stream.send_all(b"hello\r\n0\r\n\r\n")
        await trio.sleep(1)

    gateway = await start_gateway(nursery, [route("/", await serve_raw(nursery, handle))], timeouts={"body_idle": 0.4})

    reply = await fetch(gateway, "GET", "/")

    assert (reply.status, reply.body) == (200, b"hello")


async def test_a_request_connecting_to_a_backend_that_leaves_is_routed_again(nursery: trio.Nursery) -> None:
    # The old backend blackholes connects, like a container that died
    # without a word; the table then moves the route elsewhere.
    with blackhole() as address:
        new = await start_backend(nursery, "new")
        gateway = await start_gateway(nursery, [route("/", address)], timeouts={"connect": 60.0})
        replies = []

        async def request() -> None:
            replies.append(await fetch(gateway, "GET", "/x"))

        async with trio.open_nursery() as inner:
            inner.start_soon(request)
            await trio.sleep(0.3)  # it is waiting on the blackholed connect now
            gateway.set_routes([replace(route("/", new), source="docker:label")])
            with trio.fail_after(10):  # far less than the 60 s connect timeout
                while not replies:
                    await trio.sleep(0.01)

    assert replies[0].status == 200 and replies[0].json()["backend"] == "new"
