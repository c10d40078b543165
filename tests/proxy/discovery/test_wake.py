# Wake on request against the real engine: stopped containers labelled
# fastroute.wake=true are started by a request for their route (only they,
# only `start`), once however many requests arrive, and stopped again when
# idle if fastroute started them. Every call fastroute makes to the engine
# is counted through a wrapper around its docker client.

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from proxy._config import Discovery
from proxy.gateway._server import Gateway
from proxy.routing._sources import RouteSources
from proxy.discovery import _waker
from proxy.discovery._waker import Waker
from proxy.discovery._client import SdkDockerApi, sdk_client
from proxy.discovery._watcher import DockerWatcher

from ...docker_support import GATEWAY_DOCKER, RUN_ID, RUN_LABEL, Backend, DockerLab
from ...helpers import fetch, start_gateway
from .test_docker_discovery import eventually

pytestmark = pytest.mark.usefixtures("clients_closed")

WAIT = 15.0  # seconds: the longest any test waits for the engine to act
WAKE = {"fastroute.wake": "true"}


class Counting:
    """A docker client (or its .api) that counts every method call by name."""

    def __init__(self, inner: Any, calls: Counter[str]) -> None:
        self._inner = inner
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name == "api":
            return Counting(attr, self._calls)
        if not callable(attr) or name == "close":
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            # A bare POST is counted by its action: SdkDockerApi.start posts
            # /containers/ID/start itself (docker-py's start() hides the 304).
            self._calls[args[0].rsplit("/", 1)[-1] if name == "post" else name] += 1
            return attr(*args, **kwargs)

        return counted


async def start_waking(
    nursery: trio.Nursery, lab: DockerLab, calls: Counter[str], exposed_by_default: bool = True, **timeouts: Any
) -> tuple[Gateway, DockerWatcher, Waker]:
    factory: Callable[[str | None], Any] = (  # noqa: E731
        lambda url: SdkDockerApi(Counting(sdk_client(url or GATEWAY_DOCKER), calls)))
    gateway = await start_gateway(nursery, [], timeouts=timeouts)
    sources = RouteSources(gateway, ())
    watcher = DockerWatcher(sources, Discovery(network=lab.network, hold=0.0, exposed_by_default=exposed_by_default),
                            labels=[f"{RUN_LABEL}={RUN_ID}"], client_factory=factory)
    await nursery.start(watcher.run)
    with trio.fail_after(WAIT):
        await watcher.synced.wait()
    waker = Waker(lambda: watcher.containers, watcher.take_out, watcher.set_waking, gateway.registry,
                  timeout=gateway.config.timeouts.wake, queue=gateway.config.limits.wake_queue,
                  client_factory=factory)
    gateway.waker = waker
    await nursery.start(waker.run)
    return gateway, watcher, waker


async def test_a_start_that_finds_it_running_does_not_make_it_ours(
    nursery: trio.Nursery, docker_lab: DockerLab
) -> None:
    # Another worker woke it first, or anyone started it: the engine's 304.
    backend = await stopped(docker_lab, {**WAKE, "fastroute.route": "/theirs", "fastroute.idle-timeout": "1"})
    calls: Counter[str] = Counter()
    _, _, waker = await start_waking(nursery, docker_lab, calls)
    await trio.to_thread.run_sync(lambda: docker_lab.client.containers.get(backend.id).start())
    with trio.fail_after(WAIT):
        await waker.wake("/theirs", (backend.id,))
    assert calls["start"] == 1 and waker.starts == 0 and backend.id not in waker.woken


async def stopped(lab: DockerLab, labels: dict[str, str], **options: Any) -> Backend:
    """A backend container that exists, stopped."""
    def make() -> Backend:
        backend = lab.start_backend(labels=labels, wait=False, **options)
        lab.client.containers.get(backend.id).stop(timeout=1)
        return backend
    return await trio.to_thread.run_sync(make)


