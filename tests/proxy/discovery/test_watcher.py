# The watcher's shell against a fake engine at the discovery/_client seam:
# listing, events, leaving without an engine call, a stream that ends, an
# engine that is down, bursts. The real-engine tests (test_docker_*.py) stay;
# these reach the cases an engine will not produce on demand.

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from proxy._config import Address, Discovery, Route
from proxy.discovery._client import DockerApi, EventStream
from proxy.discovery import _watcher
from proxy.discovery._watcher import BACKOFF_MAX, DockerWatcher

WAIT = 10.0  # seconds: the longest a test waits for the watcher


def attrs(name: str, ip: str, *, running: bool = True, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Inspect data of a container with a HEALTHCHECK that passes (routed without a probe)."""
    return {
        "Id": (name.encode().hex() * 16)[:64],
        "Name": f"/{name}",
        "Config": {"Image": f"team/{name}:1", "Labels": labels or {}},
        "State": {"Status": "running" if running else "exited", "Running": running,
                  "Health": {"Status": "healthy"}},
        "HostConfig": {"NetworkMode": "net"},
        "NetworkSettings": {"Networks": {"net": {"IPAddress": ip}}},
    }


def event(action: str, cid: str, **attributes: str) -> dict[str, Any]:
    return {"Type": "container", "Action": action, "Actor": {"ID": cid, "Attributes": attributes}, "time": 0}


_END = object()


class FakeEvents:
    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        item = self.queue.get()
        if item is _END:
            raise StopIteration
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        self.queue.put(_END)


class World:
    """What the fake engine knows; outlives each connection (a reconnect sees the same containers)."""

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self.gate: threading.Event | None = None
        self.streams: list[FakeEvents] = []
        self.down = threading.Event()  # set: connecting fails
        self.manager = False  # a Swarm manager: it answers the Swarm calls
        self.refuse_swarm = False  # a socket filter between: the Swarm calls get 403
        self.services: dict[str, dict[str, Any]] = {}
        self.tasks: list[dict[str, Any]] = []
        self.list_error: str | None = None  # the listing answers with this error
        self.engine = "Docker"  # or "Podman": GET /version's name

    def add(self, container: dict[str, Any]) -> str:
        self.containers[container["Id"]] = container
        return str(container["Id"])

    def emit(self, *events: dict[str, Any]) -> None:
        for item in events:
            self.streams[-1].queue.put(item)

    def factory(self, url: str | None) -> DockerApi:
        self.calls["connect"] += 1
        if self.down.is_set():
            raise ConnectionRefusedError("the engine is down")
        return FakeEngine(self)


class FakeEngine:
    def __init__(self, world: World) -> None:
        self.world = world

    def identity(self) -> tuple[str, str]:
        return (self.world.engine, "0.0-fake")

    def containers(self, labels: Any) -> list[dict[str, Any]]:
        from proxy.discovery._container import summary_from_inspect

        self.world.calls["list"] += 1
        if self.world.list_error is not None:
            from proxy.discovery._errors import EngineError

            raise EngineError(self.world.list_error)
        return [summary_from_inspect(a) for a in self.world.containers.values() if a["State"]["Running"]]

    def running(self, labels: Any) -> set[str]:
        self.world.calls["running"] += 1
        return {cid for cid, a in self.world.containers.items() if a["State"]["Running"]}

    def inspect(self, cid: str) -> dict[str, Any] | None:
        self.world.calls["inspect"] += 1
        if self.world.gate is not None:
            self.world.gate.wait(10)  # the watcher stays inside this event until the test opens it
        return self.world.containers.get(cid)

    def events(self, swarm: bool = False) -> EventStream:
        self.world.calls["events swarm" if swarm else "events"] += 1
        stream = FakeEvents()
        self.world.streams.append(stream)
        return stream

    def swarm_manager(self) -> bool:
        self.world.calls["info"] += 1
        return self.world.manager

    def services(self) -> list[dict[str, Any]]:
        from proxy.discovery._errors import EngineError

        if not self.world.manager or self.world.refuse_swarm:
            raise EngineError("docker service ls: 403 Forbidden")
        self.world.calls["services"] += 1
        return list(self.world.services.values())

    def service(self, sid: str) -> dict[str, Any] | None:
        self.world.calls["service"] += 1
        return self.world.services.get(sid)

    def tasks(self, sid: str | None = None) -> list[dict[str, Any]]:
        self.world.calls["tasks"] += 1
        return [t for t in self.world.tasks if t["DesiredState"] == "running" and sid in (None, t["ServiceID"])]

    def network_names(self) -> dict[str, str]:
        return {"net-id": "net"}

    def ping(self) -> None:
        pass

    def start(self, cid: str) -> bool:
        raise AssertionError("the watcher never starts a container")

    def stop(self, cid: str, grace: int) -> None:
        raise AssertionError("the watcher never stops a container")

    def own_networks(self) -> frozenset[str]:
        return frozenset()

    def close(self) -> None:
        pass


class Published:
    def __init__(self) -> None:
        self.tables: list[tuple[Route, ...]] = []

    def set_docker(self, routes: tuple[Route, ...]) -> None:
        self.tables.append(routes)

    def backends(self) -> dict[str, tuple[Address, ...]]:
        return {r.prefix: r.backends for r in self.tables[-1]} if self.tables else {}


async def until(check: Callable[[], bool], what: str) -> None:
    with trio.fail_after(WAIT):
        while not check():
            await trio.sleep(0.005)


@pytest.fixture
async def watched(nursery: trio.Nursery) -> tuple[World, Published, DockerWatcher]:
    world = World()
    published = Published()
    watcher = DockerWatcher(published, Discovery(hold=0.0), client_factory=world.factory)
    world.add(attrs("a", "10.0.0.2"))
    await nursery.start(watcher.run)
    with trio.fail_after(WAIT):
        await watcher.synced.wait()
    return world, published, watcher


A = Address("10.0.0.2", 8000)
B = Address("10.0.0.3", 8000)


async def test_the_first_listing_is_published(watched: tuple[World, Published, DockerWatcher]) -> None:
    world, published, watcher = watched
    assert published.backends() == {"/team/a": (A,)}
    assert watcher.status == "following" and world.calls["list"] == 1


async def test_a_start_event_routes_the_container_after_one_inspect(
    watched: tuple[World, Published, DockerWatcher]
) -> None:
    world, published, _ = watched
    cid = world.add(attrs("b", "10.0.0.3"))
    world.emit(event("start", cid))
    await until(lambda: "/team/b" in published.backends(), "routed")
    assert published.backends()["/team/b"] == (B,)
    assert world.calls["inspect"] == 1 and world.calls["list"] == 1  # no re-list


async def test_a_terminating_kill_takes_it_out_with_no_engine_call(
    watched: tuple[World, Published, DockerWatcher]
) -> None:
    world, published, _ = watched
    cid = next(iter(world.containers))
    world.emit(event("kill", cid, signal="15"))
    await until(lambda: "/team/a" not in published.backends(), "out")
    assert world.calls["inspect"] == 0


async def test_a_kill_with_another_signal_changes_nothing(watched: tuple[World, Published, DockerWatcher]) -> None:
    world, published, watcher = watched
    cid = next(iter(world.containers))
    before = len(published.tables)
    world.emit(event("kill", cid, signal="SIGHUP"), event("rename", cid))
    await until(lambda: world.calls["inspect"] == 1, "the rename was handled")  # after the kill, in order
    assert len(published.tables) == before  # same routes: nothing published
    assert published.backends() == {"/team/a": (A,)}


async def test_a_burst_of_events_is_one_publish(watched: tuple[World, Published, DockerWatcher]) -> None:
    world, published, _ = watched
    before = len(published.tables)
    ids = [world.add(attrs(f"n{i}", f"10.0.1.{i}")) for i in range(20)]
    # The watcher is held inside the first event while the others arrive:
    # once the stream has handed them all over, at most one is on its way
    # to the watcher's channel, and the rest wait there together.
    world.gate = threading.Event()
    inspected = world.calls["inspect"]
    world.emit(*(event("start", cid) for cid in ids))
    await until(lambda: world.calls["inspect"] > inspected and world.streams[-1].queue.empty(), "all handed over")
    world.gate.set()
    await until(lambda: len(published.backends()) == 21, "all routed")
    assert len(published.tables) - before <= 3  # the first, the rest together, perhaps one on its way


async def test_an_ended_stream_reconnects_and_resyncs(
    watched: tuple[World, Published, DockerWatcher]
) -> None:
    world, published, watcher = watched
    cid = next(iter(world.containers))
    # While the stream is gone, one container stops and one starts: no event
    # tells of either; the resync after the reconnect does.
    world.containers[cid]["State"]["Running"] = False
    world.add(attrs("c", "10.0.0.4"))
    world.streams[-1].close()
    await until(lambda: published.backends() == {"/team/c": (Address("10.0.0.4", 8000),)}, "resynced")
    assert world.calls["connect"] == 2 and watcher.reconnects == 1 and watcher.status == "following"


async def test_an_engine_that_is_down_keeps_the_last_routes_and_is_retried(
    watched: tuple[World, Published, DockerWatcher]
) -> None:
    world, published, watcher = watched
    world.down.set()
    world.streams[-1].close()
    await until(lambda: world.calls["connect"] >= 3, "retried")  # the first retry comes after BACKOFF_MIN
    assert watcher.status == "reconnecting"
    assert published.backends() == {"/team/a": (A,)}  # the last good routes keep serving
    world.down.clear()
    cid = world.add(attrs("d", "10.0.0.5"))
    with trio.fail_after(BACKOFF_MAX):
        while watcher.status != "following":
            await trio.sleep(0.01)
    assert "/team/d" in published.backends() and cid in watcher.containers.containers


async def test_an_engine_down_from_the_start_is_named_and_never_answered_until_it_does(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    world = World()
    world.down.set()
    watcher = DockerWatcher(Published(), Discovery(hold=0.0), url="tcp://127.0.0.1:1",
                            client_factory=world.factory)
    await nursery.start(watcher.run)
    with trio.fail_after(WAIT):
        await watcher.tried.wait()
    assert not watcher.answered and not watcher.synced.is_set()  # requests for unknown routes are not held
    warning = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()][0]  # (retried since, maybe)
    assert warning.startswith("Docker engine unreachable at tcp://127.0.0.1:1 (ConnectionRefusedError: ")
    assert warning.endswith("(start Docker, point --docker at it, or run with --no-docker)")
    world.down.clear()
    with trio.fail_after(BACKOFF_MAX + WAIT):
        await watcher.synced.wait()
    assert watcher.answered


async def test_an_engine_that_answers_with_an_error_is_not_called_unreachable(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    # Podman 4.3 refuses a status filter with "restarting" (it no longer
    # comes from fastroute, but any engine may answer a listing with an error).
    world = World()
    world.list_error = "GET /containers/json: 500 unknown container state: restarting: invalid argument"
    world.add(attrs("a", "10.0.0.2"))
    watcher = DockerWatcher(Published(), Discovery(hold=0.0), url="unix:///run/podman/podman.sock",
                            client_factory=world.factory)
    await nursery.start(watcher.run)
    await until(lambda: world.calls["list"] >= 2, "retried")
    assert watcher.answered and not watcher.synced.is_set()
    assert watcher.failure == ("the Docker engine at unix:///run/podman/podman.sock answered with an error: "
                               "GET /containers/json: 500 unknown container state: restarting: invalid argument")
    messages = [r.getMessage() for r in caplog.records]
    assert not any("unreachable" in m for m in messages)
    assert any(m.startswith(watcher.failure + "; retrying in ") for m in messages)
    world.list_error = None
    with trio.fail_after(BACKOFF_MAX + WAIT):
        await watcher.synced.wait()
    assert watcher.failure is None and watcher.engine == "Docker 0.0-fake"


async def test_a_health_event_without_its_status_is_read_from_inspect(
    watched: tuple[World, Published, DockerWatcher]
) -> None:
    # Podman's health_status event carries no status.
    world, published, _ = watched
    cid = next(iter(world.containers))
    world.containers[cid]["State"]["Health"]["Status"] = "unhealthy"
    world.emit(event("health_status", cid))
    await until(lambda: "/team/a" not in published.backends(), "out while unhealthy")
    world.containers[cid]["State"]["Health"]["Status"] = "healthy"
    world.emit(event("health_status", cid))
    await until(lambda: published.backends() == {"/team/a": (A,)}, "back once healthy")


async def podman_watched(nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch,
                         *containers: dict[str, Any]) -> tuple[World, Published, DockerWatcher]:
    """A watcher following a fake Podman with `containers`, its stop poll every 10 ms."""
    monkeypatch.setattr(_watcher, "STOP_POLL_INTERVAL", 0.01)
    world = World()
    world.engine = "Podman"
    for container in containers:
        world.add(container)
    published = Published()
    watcher = DockerWatcher(published, Discovery(hold=0.0), client_factory=world.factory)
    await nursery.start(watcher.run)
    return world, published, watcher


async def test_under_podman_a_container_leaves_when_its_stop_begins(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Podman sends no event until the container exited, and its running
    # listing leaves a stopping container out (its inspect says "stopping").
    a = attrs("a", "10.0.0.2")
    world, published, watcher = await podman_watched(nursery, monkeypatch, a, attrs("b", "10.0.0.3"))
    stopping = a["Id"]
    await until(lambda: set(published.backends()) == {"/team/a", "/team/b"}, "both routed")
    world.containers[stopping]["State"].update(Status="stopping", Running=False)
    await until(lambda: set(published.backends()) == {"/team/b"}, "a out, with no event")
    assert watcher.containers.leaving == {stopping}


async def test_an_event_being_applied_is_not_cut_off_by_the_next_poll(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The poll's time (or a hold's end) comes while an event waits for its
    # inspect: the event is still applied, then the poll runs.
    world, published, _ = await podman_watched(nursery, monkeypatch, attrs("a", "10.0.0.2"))
    await until(lambda: "/team/a" in published.backends(), "a routed")
    world.gate = threading.Event()
    inspected = world.calls["inspect"]
    world.emit(event("start", world.add(attrs("b", "10.0.0.3"))))
    await until(lambda: world.calls["inspect"] > inspected, "b's inspect begun")
    await trio.sleep(20 * _watcher.STOP_POLL_INTERVAL)  # the poll is due while the inspect is held
    world.gate.set()
    await until(lambda: "/team/b" in published.backends(), "b routed")


async def test_docker_is_not_polled_for_stops(nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its kill and stop events say when a stop begins.
    monkeypatch.setattr(_watcher, "STOP_POLL_INTERVAL", 0.001)  # a poll would follow each event
    world = World()
    published = Published()
    watcher = DockerWatcher(published, Discovery(hold=0.0), client_factory=world.factory)
    await nursery.start(watcher.run)
    with trio.fail_after(WAIT):
        await watcher.synced.wait()
    for name, ip in (("a", "10.0.0.2"), ("b", "10.0.0.3")):
        world.emit(event("start", world.add(attrs(name, ip))))
        await until(lambda: f"/team/{name}" in published.backends(), f"{name} routed")
    assert world.calls["running"] == 0


def test_the_engine_address_is_named_as_it_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from proxy.discovery._client import engine_address

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert engine_address(None) == "unix:///var/run/docker.sock"
    assert engine_address("tcp://10.0.0.1:2375") == "tcp://10.0.0.1:2375"
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    assert engine_address(None) == "DOCKER_HOST=unix:///run/user/1000/docker.sock"


async def test_a_bad_optional_label_is_routed_and_warned_about_once(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    world = World()
    published = Published()
    world.add(attrs("odd", "10.0.0.7", labels={"fastroute.healthcheck.path": "/h",
                                               "fastroute.healthcheck.interval": "1",
                                               "fastroute.idle-timeout": "soon"}))
    watcher = DockerWatcher(published, Discovery(hold=0.0), client_factory=world.factory)
    await nursery.start(watcher.run)
    with trio.fail_after(WAIT):
        await watcher.synced.wait()
    (route,) = published.tables[-1]
    assert route.backends == (Address("10.0.0.7", 8000),)
    assert route.check is not None and (route.check.interval, route.check.timeout) == (1.0, 1.0)
    world.emit(event("start", world.add(attrs("b", "10.0.0.3"))))  # another publish: the warning is not repeated
    await until(lambda: "/team/b" in published.backends(), "b routed")
    warnings = [r.getMessage() for r in caplog.records if "idle-timeout" in r.getMessage()]
    assert list(watcher.warnings) == warnings  # as the status page lists it (admin /routes "warnings")
    assert warnings == ["container odd (" + ("odd".encode().hex() * 16)[:12] + "): label fastroute.idle-timeout='soon' "
                        "is not a positive number of seconds; routed without it"]
