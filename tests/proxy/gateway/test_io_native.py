# The two --io paths. The suite runs on the native engine (the default);
# the gateway's socket-level tests run again on the trio path, the general
# path and the reference, as test_parser_h11.py runs them with h11: a child
# pytest with FASTROUTE_TEST_IO=trio, which tests/helpers.make_config reads.
# The tests below check in process that the engine is the one that serves,
# and what it hands back to the trio path, and that io="trio" has no engine,
# so a run that silently used the other path would fail.

from __future__ import annotations

import os

import trio

from ...h2_support import H2Client
from ...helpers import fetch, rerun_tests, route, start_backend, start_gateway

MODULES = ["gateway/test_gateway.py", "gateway/test_hardening.py", "gateway/test_h2.py", "gateway/test_h2_clients.py",
           "gateway/test_h2_differential.py", "gateway/test_splice.py",
           "gateway/test_connection_fuzz.py", "gateway/test_continuity.py", "gateway/test_upstream.py",
           "tls/test_gateway_tls.py", "admin/test_admin.py", "gateway/test_health_checks.py", "gateway/test_gateway_docker.py",
           "discovery/test_docker_discovery.py", "discovery/test_continuity_docker.py", "discovery/test_wake.py"]


def test_the_gateway_tests_pass_on_the_trio_path() -> None:
    result = rerun_tests(MODULES, {"FASTROUTE_TEST_IO": "trio"}, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout, result.stdout[-2000:]
    if os.environ.get("FASTROUTE_REQUIRE_DOCKER", "") not in ("", "0"):
        assert " skipped" not in result.stdout, result.stdout[-2000:]


async def test_the_engine_serves_the_steady_state_and_hands_the_rest_back(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native")
    assert gateway.engine is not None

    for _ in range(3):
        assert (await fetch(gateway, "GET", "/x")).status == 200
    assert (gateway.engine.served, gateway.engine.handed_back, gateway.engine.laned) == (3, 0, 3)

    # A request with a body, OPTIONS *, an upgrade: the trio path's.
    assert (await fetch(gateway, "POST", "/x", body=b"abc")).status == 200
    assert (await fetch(gateway, "OPTIONS", "*")).status == 200
    assert gateway.engine.handed_back == 2
    assert [seen.body for seen in backend.seen] == [b"", b"", b"", b"abc"]


async def test_io_trio_serves_without_the_engine(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)], io="trio")
    assert gateway.engine is None
    assert (await fetch(gateway, "GET", "/x")).status == 200


async def test_a_request_no_route_matches_goes_to_the_trio_path(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/a", backend)], io="native")
    assert gateway.engine is not None

    assert (await fetch(gateway, "GET", "/b")).status == 404
    assert (gateway.engine.served, gateway.engine.handed_back) == (0, 1)


async def test_the_engine_serves_http2_streams_and_hands_the_rest_to_stream_tasks(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/a", backend)], io="native")
    assert gateway.engine is not None

    client = await H2Client.connect(gateway.addresses[0])
    try:
        assert (await client.request("GET", "/a/x")).status == 200
        assert (await client.request("GET", "/a/y")).status == 200
        assert (gateway.engine.served, gateway.engine.handed_back) == (2, 0)
        # A body, a miss: the trio path's, in a task on the same connection.
        assert (await client.request("POST", "/a/z", [("content-length", "3")], body=b"abc")).status == 200
        assert (await client.request("GET", "/b")).status == 404
        assert (gateway.engine.served, gateway.engine.handed_back) == (2, 2)
        assert (await client.request("GET", "/a/w")).status == 200
    finally:
        await client.aclose()
    assert gateway.engine.served == 3
    assert [seen.body for seen in backend.seen] == [b"", b"", b"abc", b""]
    assert (await fetch(gateway, "GET", "/a/z")).status == 200  # HTTP/1.1 alongside
    assert gateway.engine.served == 4
