# The admin listener: /routes, /healthz, /metrics, /events and the status
# page, in process against real sockets; metric values after a known
# sequence of requests.

from __future__ import annotations

import json
from typing import Any

import h11
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from proxy.admin._server import AdminServer
from proxy._config import Address
from proxy.routing._stats import Stats
from proxy.gateway._server import Gateway

from ...h2_support import H2Client
from ...helpers import (
    Backend, BackendExchange, Client, Seen, blackhole, fetch, make_config, reset, route, start_backend, start_gateway,
)

pytestmark = pytest.mark.usefixtures("clients_closed")


async def start_admin(nursery: trio.Nursery, gateway: Gateway) -> AdminServer:
    gateway.stats = Stats()
    admin = AdminServer(gateway, Address("127.0.0.1", 0))
    await nursery.start(admin.serve)
    return admin


async def admin_get(admin: AdminServer, path: str, method: str = "GET") -> tuple[int, dict[bytes, bytes], bytes]:
    host, port = admin.addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    conn = h11.Connection(h11.CLIENT)
    await stream.send_all(conn.send(h11.Request(method=method, target=path, headers=[("host", "admin")])))
    await stream.send_all(conn.send(h11.EndOfMessage()))
    status, headers, body = 0, {}, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
        elif type(event) is h11.Response:
            status, headers = event.status_code, dict(event.headers)
        elif type(event) is h11.Data:
            body += event.data
        else:
            break
    await stream.aclose()
    return status, headers, body


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def slow(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
    await trio.sleep(0.5)
    await exchange.respond(200, b"slow")


async def test_metrics_after_a_known_sequence_of_requests(nursery: trio.Nursery) -> None:
    fast = await start_backend(nursery, "fast")
    resetting = await start_backend(nursery, "reset", handler=reset)
    with blackhole() as unreachable:
        refused = Address("127.0.0.1", 9)  # nothing listens on the discard port
        gateway = await start_gateway(nursery, [route("/a", fast), route("/down", refused),
                                                route("/hang", unreachable), route("/reset", resetting)],
                                      timeouts={"connect": 0.2, "eject": 0.01})
        admin = await start_admin(nursery, gateway)
        for _ in range(3):
            assert (await fetch(gateway, "GET", "/a/x")).status == 200
        assert (await fetch(gateway, "GET", "/nowhere")).status == 404
        assert (await fetch(gateway, "GET", "/down/")).status == 502
        assert (await fetch(gateway, "GET", "/hang/")).status == 502
        assert (await fetch(gateway, "GET", "/reset/")).status == 502  # no other backend to send it to

        status, headers, body = await admin_get(admin, "/metrics")

    assert status == 200 and headers[b"content-type"].startswith(b"text/plain; version=0.0.4")
    m = samples(body)
    assert m[("fastroute_requests_total", (("route", "/a"), ("status_class", "2xx")))] == 3
    assert m[("fastroute_requests_total", (("route", ""), ("status_class", "4xx")))] == 1
    assert m[("fastroute_requests_total", (("route", "/down"), ("status_class", "5xx")))] == 1
    assert m[("fastroute_request_duration_seconds_count", (("route", "/a"),))] == 3
    assert m[("fastroute_request_duration_seconds_bucket", (("le", "+Inf"), ("route", "/a")))] == 3
    assert m[("fastroute_upstream_connect_errors_total", (("route", "/down"),))] == 1
    assert m[("fastroute_upstream_timeouts_total", (("phase", "connect"), ("route", "/hang")))] == 1
    assert m[("fastroute_upstream_failures_total", (("route", "/reset"),))] == 1
    assert ("fastroute_upstream_failures_total", (("route", "/a"),)) not in m
    assert m[("fastroute_table_swaps_total", ())] == 1
    assert m[("fastroute_upstream_connections", (("state", "idle"),))] == 1  # the pooled one to /a
    assert m[("fastroute_wake_starts_total", ())] == 0


async def test_routes_show_backends_in_flight_and_sources(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery, "slow", slow)
    gateway = await start_gateway(nursery, [route("/s", backend, strip=True)])
    admin = await start_admin(nursery, gateway)
    results: list[int] = []

    async def one() -> None:
        results.append((await fetch(gateway, "GET", "/s/")).status)

    nursery.start_soon(one)
    with trio.fail_after(5):
        while backend.seen == []:
            await trio.sleep(0.01)
    status, headers, body = await admin_get(admin, "/routes")
    document = json.loads(body)

    assert status == 200 and headers[b"content-type"] == b"application/json"
    [entry] = document["routes"]
    assert entry["prefix"] == "/s" and entry["source"] == "static" and entry["strip_prefix"] is True
    assert entry["backends"] == [{"address": str(backend.address), "container": None, "state": "up",
                                  "retry_in": None, "last_check": None, "down_for": None,
                                  "in_flight": 1, "in_flight_all_routes": 1,
                                  "idle_connections": 0, "failures": 0}]
    with trio.fail_after(5):
        while not results:
            await trio.sleep(0.01)
    document = json.loads((await admin_get(admin, "/routes"))[2])
    assert document["routes"][0]["requests"] == 1 and document["routes"][0]["backends"][0]["in_flight"] == 0


async def held(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
    if seen.target.endswith(b"/hold"):
        await backend.release.wait()  # type: ignore[attr-defined]
    await exchange.respond(200, b"ok")


async def test_in_flight_is_per_route_when_routes_share_a_backend(nursery: trio.Nursery) -> None:
    # Three routes to one backend, one request in flight on /a: only /a shows it.
    backend = await start_backend(nursery, "shared", held)
    backend.release = trio.Event()  # type: ignore[attr-defined]
    gateway = await start_gateway(nursery, [route("/a", backend), route("/b", backend), route("/c", backend)])
    admin = await start_admin(nursery, gateway)
    client = await Client.connect(gateway)
    assert (await client.request("GET", "/a/first")).status == 200  # then the same connection again:
    nursery.start_soon(client.request, "GET", "/a/hold")  # the native engine's compiled cycle serves this one

    def in_flight(document: dict[str, Any]) -> dict[str, tuple[int, int]]:
        return {r["prefix"]: (r["backends"][0]["in_flight"], r["backends"][0]["in_flight_all_routes"])
                for r in document["routes"]}

    with trio.fail_after(5):
        while len(backend.seen) < 2:
            await trio.sleep(0.01)
    document = json.loads((await admin_get(admin, "/routes"))[2])
    assert in_flight(document) == {"/a": (1, 1), "/b": (0, 1), "/c": (0, 1)}
    backend.release.set()  # type: ignore[attr-defined]
    with trio.fail_after(5):
        while any(in_flight(json.loads((await admin_get(admin, "/routes"))[2]))["/a"]):
            await trio.sleep(0.01)
    assert gateway.registry.states[backend.address].in_flight == {}


async def test_a_backend_that_left_its_route_shows_draining_while_its_requests_finish(nursery: trio.Nursery) -> None:
    leaving = await start_backend(nursery, "leaving", held)
    leaving.release = trio.Event()  # type: ignore[attr-defined]
    staying = await start_backend(nursery, "staying")
    gateway = await start_gateway(nursery, [route("/d", leaving)])
    admin = await start_admin(nursery, gateway)
    nursery.start_soon(fetch, gateway, "GET", "/d/hold")
    with trio.fail_after(5):
        while not leaving.seen:
            await trio.sleep(0.01)
    gateway.set_routes([route("/d", staying)])  # its container stopped: out of the table

    def states(document: dict[str, Any]) -> list[tuple[str, str, int]]:
        return [(b["address"], b["state"], b["in_flight"]) for b in document["routes"][0]["backends"]]

    document = json.loads((await admin_get(admin, "/routes"))[2])
    assert states(document) == [(str(staying.address), "up", 0), (str(leaving.address), "draining", 1)]
    leaving.release.set()  # type: ignore[attr-defined]
    with trio.fail_after(5):
        while len(states(json.loads((await admin_get(admin, "/routes"))[2]))) != 1:
            await trio.sleep(0.01)


async def test_healthz_is_200_while_serving_and_503_while_starting_or_draining(nursery: trio.Nursery) -> None:
    gateway = Gateway(make_config())
    await gateway.bind()  # as serve does, until its routes are known
    admin = await start_admin(nursery, gateway)
    status, _, body = await admin_get(admin, "/healthz")
    assert status == 503 and json.loads(body)["status"] == "starting"
    await nursery.start(gateway.serve)
    status, _, body = await admin_get(admin, "/healthz")
    assert status == 200 and json.loads(body) == {"status": "serving", "routes": 0, "docker": None}

    nursery.start_soon(gateway.drain)
    with trio.fail_after(5):
        while not gateway.draining:
            await trio.sleep(0.01)
    status, _, body = await admin_get(admin, "/healthz")
    assert status == 503 and json.loads(body)["status"] == "draining"


@pytest.mark.parametrize(("method", "path", "status"), [
    pytest.param("GET", "/", 200, id="page"),
    pytest.param("HEAD", "/routes", 200, id="head"),
    pytest.param("GET", "/events", 200, id="events_without_docker"),
    pytest.param("POST", "/routes", 405, id="post"),
    pytest.param("GET", "/admin", 404, id="unknown"),
])
async def test_admin_endpoints_and_methods(nursery: trio.Nursery, method: str, path: str, status: int) -> None:
    gateway = await start_gateway(nursery, [])
    admin = await start_admin(nursery, gateway)
    got, headers, body = await admin_get(admin, path, method)
    assert got == status
    if method == "HEAD":
        assert body == b"" and int(headers[b"content-length"]) > 0
    if path == "/":
        assert b"<title>fastroute</title>" in body and headers[b"content-type"].startswith(b"text/html")


async def test_metrics_cost_nothing_when_admin_is_off(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/a", backend)])
    assert gateway.stats is None
    assert (await fetch(gateway, "GET", "/a")).status == 200  # and nothing is counted anywhere



async def test_the_admin_front_merges_the_workers_and_leaves_out_one_that_does_not_answer(
    nursery: trio.Nursery, tmp_path: Any
) -> None:
    from proxy.admin._front import AdminFront

    backend = await start_backend(nursery)
    sockets = []
    for index in range(2):  # two gateways, as two --workers, each with its admin socket
        gateway = await start_gateway(nursery, [route("/a", backend)])
        gateway.stats = Stats()
        path = str(tmp_path / f"worker-{index}.sock")
        await nursery.start(AdminServer(gateway, None, unix_path=path).serve)
        sockets.append(path)
        for _ in range(index + 1):
            assert (await fetch(gateway, "GET", "/a")).status == 200
    front = AdminFront(Address("127.0.0.1", 0), [*sockets, str(tmp_path / "worker-gone.sock")])
    await nursery.start(front.serve)

    status, headers, body = await admin_get(front, "/metrics")
    assert status == 200 and headers[b"content-type"].startswith(b"text/plain; version=0.0.4")
    counts = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for family in text_string_to_metric_families(body.decode()) for s in family.samples}
    assert counts[("fastroute_requests_total", (("route", "/a"), ("status_class", "2xx")))] == 3
    status, _, body = await admin_get(front, "/routes")
    assert status == 200 and json.loads(body)["routes"][0]["requests"] == 3
    status, _, body = await admin_get(front, "/healthz")
    assert status == 503
    assert json.loads(body)["status"] == "degraded"
    assert json.loads(body)["workers"] == {"serving": 2, "total": 3}
    assert (await admin_get(front, "/events"))[0] == 200
    assert (await admin_get(front, "/nope"))[0] == 404
    assert (await admin_get(front, "/metrics", method="POST"))[0] == 405


async def test_peer_idle_for_asks_the_other_workers(nursery: trio.Nursery, tmp_path: Any) -> None:
    from proxy.admin._peers import peer_idle_for

    entered, release = trio.Event(), trio.Event()

    async def slow(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        if seen.target == b"/slow":
            entered.set()
            await release.wait()
        await exchange.respond(200, b"ok")

    backend = await start_backend(nursery, handler=slow)
    gateway = await start_gateway(nursery, [route("/", backend)])
    path = str(tmp_path / "worker-1.sock")
    await nursery.start(AdminServer(gateway, None, unix_path=path).serve)
    idle_for = peer_idle_for([path])

    assert await idle_for(backend.address) == float("inf")  # never used there
    assert await peer_idle_for([path, str(tmp_path / "gone.sock")])(backend.address) == 0.0  # one did not answer
    async with trio.open_nursery() as inner:
        inner.start_soon(fetch, gateway, "GET", "/slow")
        await entered.wait()
        assert await idle_for(backend.address) == 0.0  # in flight there
        release.set()
    await trio.sleep(0.2)
    assert 0.1 <= await idle_for(backend.address) < 5


async def test_requests_are_counted_by_protocol_in_metrics_routes_and_the_page(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/a", backend)])
    admin = await start_admin(nursery, gateway)
    client = await H2Client.connect(gateway.addresses[0])
    for _ in range(2):
        assert (await client.request("GET", "/a/x")).status == 200
    assert (await fetch(gateway, "GET", "/a/y")).status == 200

    m = samples((await admin_get(admin, "/metrics"))[2])
    assert m[("fastroute_requests_by_protocol_total", (("protocol", "HTTP/2"),))] == 2
    assert m[("fastroute_requests_by_protocol_total", (("protocol", "HTTP/1.1"),))] == 1
    routes = json.loads((await admin_get(admin, "/routes"))[2])
    assert routes["protocols"] == {"HTTP/1.1": 1, "HTTP/2": 2}
    page = (await admin_get(admin, "/"))[2].decode()
    assert 'data-item="protocols">HTTP/1.1 1 · HTTP/2 2<' in page
