# No request fails while backends or routes are not ready yet, in process:
# booting routes hold their requests, a backend booting again is waited for
# rather than ejected, and requests wait for routes still being loaded.
# (The same against a real Docker engine: test_continuity_docker.py.)

from __future__ import annotations

import time

import pytest
import trio

from proxy.admin._server import routes_document
from proxy._config import Address, Discovery, Route

from ...helpers import LOOPBACK, Backend, fetch, start_backend, start_gateway, unused_port

pytestmark = pytest.mark.usefixtures("clients_closed")


async def test_a_booting_route_holds_its_requests_until_a_backend_is_ready(nursery: trio.Nursery) -> None:
    gateway = await start_gateway(nursery, [Route("/app", (), booting=True)], discovery=Discovery(hold=5.0))
    backend = await start_backend(nursery, "ready")

    async def ready_later() -> None:
        await trio.sleep(0.3)
        gateway.set_routes([Route("/app", (backend.address,))])

    nursery.start_soon(ready_later)
    assert routes_document(gateway)["routes"][0]["booting"] is True
    started = time.monotonic()
    reply = await fetch(gateway, "GET", "/app/x")

    assert reply.status == 200 and reply.json()["backend"] == "ready"
    assert time.monotonic() - started >= 0.25


async def test_a_booting_route_that_never_gets_ready_is_503_after_the_hold(nursery: trio.Nursery) -> None:
    gateway = await start_gateway(nursery, [Route("/app", (), booting=True)], discovery=Discovery(hold=0.5))
    started = time.monotonic()

    reply = await fetch(gateway, "GET", "/app/x")

    assert reply.status == 503 and reply.header(b"retry-after") is not None
    assert b"is ready yet" in reply.body
    assert time.monotonic() - started >= 0.45


@pytest.mark.parametrize("young", [pytest.param(True, id="young"), pytest.param(False, id="old")])
async def test_a_refusal_from_a_backend_booting_again_is_waited_out_not_ejected(
    nursery: trio.Nursery, young: bool
) -> None:
    port = unused_port()
    address = Address(LOOPBACK, port)
    gateway = await start_gateway(nursery, [Route("/app", (address,))], discovery=Discovery(hold=5.0),
                                  timeouts={"connect": 1.0})
    reported: list[Address] = []

    async def comes_up() -> None:
        await trio.sleep(0.3)
        await nursery.start(Backend("late", port=port).serve)
        gateway.set_routes([Route("/app", (address,))])

    def not_ready(refused: Address) -> bool:
        # What the watcher does with a container that became ready moments
        # ago: take it out of the table (booting again) and probe it anew.
        reported.append(refused)
        if young:
            gateway.set_routes([Route("/app", (), booting=True)])
            nursery.start_soon(comes_up)
        return young

    gateway.not_ready = not_ready
    reply = await fetch(gateway, "GET", "/app/x")

    assert reported == [address]
    if young:
        assert reply.status == 200 and reply.json()["backend"] == "late"
        assert gateway.registry.states[address].failures == 0
    else:  # one that has served for a while: the pool's rules (502, then out of rotation)
        assert reply.status == 502
        assert gateway.registry.states[address].failures == 1


async def test_a_young_refusal_goes_to_another_ready_backend_first(nursery: trio.Nursery) -> None:
    booting = Address(LOOPBACK, unused_port())
    other = await start_backend(nursery, "other")
    gateway = await start_gateway(nursery, [Route("/app", (booting, other.address))], discovery=Discovery(hold=5.0))
    gateway.not_ready = lambda refused: refused == booting

    replies = [await fetch(gateway, "GET", "/app/x") for _ in range(4)]

    assert [r.status for r in replies] == [200] * 4
    assert gateway.registry.states[booting].failures == 0


async def test_requests_for_unknown_routes_wait_while_routes_are_loading(nursery: trio.Nursery) -> None:
    backend = await start_backend(nursery, "docker")
    gateway = await start_gateway(nursery, [], discovery=Discovery(hold=5.0))
    gateway.routes_complete = False

    async def loaded() -> None:
        await trio.sleep(0.3)
        gateway.set_routes([Route("/late", (backend.address,))])
        gateway.mark_routes_complete()

    nursery.start_soon(loaded)
    async with trio.open_nursery() as clients:
        replies = {}

        async def get(path: str) -> None:
            replies[path] = await fetch(gateway, "GET", path)

        clients.start_soon(get, "/late/x")
        clients.start_soon(get, "/nowhere")

    assert replies["/late/x"].status == 200
    assert replies["/nowhere"].status == 404  # loaded, and still no route: a real 404


async def test_routes_that_never_load_are_503_after_the_hold(nursery: trio.Nursery) -> None:
    gateway = await start_gateway(nursery, [], discovery=Discovery(hold=0.4))
    gateway.routes_complete = False

    reply = await fetch(gateway, "GET", "/x")

    assert reply.status == 503 and b"not loaded yet" in reply.body