async def state_of(lab: DockerLab, backend: Backend) -> str:
    container = await trio.to_thread.run_sync(lab.client.containers.get, backend.id)
    return str(container.status)


def host(body: bytes) -> str:
    return body.decode().splitlines()[0].removeprefix("host=")


async def test_a_request_wakes_a_stopped_container(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    backend = await stopped(docker_lab, {**WAKE, "fastroute.route": "/sleepy"})
    calls: Counter[str] = Counter()
    gateway, _, waker = await start_waking(nursery, docker_lab, calls)
    assert await state_of(docker_lab, backend) == "exited"

    reply = await fetch(gateway, "GET", "/sleepy/x/")

    assert reply.status == 200 and host(reply.body) == backend.name
    assert await state_of(docker_lab, backend) == "running"
    assert waker.starts == 1 and calls["start"] == 1
    assert calls["create"] == 0 and calls["pull"] == 0


async def test_fifty_concurrent_requests_cause_exactly_one_start(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    backend = await stopped(docker_lab, {**WAKE, "fastroute.route": "/crowd"})
    calls: Counter[str] = Counter()
    gateway, _, waker = await start_waking(nursery, docker_lab, calls)
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await fetch(gateway, "GET", "/crowd/")).status)

    async with trio.open_nursery() as clients:
        for _ in range(50):
            clients.start_soon(one)

    assert statuses == [200] * 50
    assert calls["start"] == 1 and waker.starts == 1
    assert await state_of(docker_lab, backend) == "running"


