# Pure: Swarm services and tasks, read as the container summaries discovery
# parses (discovery/_swarm.py), with no engine.

from __future__ import annotations

from typing import Any

import pytest

from proxy._config import Address, Discovery
from proxy.discovery._container import parse_container
from proxy.discovery._model import ContainerSet
from proxy.discovery._swarm import (
    SETTLE_WINDOW, TASK_LABEL, VIP_LABEL, SwarmSet, converging, running_tasks, service_summaries, swarm_event,
    without_tasks,
)

NETWORKS = {"ov1": "apps", "ingress-id": "ingress"}


def service(name: str = "web", image: str = "steve/foo:1.2@sha256:" + "a" * 64, *,
            labels: dict[str, str] | None = None, replicas: int | None = 2, update: str | None = None,
            vips: list[dict[str, str]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"Name": name, "Labels": labels or {},
                            "TaskTemplate": {"ContainerSpec": {"Image": image, "Labels": {"ignored": "yes"}}},
                            "Mode": {"Replicated": {"Replicas": replicas}} if replicas is not None else {"Global": {}}}
    found: dict[str, Any] = {"ID": f"svc-{name}", "Spec": spec, "Endpoint": {"VirtualIPs": vips or []}}
    if update is not None:
        found["UpdateStatus"] = {"State": update}
    return found


def task(tid: str, ip: str = "10.0.1.5", *, state: str = "running", desired: str = "running",
         network: str = "ov1", service_id: str = "svc-web") -> dict[str, Any]:
    return {"ID": tid, "ServiceID": service_id, "Slot": int(tid[1:]) if tid[1:].isdigit() else 1, "Status": {"State": state}, "DesiredState": desired,
            "NetworksAttachments": [{"Network": {"ID": network, "Spec": {"Name": NETWORKS[network]}},
                                     "Addresses": [f"{ip}/24"]}]}


def parsed(summaries: list[dict[str, Any]], **discovery: Any) -> list[Any]:
    return [parse_container(s, Discovery(network="apps", **discovery)) for s in summaries]


def test_running_tasks_are_backends_routed_by_the_services_image() -> None:
    containers = parsed(service_summaries(service(), [task("t1", "10.0.1.5"), task("t2", "10.0.1.6")], NETWORKS))
    assert [(c.prefixes, c.address, c.source, c.routable) for c in containers] == [
        (("/steve/foo",), Address("10.0.1.5", 8000), "image", True),
        (("/steve/foo",), Address("10.0.1.6", 8000), "image", True),
    ]
    assert [c.id for c in containers] == ["task-t1", "task-t2"]
    assert [c.name for c in containers] == ["web.1.t1", "web.2.t2"]  # as the engine names their containers


@pytest.mark.parametrize(("state", "desired"), [
    pytest.param("running", "shutdown", id="told_to_go_still_running"),
    pytest.param("preparing", "running", id="not_started_yet"),
    pytest.param("shutdown", "shutdown", id="gone"),
    pytest.param("failed", "shutdown", id="failed"),
])
def test_a_task_not_running_or_told_to_go_is_no_backend(state: str, desired: str) -> None:
    tasks = [task("keep", "10.0.1.5"), task("other", "10.0.1.6", state=state, desired=desired)]
    assert [s["Id"] for s in service_summaries(service(), tasks, NETWORKS)] == ["task-keep"]
    assert [t["ID"] for t in running_tasks(tasks)] == ["keep"]


def test_the_services_labels_count_and_its_containers_do_not() -> None:
    labelled = service(labels={"fastroute.route": "/api", "fastroute.port": "9000"})
    (container,) = parsed(service_summaries(labelled, [task("t1")], NETWORKS))
    assert container.prefixes == ("/api",) and container.address == Address("10.0.1.5", 9000)
    assert container.source == "label"


def test_route_by_name_uses_the_service_name() -> None:
    (container,) = parsed(service_summaries(service(name="shop"), [task("t1")], NETWORKS), route_by="name")
    assert container.prefixes == ("/shop",)


def test_the_address_is_the_one_on_the_chosen_network() -> None:
    both = task("t1", "10.0.1.5")
    both["NetworksAttachments"].append({"Network": {"ID": "ingress-id", "Spec": {"Name": "ingress"}},
                                        "Addresses": ["10.255.0.9/16"]})
    (container,) = parsed(service_summaries(service(), [both], NETWORKS))
    assert container.address == Address("10.0.1.5", 8000)


def test_with_the_vip_label_the_service_is_one_backend_at_its_virtual_ip() -> None:
    vip = service(labels={VIP_LABEL: "true"}, vips=[{"NetworkID": "ov1", "Addr": "10.0.1.2/24"},
                                                    {"NetworkID": "ingress-id", "Addr": "10.255.0.4/16"}])
    (container,) = parsed(service_summaries(vip, [task("t1"), task("t2", "10.0.1.6")], NETWORKS))
    assert container.address == Address("10.0.1.2", 8000) and container.id == "service-svc-web"
    assert service_summaries(vip, [task("t1", state="starting")], NETWORKS) == []  # nothing behind it


@pytest.mark.parametrize(("svc", "tasks", "expected"), [
    pytest.param(service(replicas=2), [task("a"), task("b")], False, id="settled"),
    pytest.param(service(replicas=4), [task("a"), task("b")], True, id="scaling_up"),
    pytest.param(service(replicas=1), [task("a"), task("b")], True, id="scaling_down"),
    pytest.param(service(replicas=2), [task("a"), task("b", desired="shutdown"), task("c", state="starting")],
                 True, id="replacing_a_task"),
    pytest.param(service(update="updating"), [task("a"), task("b")], True, id="rolling_update"),
    pytest.param(service(update="rollback_started"), [task("a"), task("b")], True, id="rolling_back"),
    pytest.param(service(update="completed"), [task("a"), task("b")], False, id="update_done"),
    pytest.param(service(replicas=None), [task("a")], False, id="global"),
])
def test_converging(svc: dict[str, Any], tasks: list[dict[str, Any]], expected: bool) -> None:
    assert converging(svc, tasks) is expected


def test_a_task_waiting_for_its_healthcheck_is_booting_and_holds_requests() -> None:
    # The engine keeps a task "starting" until its HEALTHCHECK passes.
    containers = ContainerSet(Discovery(network="apps"))
    containers.replace_all(service_summaries(service(), [task("t1", state="starting")], NETWORKS))
    (route,), _ = containers.advance(0.0)
    assert (route.prefix, route.backends, route.booting) == ("/steve/foo", (), True)
    containers.replace_all(service_summaries(service(), [task("t1")], NETWORKS))
    assert containers.to_probe() == [("task-t1", Address("10.0.1.5", 8000))]  # running: probed, as a container


def test_the_containers_of_tasks_are_left_to_their_services() -> None:
    plain = {"Id": "c1", "Labels": {"fastroute.route": "/x"}}
    of_a_task = {"Id": "c2", "Labels": {TASK_LABEL: "t1"}}
    assert without_tasks([plain, of_a_task]) == [plain]


def _event(kind: str, action: str, actor_id: str = "", **attributes: str) -> dict[str, Any]:
    return {"Type": kind, "Action": action, "Actor": {"ID": actor_id, "Attributes": attributes}}


TASK_ATTRIBUTES = {TASK_LABEL: "t1", "com.docker.swarm.service.id": "svc-web", "name": "web.1.t1"}


@pytest.mark.parametrize(("event", "expected"), [
    pytest.param(_event("service", "create", "svc-web"), ("list", "svc-web"), id="service_created"),
    pytest.param(_event("service", "update", "svc-web", name="web"), ("list", "svc-web"), id="service_updated"),
    pytest.param(_event("service", "remove", "svc-web"), ("gone", "svc-web"), id="service_removed"),
    pytest.param(_event("service", "update"), None, id="service_without_id"),
    pytest.param(_event("node", "update", "n1"), ("resync", ""), id="node_changed"),
    pytest.param(_event("container", "kill", "c1", signal="15", **TASK_ATTRIBUTES), ("leave", "task-t1"),
                 id="task_container_killed"),
    pytest.param(_event("container", "kill", "c1", signal="1", **TASK_ATTRIBUTES), ("ignore", ""),
                 id="task_container_sent_sighup"),
    pytest.param(_event("container", "die", "c1", **TASK_ATTRIBUTES), ("leave", "task-t1"), id="task_container_died"),
    pytest.param(_event("container", "health_status: unhealthy", "c1", **TASK_ATTRIBUTES), ("leave", "task-t1"),
                 id="task_container_unhealthy"),
    pytest.param(_event("container", "start", "c1", **TASK_ATTRIBUTES), ("list", "svc-web"),
                 id="task_container_started"),
    pytest.param(_event("container", "health_status: healthy", "c1", **TASK_ATTRIBUTES), ("list", "svc-web"),
                 id="task_container_healthy"),
    pytest.param(_event("container", "create", "c1", **TASK_ATTRIBUTES), ("ignore", ""), id="task_container_other"),
    pytest.param(_event("container", "kill", "c1", signal="15", name="plain"), None, id="plain_container"),
    pytest.param(_event("network", "connect", "n1", container="c1"), None, id="network"),
])
def test_swarm_event(event: dict[str, Any], expected: tuple[str, str] | None) -> None:
    assert swarm_event(event) == expected


def test_a_swarm_set_says_which_backends_went_and_which_services_to_list_again() -> None:
    swarm = SwarmSet(network_names=NETWORKS)
    summaries = swarm.replace_all([service(replicas=2)], [task("a"), task("b", "10.0.1.6"),
                                                          task("x", service_id="svc-gone")])
    assert [s["Id"] for s in summaries] == ["task-a", "task-b"]
    assert swarm.to_poll(0.0) == [] and swarm.service_of("task-b") == "svc-web"
    # Scaled to 3: listed again, it converges until the third task runs.
    gone, now = swarm.listed("svc-web", service(replicas=3), [task("a"), task("b", "10.0.1.6")])
    assert gone == [] and len(now) == 2 and swarm.to_poll(0.0) == ["svc-web"]
    gone, now = swarm.listed("svc-web", service(replicas=3), [task("a"), task("b", desired="shutdown"),
                                                              task("c", "10.0.1.7"), task("d", "10.0.1.8")])
    assert gone == ["task-b"] and [s["Id"] for s in now] == ["task-a", "task-c", "task-d"]
    assert swarm.to_poll(0.0) == []
    # An event of its own: listed for SETTLE_WINDOW even if it looks settled.
    swarm.touched("svc-web", 10.0)
    assert swarm.to_poll(10.0 + SETTLE_WINDOW - 0.01) == ["svc-web"] and swarm.to_poll(10.0 + SETTLE_WINDOW) == []
    assert swarm.listed("svc-web", None, []) == (["task-a", "task-c", "task-d"], [])
    assert swarm.backends == {} and swarm.service_of("task-a") is None


def test_a_service_with_a_bad_vip_label_is_skipped_with_the_reason() -> None:
    swarm = SwarmSet(network_names=NETWORKS)
    assert swarm.replace_all([service(labels={VIP_LABEL: "maybe"})], [task("a")]) == []
    assert "fastroute.swarm.vip" in swarm.skipped["web"]
    swarm.listed("svc-web", service(), [task("a")])
    assert swarm.skipped == {}
