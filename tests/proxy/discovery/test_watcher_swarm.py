# The watcher following Swarm services, against the fake engine of
# test_watcher.py: what it lists, when it lists again, and what an engine
# that is no manager (or a filter refusing the Swarm calls) leaves it with.
# The real single-node Swarm is in test_swarm.py.

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from proxy._config import Address, Discovery
from proxy.discovery._swarm import POLL_INTERVAL, SETTLE_WINDOW, TASK_LABEL
from proxy.discovery._watcher import DockerWatcher

from .test_watcher import WAIT, Published, World, attrs, event, until

T1 = Address("10.0.9.1", 8000)
T2 = Address("10.0.9.2", 8000)


def service(replicas: int = 1, update: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "ID": "svc-web",
        "Spec": {"Name": "web", "Labels": {}, "TaskTemplate": {"ContainerSpec": {"Image": "team/web:1"}},
                 "Mode": {"Replicated": {"Replicas": replicas}}},
    }
    if update:
        found["UpdateStatus"] = {"State": update}
    return found


def task(tid: str, ip: str, *, desired: str = "running") -> dict[str, Any]:
    return {"ID": tid, "ServiceID": "svc-web", "Status": {"State": "running"}, "DesiredState": desired,
            "NetworksAttachments": [{"Network": {"ID": "net-id", "Spec": {"Name": "net"}}, "Addresses": [f"{ip}/24"]}]}


def task_container(tid: str, ip: str) -> dict[str, Any]:
    found = attrs(f"web.{tid}", ip, labels={TASK_LABEL: tid, "com.docker.swarm.service.id": "svc-web"})
    found["Config"]["Image"] = "team/web:1@sha256:" + "b" * 64
    return found


async def start(nursery: trio.Nursery, world: World, swarm: str = "auto") -> tuple[Published, DockerWatcher]:
    published = Published()
    # ready_timeout: the fake's task addresses do not listen; 0.05 s routes them without a probe.
    watcher = DockerWatcher(published, Discovery(hold=0.0, swarm=swarm, ready_timeout=0.05),
                            client_factory=world.factory)
    await nursery.start(watcher.run)
    with trio.fail_after(WAIT):
        await watcher.synced.wait()
    return published, watcher


@pytest.fixture
def swarm_world() -> World:
    world = World()
    world.manager = True
    world.services["svc-web"] = service()
    world.tasks = [task("t1", "10.0.9.1")]
    world.add(task_container("t1", "10.0.9.1"))  # the task's own container, on this node
    world.add(attrs("plain", "10.0.0.2"))
    return world


async def test_a_manager_routes_its_services_and_leaves_task_containers_to_them(
    nursery: trio.Nursery, swarm_world: World
) -> None:
    published, watcher = await start(nursery, swarm_world)
    await until(lambda: published.backends().get("/team/web") == (T1,), "the task routed")
    assert set(published.backends()) == {"/team/web", "/team/plain"}  # the task's container is no route of its own
    assert swarm_world.calls["events swarm"] == 1 and watcher.swarm is not None


async def test_a_service_event_lists_it_again_and_polls_it_while_it_converges(
    nursery: trio.Nursery, swarm_world: World
) -> None:
    published, _ = await start(nursery, swarm_world)
    await until(lambda: published.backends().get("/team/web") == (T1,), "the task routed")
    swarm_world.services["svc-web"] = service(replicas=2)
    swarm_world.emit({"Type": "service", "Action": "update", "Actor": {"ID": "svc-web", "Attributes": {}}})
    listed = swarm_world.calls["tasks"]
    # No event tells of the second task: polling finds it.
    await until(lambda: swarm_world.calls["tasks"] >= listed + 3, "listed again while converging")
    swarm_world.tasks.append(task("t2", "10.0.9.2"))
    await until(lambda: published.backends().get("/team/web") == (T1, T2), "the new task routed")
    # Settled: polling stops once SETTLE_WINDOW after the event is over.
    await trio.sleep(SETTLE_WINDOW + 2 * POLL_INTERVAL)
    settled = swarm_world.calls["tasks"]
    await trio.sleep(4 * POLL_INTERVAL)
    assert swarm_world.calls["tasks"] == settled