async def test_unknown_routes_never_touch_docker(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    await stopped(docker_lab, {**WAKE, "fastroute.route": "/known"})
    calls: Counter[str] = Counter()
    gateway, _, _ = await start_waking(nursery, docker_lab, calls)
    before = Counter(calls)

    for target in ["/unknown/", "/knownx/", "/", "/kno"]:
        assert (await fetch(gateway, "GET", target)).status == 404

    made = calls - before
    made.pop("ping", None)  # the watchdog's, on its own clock
    assert made == Counter()


async def test_idle_container_is_stopped_and_woken_again(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    backend = await stopped(docker_lab, {**WAKE, "fastroute.route": "/nap", "fastroute.idle-timeout": "1"})
    calls: Counter[str] = Counter()
    gateway, _, waker = await start_waking(nursery, docker_lab, calls)
    assert (await fetch(gateway, "GET", "/nap/")).status == 200

    async def is_exited() -> bool:
        return await state_of(docker_lab, backend) == "exited"

    await eventually(is_exited, "stopped after 1 s idle")

    async def stop_returned() -> bool:  # the engine can report "exited" before the stop call returns
        return waker.stops == 1

    await eventually(stop_returned, "the stop call returned")

    reply = await fetch(gateway, "GET", "/nap/")  # its route stayed: the next request wakes it
    assert reply.status == 200 and host(reply.body) == backend.name
    assert calls["start"] == 2


async def test_a_long_request_counts_as_activity(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    backend = await stopped(docker_lab, {**WAKE, "fastroute.route": "/busy", "fastroute.idle-timeout": "1"})
    calls: Counter[str] = Counter()
    gateway, _, waker = await start_waking(nursery, docker_lab, calls)

    with trio.fail_after(WAIT):
        reply = await fetch(gateway, "GET", "/busy/?sleep=3")  # in flight three times the idle timeout

    assert reply.status == 200
    assert waker.stops == 0 and await state_of(docker_lab, backend) == "running"

    async def is_exited() -> bool:
        return await state_of(docker_lab, backend) == "exited"

    await eventually(is_exited, "stopped once idle after the request")


async def test_containers_fastroute_did_not_start_are_never_stopped(
    nursery: trio.Nursery, docker_lab: DockerLab
) -> None:
    backend = await trio.to_thread.run_sync(lambda: docker_lab.start_backend(
        labels={**WAKE, "fastroute.route": "/mine", "fastroute.idle-timeout": "0.5"}))
    calls: Counter[str] = Counter()
    gateway, _, waker = await start_waking(nursery, docker_lab, calls)
    assert (await fetch(gateway, "GET", "/mine/")).status == 200

    await trio.sleep(2.0)

    assert await state_of(docker_lab, backend) == "running"
    assert calls["stop"] == 0 and calls["start"] == 0


async def test_wake_timeout_is_a_503(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    # Its httpd listens on 9999, not on the routed port 8000: never ready.
    await stopped(docker_lab, {**WAKE, "fastroute.route": "/deaf"}, environment={"PORT": "9999"})
    calls: Counter[str] = Counter()
    gateway, _, _ = await start_waking(nursery, docker_lab, calls, wake=1.5)

    started = trio.current_time()
    reply = await fetch(gateway, "GET", "/deaf/")

    assert reply.status == 503 and reply.header(b"retry-after") is not None
    assert 1.4 < trio.current_time() - started < 5
    assert calls["start"] == 1


async def test_a_container_that_exits_at_once_is_a_503_and_not_restarted_in_a_loop(
    nursery: trio.Nursery, docker_lab: DockerLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A backoff of ten minutes: the five requests below fall within it however slowly they go.
    monkeypatch.setattr(_waker, "WAKE_BACKOFF_MIN", 600.0)
    monkeypatch.setattr(_waker, "WAKE_BACKOFF_MAX", 600.0)
    await stopped(docker_lab, {**WAKE, "fastroute.route": "/crash"}, command=["/bin/busybox", "false"])
    calls: Counter[str] = Counter()
    gateway, _, waker = await start_waking(nursery, docker_lab, calls)

    first = await fetch(gateway, "GET", "/crash/")
    assert first.status == 503 and b"exit" in first.body and 590 <= int(first.header(b"retry-after") or 0) <= 600
    again = [await fetch(gateway, "GET", "/crash/") for _ in range(5)]  # within the backoff

    assert all(r.status == 503 for r in again)
    assert calls["start"] == 1
    waker._routes["/crash"].retry_at = 0.0  # the backoff ran out: one more try
    assert (await fetch(gateway, "GET", "/crash/")).status == 503
    assert calls["start"] == 2


async def test_a_container_removed_while_stopped_loses_its_route(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    backend = await stopped(docker_lab, {**WAKE, "fastroute.route": "/gone"})
    calls: Counter[str] = Counter()
    gateway, watcher, _ = await start_waking(nursery, docker_lab, calls)
    assert (None, "/gone") in gateway.table

    await trio.to_thread.run_sync(lambda: docker_lab.client.containers.get(backend.id).remove())

    async def route_gone() -> bool:
        return (None, "/gone") not in gateway.table

    await eventually(route_gone, "route dropped on destroy")
    assert (await fetch(gateway, "GET", "/gone/")).status == 404
    assert calls["start"] == 0


async def test_without_the_wake_label_nothing_is_woken(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    backend = await stopped(docker_lab, {"fastroute.enable": "true", "fastroute.route": "/plain"})
    calls: Counter[str] = Counter()
    gateway, _, _ = await start_waking(nursery, docker_lab, calls, exposed_by_default=False)

    assert (await fetch(gateway, "GET", "/plain/")).status == 404
    assert calls["start"] == 0 and await state_of(docker_lab, backend) == "exited"


async def test_past_the_wake_queue_requests_get_a_503_at_once(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    await stopped(docker_lab, {**WAKE, "fastroute.route": "/queue"}, environment={"PORT": "9999"})
    calls: Counter[str] = Counter()
    gateway, _, waker = await start_waking(nursery, docker_lab, calls, wake=2.0)
    waker.queue = 3
    replies: list[tuple[int, float, bytes]] = []

    async def one() -> None:
        started = trio.current_time()
        reply = await fetch(gateway, "GET", "/queue/")
        replies.append((reply.status, trio.current_time() - started, reply.body))

    async with trio.open_nursery() as clients:
        for _ in range(5):
            clients.start_soon(one)
            await trio.sleep(0.05)

    assert [status for status, _, _ in replies] == [503] * 5
    turned_away = [r for r in replies if b"already wait" in r[2]]
    assert len(turned_away) == 2 and all(took < 1.0 for _, took, _ in turned_away)
    assert calls["start"] == 1



async def test_requests_during_a_slow_start_wait_for_it(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    # Running for a second before it listens. Seen in a full run: a request
    # arriving then found the running container in the table and got 502.
    backend = await stopped(docker_lab, {**WAKE, "fastroute.route": "/slow-start"},
                            command=["/bin/busybox", "sh", "-c", "/bin/busybox sleep 1; exec /bin/busybox sh /run.sh"])
    calls: Counter[str] = Counter()
    gateway, watcher, _ = await start_waking(nursery, docker_lab, calls)
    replies: list[int] = []

    async def one() -> None:
        replies.append((await fetch(gateway, "GET", "/slow-start/")).status)

    async with trio.open_nursery() as clients:
        clients.start_soon(one)

        async def started() -> bool:
            container = watcher.containers.containers.get(backend.id)
            return container is not None and container.routable

        await eventually(started, "the engine's start event seen")
        clients.start_soon(one)  # it runs, but does not listen yet

    assert replies == [200, 200]
    assert calls["start"] == 1


async def test_with_a_healthcheck_the_wake_waits_until_healthy(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    # Its port answers at once, but it reports healthy only after 1.5 s.
    backend = await stopped(
        docker_lab, {**WAKE, "fastroute.route": "/checked"},
        command=["/bin/busybox", "sh", "-c",
                 "/bin/busybox rm -f /ready; (/bin/busybox sleep 1.5; /bin/busybox touch /ready) & "
                 "exec /bin/busybox sh /run.sh"],
        healthcheck={"test": ["CMD", "/bin/busybox", "test", "-e", "/ready"],
                     "interval": 200_000_000, "timeout": 1_000_000_000, "retries": 30},
    )
    calls: Counter[str] = Counter()
    gateway, _, _ = await start_waking(nursery, docker_lab, calls)

    started = trio.current_time()
    reply = await fetch(gateway, "GET", "/checked/")

    assert reply.status == 200 and host(reply.body) == backend.name
    assert trio.current_time() - started >= 1.5
    container = await trio.to_thread.run_sync(docker_lab.client.containers.get, backend.id)
    assert container.attrs["State"]["Health"]["Status"] == "healthy"


async def test_with_workers_a_request_on_another_worker_keeps_the_container(
    nursery: trio.Nursery, docker_lab: DockerLab, tmp_path: Path
) -> None:
    # Two gateways as two --workers: A wakes the container; B (which A
    # asks on its admin socket before an idle stop) keeps it busy.
    from proxy.admin._server import AdminServer
    from proxy.admin._peers import peer_idle_for

    backend = await stopped(docker_lab, {**WAKE, "fastroute.route": "/shared", "fastroute.idle-timeout": "1"})
    calls: Counter[str] = Counter()
    first, _, waker = await start_waking(nursery, docker_lab, calls)
    second, _, other_waker = await start_waking(nursery, docker_lab, calls)
    path = str(tmp_path / "worker-1.sock")
    await nursery.start(AdminServer(second, None, unix_path=path).serve)
    waker.peer_idle_for = peer_idle_for([path])

    assert (await fetch(first, "GET", "/shared/")).status == 200  # woken by the first
    with trio.fail_after(WAIT):
        reply = await fetch(second, "GET", "/shared/?sleep=3")  # in flight on the second, 3x the idle timeout

    assert reply.status == 200
    assert waker.stops == 0 and await state_of(docker_lab, backend) == "running"

    async def is_exited() -> bool:
        return await state_of(docker_lab, backend) == "exited"

    await eventually(is_exited, "stopped once idle on both")

    async def stop_returned() -> bool:
        return waker.stops == 1

    await eventually(stop_returned, "the stop call returned")
    assert other_waker.stops == 0  # only the worker that woke it stops it
