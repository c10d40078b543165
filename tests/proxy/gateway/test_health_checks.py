# Active health checks in a running gateway (gateway/_health.py): a backend
# whose check fails leaves rotation with no client request sent to it (it
# still answers every other path, so no request would have found it down),
# and returns once it passes; the tasks follow the table. Both I/O paths
# (test_io_native.py reruns this module with the trio path).

from __future__ import annotations

import pytest
import trio

from proxy._config import HealthCheck, Route
from proxy.routing._health import FALL

from ...helpers import Backend, BackendExchange, Seen, fetch, start_backend, start_gateway

pytestmark = pytest.mark.usefixtures("clients_closed")

CHECK = HealthCheck("/healthz", interval=0.05, timeout=0.05)


class Health:
    """A backend's /healthz answer, which the test flips."""

    def __init__(self) -> None:
        self.status = 200

    async def handler(self, backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        if seen.target == b"/healthz":
            await exchange.respond(self.status, b"health")
        else:
            await exchange.respond(200, backend.name.encode())


def served(backend: Backend) -> int:
    return sum(1 for seen in backend.seen if seen.target != b"/healthz")


def checked(backend: Backend) -> int:
    return sum(1 for seen in backend.seen if seen.target == b"/healthz")


async def test_a_backend_failing_its_check_leaves_before_a_request_finds_it_and_returns(
    nursery: trio.Nursery,
) -> None:
    good_health, bad_health = Health(), Health()
    good = await start_backend(nursery, "good", good_health.handler)
    bad = await start_backend(nursery, "bad", bad_health.handler)
    gateway = await start_gateway(nursery, [Route("/h", (good.address, bad.address), check=CHECK)])
    state = gateway.registry.states[bad.address]
    with trio.fail_after(5):
        while checked(bad) < 2 or checked(good) < 2:  # both checked, at once and every interval
            await trio.sleep(0.01)
    bodies = {(await fetch(gateway, "GET", "/h/x")).body for _ in range(6)}
    assert bodies == {b"good", b"bad"}

    bad_health.status = 503
    with trio.fail_after(5):
        while not state.check_down:
            await trio.sleep(0.01)
    assert checked(bad) >= FALL
    before = served(bad)
    replies = [await fetch(gateway, "GET", "/h/x") for _ in range(20)]
    assert [r.status for r in replies] == [200] * 20 and {r.body for r in replies} == {b"good"}
    assert served(bad) == before  # no client request reached it

    bad_health.status = 200
    with trio.fail_after(5):
        while state.check_down:
            await trio.sleep(0.01)
    bodies = {(await fetch(gateway, "GET", "/h/x")).body for _ in range(6)}
    assert bodies == {b"good", b"bad"}


async def test_every_backend_failing_gets_503_and_the_checks_follow_the_table(nursery: trio.Nursery) -> None:
    health = Health()
    health.status = 500
    backend = await start_backend(nursery, "only", health.handler)
    gateway = await start_gateway(nursery, [Route("/h", (backend.address,), check=CHECK)])
    state = gateway.registry.states[backend.address]
    with trio.fail_after(5):
        while not state.check_down:
            await trio.sleep(0.01)
    reply = await fetch(gateway, "GET", "/h/x")
    assert reply.status == 503 and reply.header(b"retry-after") == b"5"
    # The route drops its check: checks stop, and the backend is a new state in rotation.
    gateway.set_routes([Route("/h", (backend.address,))])
    await trio.sleep(0.1)
    count = checked(backend)
    await trio.sleep(0.3)
    assert checked(backend) == count
    assert (await fetch(gateway, "GET", "/h/x")).status == 200
