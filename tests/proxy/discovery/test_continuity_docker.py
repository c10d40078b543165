# No request fails while containers are not ready yet, against a real Docker
# engine: the busybox backend boots for $BOOT seconds before it listens, and
# concurrent clients count every answer.

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import trio

from proxy.gateway._server import Gateway

from ...docker_support import DockerLab
from ...helpers import fetch
from .test_docker_discovery import WAIT, docker, eventually, host_of, run, start_discovery

pytestmark = pytest.mark.usefixtures("clients_closed")

CLIENTS = 4
MAX_REQUESTS = 5_000  # per client: every load loop is bounded in count and in time
MAX_SECONDS = 20.0


@dataclass
class Answer:
    status: int
    host: str
    sent: float
    took: float


async def under_load(gateway: Gateway, path: str, done: Callable[[list[Answer]], bool],
                     action: Callable[[], object] | None = None, clients: int = CLIENTS) -> list[Answer]:
    """Clients in a loop on `path` until done(answers) (checked every 50 ms); `action` runs meanwhile."""
    answers: list[Answer] = []
    stop = trio.Event()

    async def client() -> None:
        for _ in range(MAX_REQUESTS):
            if stop.is_set():
                return
            sent = time.monotonic()
            reply = await fetch(gateway, "GET", path)
            answers.append(Answer(reply.status, host_of(reply), sent, time.monotonic() - sent))

    with trio.fail_after(MAX_SECONDS):
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(client)
            if action is not None:
                await action()  # type: ignore[misc]
            while not done(answers):
                await trio.sleep(0.05)
            stop.set()
    return answers


def served_for(host: str, seconds: float) -> Callable[[list[Answer]], bool]:
    def done(answers: list[Answer]) -> bool:
        first = next((a for a in answers if a.host == host), None)
        return first is not None and time.monotonic() - (first.sent + first.took) >= seconds
    return done


def statuses(answers: list[Answer]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for answer in answers:
        counts[answer.status] = counts.get(answer.status, 0) + 1
    return counts


async def known(gateway: Gateway, prefix: str) -> bool:
    return gateway.table.lookup(None, prefix.encode()) is not None


async def test_a_slow_boot_on_first_deploy_fails_no_request(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab, hold=10.0)
    backend = await run(docker_lab, labels={"fastroute.route": "/boot-first"}, environment={"BOOT": "2"}, wait=False)
    await eventually(lambda: known(gateway, "/boot-first"), "the route is known while it boots")

    answers = await under_load(gateway, "/boot-first/", served_for(backend.name, 0.5))

    assert statuses(answers) == {200: len(answers)}
    assert {a.host for a in answers} == {backend.name}
    assert max(a.took for a in answers) > 1.0  # requests sent while it booted waited for it


async def test_a_slow_boot_on_recreate_with_a_placeholder_on_the_freed_address(
    nursery: trio.Nursery, docker_lab: DockerLab
) -> None:
    network = docker_lab.create_network(subnet=True)
    gateway, _ = await start_discovery(nursery, docker_lab, network=network, hold=10.0)
    old = await run(docker_lab, labels={"fastroute.route": "/boot-again"}, environment={"GRACE": "1"},
                    **docker_lab.ip_on(network, 10))
    await eventually(lambda: known(gateway, "/boot-again"), "the old container serves")
    names: dict[str, str] = {}

    async def recreate() -> None:
        await trio.sleep(0.3)
        await docker(docker_lab, lambda c: c.stop(timeout=3), old)
        # Something else takes the freed address at once, listening on the same port.
        placeholder = await run(docker_lab, labels={"fastroute.enable": "false"}, **docker_lab.ip_on(network, 10))
        names["placeholder"] = placeholder.name
        new = await run(docker_lab, labels={"fastroute.route": "/boot-again"}, environment={"BOOT": "2"},
                        network=network, wait=False)
        names["new"] = new.name

    answers = await under_load(gateway, "/boot-again/", lambda a: "new" in names and served_for(names["new"], 0.5)(a),
                               recreate)

    assert statuses(answers) == {200: len(answers)}
    assert {a.host for a in answers} == {old.name, names["new"]}  # never the placeholder
    assert max(a.took for a in answers) > 1.0


async def test_a_service_that_never_listens_gets_503_after_the_hold_and_nothing_else(
    nursery: trio.Nursery, docker_lab: DockerLab
) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab, hold=1.0)
    await run(docker_lab, labels={"fastroute.route": "/boot-never"}, environment={"BOOT": "600"}, wait=False)
    await eventually(lambda: known(gateway, "/boot-never"), "the route is known while it boots")
    started = time.monotonic()

    answers = await under_load(gateway, "/boot-never/", lambda a: time.monotonic() - started > 2.5, clients=3)

    assert answers and statuses(answers) == {503: len(answers)}
    assert min(a.took for a in answers) >= 0.9  # each waited out its hold


async def test_a_healthcheck_that_turns_healthy_late_fails_no_request(
    nursery: trio.Nursery, docker_lab: DockerLab
) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab, hold=10.0)
    check = {"test": ["CMD", "/bin/busybox", "test", "-f", "/www/ok"], "interval": 100_000_000,
             "timeout": 1_000_000_000, "retries": 3, "start_period": 30_000_000_000}
    backend = await run(docker_lab, labels={"fastroute.route": "/boot-checked"}, healthcheck=check)
    await eventually(lambda: known(gateway, "/boot-checked"), "the route is known while it starts")

    async def healthy_later() -> None:
        await trio.sleep(1.5)  # its port accepts all along; its check passes only now
        await docker(docker_lab, lambda c: c.exec_run(["/bin/busybox", "touch", "/www/ok"]), backend)

    answers = await under_load(gateway, "/boot-checked/", served_for(backend.name, 0.5), healthy_later)

    assert statuses(answers) == {200: len(answers)}
    assert max(a.took for a in answers) > 1.0


async def test_a_container_that_never_accepts_is_routed_after_the_ready_timeout(
    nursery: trio.Nursery, docker_lab: DockerLab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fastroute.docker")
    gateway, _ = await start_discovery(nursery, docker_lab, hold=0.0, ready_timeout=1.0)
    backend = await run(docker_lab, labels={"fastroute.route": "/boot-late"}, environment={"BOOT": "600"}, wait=False)
    await eventually(lambda: known(gateway, "/boot-late"), "the route is known while it boots")
    assert not gateway.table.lookup(None, b"/boot-late")[1].backends

    async def routed() -> bool:
        return bool(gateway.table.lookup(None, b"/boot-late")[1].backends)

    await eventually(routed, "routed once the ready timeout ran out", limit=WAIT)
    assert any("routing it anyway" in r.getMessage() and backend.name in r.getMessage() for r in caplog.records)
    # Routed, it refuses: that is a failing backend now (502, then out of rotation), not a booting one.
    assert (await fetch(gateway, "GET", "/boot-late/")).status == 502
    assert (await fetch(gateway, "GET", "/boot-late/")).status == 503