async def test_a_task_told_to_shut_down_leaves_and_its_kill_takes_it_out_with_no_engine_call(
    nursery: trio.Nursery, swarm_world: World
) -> None:
    swarm_world.services["svc-web"] = service(replicas=2)
    swarm_world.tasks.append(task("t2", "10.0.9.2"))
    published, _ = await start(nursery, swarm_world)
    await until(lambda: published.backends().get("/team/web") == (T1, T2), "both routed")
    calls = sum(swarm_world.calls.values())
    (cid,) = [c for c, a in swarm_world.containers.items() if a["Config"]["Labels"].get(TASK_LABEL) == "t1"]
    swarm_world.emit(event("kill", cid, signal="15", **{TASK_LABEL: "t1", "com.docker.swarm.service.id": "svc-web"}))
    await until(lambda: published.backends().get("/team/web") == (T2,), "t1 out")
    assert not any(swarm_world.calls[k] > 0 for k in ("inspect",))
    assert sum(swarm_world.calls.values()) - calls <= 2  # out first; then its service is listed again (1-2 calls)
    # A later listing that still says it runs (it lags) does not bring it back.
    await trio.sleep(2 * POLL_INTERVAL)
    assert published.backends().get("/team/web") == (T2,)
    # Once the orchestrator says so, the task is gone for good.
    swarm_world.tasks[0]["DesiredState"] = "shutdown"
    swarm_world.services["svc-web"] = service(replicas=1)
    swarm_world.emit({"Type": "service", "Action": "update", "Actor": {"ID": "svc-web", "Attributes": {}}})
    await until(lambda: published.backends().get("/team/web") == (T2,) and swarm_world.calls["service"] > 0, "listed")


async def test_a_removed_service_leaves_at_once(nursery: trio.Nursery, swarm_world: World) -> None:
    published, _ = await start(nursery, swarm_world)
    await until(lambda: "/team/web" in published.backends(), "routed")
    del swarm_world.services["svc-web"]
    swarm_world.emit({"Type": "service", "Action": "remove", "Actor": {"ID": "svc-web", "Attributes": {}}})
    await until(lambda: "/team/web" not in published.backends(), "out")


async def test_a_node_event_lists_everything_again(nursery: trio.Nursery, swarm_world: World) -> None:
    published, _ = await start(nursery, swarm_world)
    await until(lambda: "/team/web" in published.backends(), "routed")
    swarm_world.tasks = [task("t2", "10.0.9.2")]  # its node went down; the task was moved
    swarm_world.emit({"Type": "node", "Action": "update", "Actor": {"ID": "n1", "Attributes": {}}})
    await until(lambda: published.backends().get("/team/web") == (T2,), "resynced")
    assert swarm_world.calls["services"] == 2


async def test_swarm_on_with_an_engine_that_is_no_manager_says_why_and_follows_containers(
    nursery: trio.Nursery, swarm_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fastroute.docker")
    swarm_world.manager = False
    published, watcher = await start(nursery, swarm_world, swarm="on")
    assert watcher.swarm is None and "/team/plain" in published.backends()
    assert any("not a Swarm manager" in r.getMessage() for r in caplog.records)


async def test_swarm_off_never_asks(nursery: trio.Nursery, swarm_world: World) -> None:
    published, watcher = await start(nursery, swarm_world, swarm="off")
    assert watcher.swarm is None and swarm_world.calls["info"] == 0 and swarm_world.calls["events swarm"] == 0
    assert "/team/web" in published.backends()  # the task's container, routed as a container (its image)


async def test_auto_behind_a_filter_that_refuses_the_swarm_calls_follows_containers(
    nursery: trio.Nursery, swarm_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fastroute.docker")
    swarm_world.refuse_swarm = True
    published, watcher = await start(nursery, swarm_world)
    assert watcher.swarm is None and set(published.backends()) == {"/team/plain", "/team/web"}
    assert any("Swarm services not followed" in r.getMessage() for r in caplog.records)
