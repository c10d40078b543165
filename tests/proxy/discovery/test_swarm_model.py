# Pure: Swarm services and tasks, read as the container summaries discovery
# parses (discovery/_swarm.py), with no engine.

from __future__ import annotations

from typing import Any

import pytest

from proxy._config import Address, Discovery
from proxy.discovery._container import parse_container
from proxy.discovery._swarm import VIP_LABEL, converging, running_tasks, service_summaries

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
         network: str = "ov1") -> dict[str, Any]:
    return {"ID": tid, "ServiceID": "svc-web", "Status": {"State": state}, "DesiredState": desired,
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


@pytest.mark.parametrize(("state", "desired"), [
    pytest.param("running", "shutdown", id="told_to_go_still_running"),
    pytest.param("starting", "running", id="not_running_yet"),
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
