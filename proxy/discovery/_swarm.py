# Pure: what a Swarm service and its tasks say to discovery. No `import
# docker`, no I/O. A first step of issue 20: the watcher does not call it yet.
#
# Swarm services become routes by the containers' rules, so a service is
# read into the container summaries discovery already parses
# (_container.parse_container): one per running task, with the service's
# image, its spec's labels (fastroute.* on the service, not on its
# containers) and its name (for --route-by name), and the task's address
# on each network it is attached to. With the label fastroute.swarm.vip=true
# the service is one summary instead, at its virtual IP: the engine's IPVS
# balances behind it, so fastroute neither balances per task nor probes
# readiness nor holds requests while no task is ready (say so where it is
# documented).
#
# Rules:
# - a task is routable only while it runs and is meant to: Status.State
#   "running" and DesiredState "running". When the orchestrator decides a
#   task goes (DesiredState "shutdown", before its container is told to
#   stop), the task leaves the table: the leave-before-dying rule;
# - a service converges while an update or a rollback is in progress, or
#   while a replicated service has not the desired count of such tasks: the
#   watcher then lists its tasks again at a short interval (converging()).
# Shapes: GET /services (ID, Spec{Name, Labels, TaskTemplate.ContainerSpec.Image,
# Mode}, Endpoint.VirtualIPs, UpdateStatus) and GET /tasks (ID, ServiceID,
# Slot, Status.State, DesiredState, NetworksAttachments[{Network{ID, Spec.Name},
# Addresses ["10.0.1.5/24"]}]), as the Engine API returns them.

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._container import _label_bool

__all__ = ["CONVERGING_UPDATES", "VIP_LABEL", "converging", "running_tasks", "service_summaries"]

VIP_LABEL = "fastroute.swarm.vip"
CONVERGING_UPDATES = {"updating", "rollback_started"}  # UpdateStatus.State while tasks are being replaced


def running_tasks(tasks: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The tasks that run and are meant to go on running."""
    return [task for task in tasks
            if (task.get("Status") or {}).get("State") == "running" and task.get("DesiredState") == "running"]


def converging(service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the service is changing: an update or rollback in progress, or not its replica count yet."""
    if ((service.get("UpdateStatus") or {}).get("State") or "") in CONVERGING_UPDATES:
        return True
    replicated = ((service.get("Spec") or {}).get("Mode") or {}).get("Replicated")
    if replicated is not None:
        return len(running_tasks(tasks)) != int(replicated.get("Replicas") or 0)
    return False  # global: one per node, and nothing here says how many nodes should run one


def _address(cidr: str) -> str:
    return cidr.split("/", 1)[0]


def _summary(service: Mapping[str, Any], summary_id: str, networks: dict[str, dict[str, str]]) -> dict[str, Any]:
    spec = service.get("Spec") or {}
    container_spec = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return {
        "Id": summary_id,
        "Names": ["/" + str(spec.get("Name", ""))],
        "Image": container_spec.get("Image", ""),
        "Labels": spec.get("Labels") or {},
        "State": "running",
        "Status": "Up",
        "HostConfig": {"NetworkMode": ""},
        "NetworkSettings": {"Networks": networks},
    }


def service_summaries(service: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]],
                      network_names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Container summaries for the service's routable backends: its running tasks, or its VIP.

    Args:
        service: the service as GET /services lists it.
        tasks: its tasks as GET /tasks?filters={"service": [id]} lists them.
        network_names: network ID -> name (the VIPs name their network by ID only).
    """
    labels = (service.get("Spec") or {}).get("Labels") or {}
    if _label_bool(labels, VIP_LABEL, False):  # (a value neither true nor false: ValueError, as for a container)
        if not running_tasks(tasks):
            return []  # no task behind the VIP: nothing answers there
        vips = {network_names.get(vip.get("NetworkID", ""), vip.get("NetworkID", "")):
                {"IPAddress": _address(vip.get("Addr", "")), "NetworkID": vip.get("NetworkID", "")}
                for vip in (service.get("Endpoint") or {}).get("VirtualIPs") or [] if vip.get("Addr")}
        return [_summary(service, f"service-{service['ID']}", vips)] if vips else []
    summaries = []
    for task in running_tasks(tasks):
        attached = {}
        for attachment in task.get("NetworksAttachments") or []:
            network = attachment.get("Network") or {}
            name = (network.get("Spec") or {}).get("Name") or network_names.get(network.get("ID", ""), "")
            addresses = attachment.get("Addresses") or []
            if name and addresses:
                attached[name] = {"IPAddress": _address(addresses[0]), "NetworkID": network.get("ID", "")}
        summaries.append(_summary(service, f"task-{task['ID']}", attached))
    return summaries
