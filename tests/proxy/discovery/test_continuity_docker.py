# No request fails while containers are not ready yet, against a real Docker
# engine: the busybox backend boots for $BOOT seconds before it listens, and
# concurrent clients count every answer.

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
import trio

from proxy.gateway._server import Gateway

from ...docker_support import Backend, DockerLab
from ...helpers import fetch
from .test_docker_discovery import WAIT, docker, eventually, host_of, run, start_discovery

pytestmark = pytest.mark.usefixtures("clients_closed")

CLIENTS = 4
MAX_REQUESTS = 5_000  # per client: every load loop is bounded in count and in time
MAX_SECONDS = 120.0  # a bound only a hang reaches: on a busy machine each engine call can take seconds
# The hold lasts longer than any test needs: a request waits for the new
# container however long the engine takes to stop the old one and start it
# (each of those can take seconds on a busy machine).
HOLD = 120.0


@dataclass
class Answer:
    status: int
    host: str
    sent: float
    took: float


class Load:
    """What clients in a loop on one path got so far, and how many of their requests are still unanswered."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.pending = 0

    async def all_held(self, clients: int = CLIENTS) -> None:
        """Until every client has a request waiting in the gateway (none can be answered yet)."""
        while self.pending < clients:
            await trio.sleep(0.01)


async def under_load(gateway: Gateway, path: str, done: Callable[[list[Answer]], bool],
                     action: Callable[[Load], Awaitable[None]] | None = None, clients: int = CLIENTS) -> list[Answer]:
    """Clients in a loop on `path` until done(answers) (checked every 50 ms); `action` runs meanwhile."""
    load = Load()
    stop = trio.Event()

    async def client() -> None:
        for _ in range(MAX_REQUESTS):
            if stop.is_set():
                return
            sent = time.monotonic()
            load.pending += 1
            reply = await fetch(gateway, "GET", path)
            load.pending -= 1
            load.answers.append(Answer(reply.status, host_of(reply), sent, time.monotonic() - sent))

    with trio.fail_after(MAX_SECONDS):
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(client)
            if action is not None:
                await action(load)
            while not done(load.answers):
                await trio.sleep(0.05)
            stop.set()
    return load.answers


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


async def told_to_boot(lab: DockerLab, backend: Backend) -> float:
    """End a BOOT=told container's boot; returns when (time.monotonic(), just before)."""
    told = time.monotonic()
    await docker(lab, lambda c: c.exec_run(["/bin/busybox", "touch", "/booted"]), backend)
    return told


async def test_a_slow_boot_on_first_deploy_fails_no_request(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab, hold=HOLD)
    backend = await run(docker_lab, labels={"fastroute.route": "/boot-first"}, environment={"BOOT": "told"},
                        wait=False)
    await eventually(lambda: known(gateway, "/boot-first"), "the route is known while it boots")
    booted: list[float] = []

    async def boot(load: Load) -> None:
        await load.all_held()  # every client waits for the container: it boots only now
        booted.append(await told_to_boot(docker_lab, backend))

    answers = await under_load(gateway, "/boot-first/", served_for(backend.name, 0.5), boot)

    assert statuses(answers) == {200: len(answers)}
    assert {a.host for a in answers} == {backend.name}
    assert sum(a.sent < booted[0] for a in answers) >= CLIENTS  # requests sent while it booted waited for it


async def test_a_slow_boot_on_recreate_with_a_placeholder_on_the_freed_address(
    nursery: trio.Nursery, docker_lab: DockerLab
) -> None:
    network = docker_lab.create_network(subnet=True)
    gateway, _ = await start_discovery(nursery, docker_lab, network=network, hold=HOLD)
    old = await run(docker_lab, labels={"fastroute.route": "/boot-again"}, environment={"GRACE": "1"},
                    **docker_lab.ip_on(network, 10))
    await eventually(lambda: known(gateway, "/boot-again"), "the old container serves")
    names: dict[str, str] = {}
    booted: list[float] = []

    async def recreate(load: Load) -> None:
        await trio.sleep(0.3)
        await docker(docker_lab, lambda c: c.stop(timeout=3), old)
        # Something else takes the freed address at once, listening on the same port.
        placeholder = await run(docker_lab, labels={"fastroute.enable": "false"}, **docker_lab.ip_on(network, 10))
        names["placeholder"] = placeholder.name
        new = await run(docker_lab, labels={"fastroute.route": "/boot-again"}, environment={"BOOT": "told"},
                        network=network, wait=False)
        names["new"] = new.name
        await load.all_held()  # every client waits for the new container: it boots only now
        booted.append(await told_to_boot(docker_lab, new))

    answers = await under_load(gateway, "/boot-again/", lambda a: "new" in names and served_for(names["new"], 0.5)(a),
                               recreate)

    assert statuses(answers) == {200: len(answers)}
    assert {a.host for a in answers} == {old.name, names["new"]}  # never the placeholder
    waited = [a for a in answers if a.sent < booted[0] and a.host == names["new"]]
    assert len(waited) >= CLIENTS  # sent while it booted, answered by it


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
    gateway, _ = await start_discovery(nursery, docker_lab, hold=HOLD)
    check = {"test": ["CMD", "/bin/busybox", "test", "-f", "/www/ok"], "interval": 100_000_000,
             "timeout": 1_000_000_000, "retries": 3, "start_period": 30_000_000_000}
    backend = await run(docker_lab, labels={"fastroute.route": "/boot-checked"}, healthcheck=check)
    await eventually(lambda: known(gateway, "/boot-checked"), "the route is known while it starts")

    healthy: list[float] = []

    async def healthy_later(load: Load) -> None:
        await load.all_held()  # its port accepts all along; its check passes only now
        healthy.append(time.monotonic())
        await docker(docker_lab, lambda c: c.exec_run(["/bin/busybox", "touch", "/www/ok"]), backend)

    answers = await under_load(gateway, "/boot-checked/", served_for(backend.name, 0.5), healthy_later)

    assert statuses(answers) == {200: len(answers)}
    assert sum(a.sent < healthy[0] for a in answers) >= CLIENTS  # they waited for the check


async def test_a_container_that_never_accepts_is_routed_after_the_ready_timeout(
    nursery: trio.Nursery, docker_lab: DockerLab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fastroute.docker")
    gateway, _ = await start_discovery(nursery, docker_lab, hold=0.0, ready_timeout=1.0,
                                       timeouts={"eject": 600.0})  # out of rotation still at the second request
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


REPEATS = 3  # stops, each with a new container started right after


async def test_docker_stop_of_a_server_that_exits_at_once_fails_no_get(
    nursery: trio.Nursery, docker_lab: DockerLab
) -> None:
    # Its server exits on SIGTERM (GRACE=0) with requests in flight: each was
    # read and not answered. The GETs go again, to the new container; the
    # POSTs in flight get 502 (they may not be sent twice), counted apart.
    # The POST client sends its next POST once the new container serves: one
    # sent while the old server was dying could be read by it and cut too (a
    # 502 as right as the held one's, but not the one counted here).
    gateway, _ = await start_discovery(nursery, docker_lab, hold=HOLD)
    current = await run(docker_lab, labels={"fastroute.route": "/dies"})
    await eventually(lambda: known(gateway, "/dies"), "the first container serves")
    gets: list[Answer] = []
    posts: list[Answer] = []
    hosts: list[str] = []
    stop = trio.Event()
    replaced = [trio.Event() for _ in range(REPEATS)]  # each stop's new container serves

    async def client(method: str, answers: list[Answer]) -> None:
        for _ in range(MAX_REQUESTS):
            if stop.is_set():
                return
            sent = time.monotonic()
            reply = await fetch(gateway, method, "/dies/?held")  # held there while it has /held
            answers.append(Answer(reply.status, host_of(reply), sent, time.monotonic() - sent))
            if method == "POST" and reply.status != 200:
                failed = sum(a.status != 200 for a in answers)
                await replaced[min(failed, REPEATS) - 1].wait()  # the stop that cut it: its new container

    async def held_there(backend: Backend) -> dict[str, int]:
        # The server's own marks (index.cgi): requests it has read and holds.
        listing = await docker(docker_lab, lambda c: c.exec_run(["/bin/busybox", "ls", "/"]), backend)
        names = [name.split(".") for name in listing.output.decode().split() if name.startswith("holding.")]
        return {method: sum(n[1] == method for n in names) for method in ("GET", "POST")}

    with trio.fail_after(MAX_SECONDS * REPEATS):
        async with trio.open_nursery() as clients:
            for _ in range(CLIENTS):
                clients.start_soon(client, "GET", gets)
            clients.start_soon(client, "POST", posts)
            for repeat in range(REPEATS):
                hosts.append(current.name)
                await docker(docker_lab, lambda c: c.exec_run(["/bin/busybox", "touch", "/held"]), current)
                while await held_there(current) != {"GET": CLIENTS, "POST": 1}:  # read, unanswered
                    await trio.sleep(0.01)
                await docker(docker_lab, lambda c: c.stop(timeout=30), current)
                current = await run(docker_lab, labels={"fastroute.route": "/dies"}, wait=False)
                while not any(a.host == current.name for a in gets):  # the held GETs went to the new one
                    await trio.sleep(0.01)
                replaced[repeat].set()
            hosts.append(current.name)
            stop.set()

    assert statuses(gets) == {200: len(gets)}, statuses(gets)
    assert {a.host for a in gets} == set(hosts)
    failed_posts = [a for a in posts if a.status != 200]
    assert {a.status for a in failed_posts} == {502}
    assert len(failed_posts) == REPEATS  # the one the server held at each stop
