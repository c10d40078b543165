# Pure: what a Swarm service and its tasks say to discovery. No `import
# docker`, no I/O; the clock is an argument. The watcher (_watcher.py) lists
# services and tasks and carries out what SwarmSet decides.
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
#   stop), the task leaves the table: the leave-before-dying rule. On this
#   node the container's kill event takes it out too (swarm_event), as for
#   any container, which covers a list that lags;
# - a task "starting" (the engine waits for its HEALTHCHECK) is booting: a
#   pool with no ready task holds requests for it instead of failing them;
# - containers that are tasks are not routed as containers while Swarm is
#   followed: their service is (without_tasks);
# - a service converges while an update or a rollback is in progress, or
#   while a replicated service has not the desired count of such tasks: the
#   watcher then lists its tasks again at a short interval (converging()).
# Shapes: GET /services (ID, Spec{Name, Labels, TaskTemplate.ContainerSpec.Image,
# Mode}, Endpoint.VirtualIPs, UpdateStatus) and GET /tasks (ID, ServiceID,
# Slot, Status.State, DesiredState, NetworksAttachments[{Network{ID, Spec.Name},
# Addresses ["10.0.1.5/24"]}]), as the Engine API returns them.

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._json import Json, JsonObject
from ._container import _label_bool
from ._model import TERMINATING

__all__ = ["CONVERGING_UPDATES", "POLL_INTERVAL", "SETTLE_WINDOW", "SERVICE_LABEL", "TASK_LABEL", "VIP_LABEL",
           "SwarmSet", "converging", "running_tasks", "service_summaries", "swarm_event", "without_tasks"]

VIP_LABEL = "fastroute.swarm.vip"
TASK_LABEL = "com.docker.swarm.task.id"  # on a task's container, set by the engine
SERVICE_LABEL = "com.docker.swarm.service.id"
CONVERGING_UPDATES = {"updating", "rollback_started"}  # UpdateStatus.State while tasks are being replaced
POLL_INTERVAL = 0.25  # seconds between listings of a converging service's tasks
# Seconds a service is listed again after any event of its own, converging
# or not: the event that starts an update comes before the updater has
# marked it "updating" (the Engine emits no task events at all).
SETTLE_WINDOW = 2.0


def running_tasks(tasks: Sequence[Mapping[str, Json]]) -> list[Mapping[str, Json]]:
    """The tasks that run and are meant to go on running."""
    return [task for task in tasks
            if (task.get("Status") or {}).get("State") == "running" and task.get("DesiredState") == "running"]


def _live_tasks(tasks: Sequence[Mapping[str, Json]]) -> list[tuple[Mapping[str, Json], bool]]:
    # (task, running): the running ones and those starting (waiting for their
    # HEALTHCHECK), both meant to run.
    return [(task, (task.get("Status") or {}).get("State") == "running") for task in tasks
            if task.get("DesiredState") == "running" and (task.get("Status") or {}).get("State") in ("running", "starting")]


def converging(service: Mapping[str, Json], tasks: Sequence[Mapping[str, Json]]) -> bool:
    """Whether the service is changing: an update or rollback in progress, or not its replica count yet."""
    if ((service.get("UpdateStatus") or {}).get("State") or "") in CONVERGING_UPDATES:
        return True
    replicated = ((service.get("Spec") or {}).get("Mode") or {}).get("Replicated")
    if replicated is not None:
        return len(running_tasks(tasks)) != int(replicated.get("Replicas") or 0)
    return False  # global: one per node, and nothing here says how many nodes should run one


def _address(cidr: str) -> str:
    return cidr.split("/", 1)[0]


def _summary(service: Mapping[str, Json], summary_id: str, networks: dict[str, dict[str, str]],
             running: bool = True, task: Mapping[str, Json] | None = None) -> JsonObject:
    spec = service.get("Spec") or {}
    container_spec = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    name = str(spec.get("Name", ""))
    if task is not None:  # as the engine names the task's container: web.1.<task id> (global: web.<node id>.<task id>)
        name = f"{name}.{task.get('Slot') or task.get('NodeID', '')}.{task.get('ID', '')}"
    return {
        "Id": summary_id,
        "Names": ["/" + name],
        "ServiceName": str(spec.get("Name", "")),
        "Image": container_spec.get("Image", ""),
        "Labels": spec.get("Labels") or {},
        "State": "running",
        "Status": "Up" if running else "Up (health: starting)",
        "HostConfig": {"NetworkMode": ""},
        "NetworkSettings": {"Networks": networks},
    }


def service_summaries(service: Mapping[str, Json], tasks: Sequence[Mapping[str, Json]],
                      network_names: Mapping[str, str]) -> list[JsonObject]:
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
    for task, running in _live_tasks(tasks):
        attached = {}
        for attachment in task.get("NetworksAttachments") or []:
            network = attachment.get("Network") or {}
            name = (network.get("Spec") or {}).get("Name") or network_names.get(network.get("ID", ""), "")
            addresses = attachment.get("Addresses") or []
            if name and addresses:
                attached[name] = {"IPAddress": _address(addresses[0]), "NetworkID": network.get("ID", "")}
        summaries.append(_summary(service, f"task-{task['ID']}", attached, running, task))
    return summaries


def without_tasks(summaries: Sequence[Mapping[str, Json]]) -> list[Mapping[str, Json]]:
    """Container summaries less the containers of Swarm tasks (their services are routed instead)."""
    return [summary for summary in summaries if TASK_LABEL not in (summary.get("Labels") or {})]


def swarm_event(event: Mapping[str, Json]) -> tuple[str, str] | None:
    """What an event means while Swarm is followed, or None if it is not about Swarm.

    ("list", service id): list that service and its tasks again (a service
    event; a task's container started or turned healthy); ("gone", service
    id): the service was removed; ("leave", summary id): a task's container
    is being stopped on this node; ("resync", ""): a node changed, list
    everything; ("ignore", ""): another event of a task's container.
    """
    kind = event.get("Type")
    action = event.get("Action", "") or event.get("status", "")
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    if kind == "service":
        sid = actor.get("ID") or ""
        if not sid:
            return None
        return ("gone", sid) if action == "remove" else ("list", sid)
    if kind == "node":
        return ("resync", "")
    if kind != "container" or TASK_LABEL not in attributes:
        return None
    if action == "kill" and str(attributes.get("signal", "")).upper() not in TERMINATING:
        return ("ignore", "")  # a SIGHUP to reload, say: a task with its own stop signal waits for the listing
    if action in ("kill", "stop", "die", "oom", "pause", "health_status: unhealthy"):
        return ("leave", f"task-{attributes[TASK_LABEL]}")
    if action in ("start", "unpause", "health_status: healthy") and attributes.get(SERVICE_LABEL):
        return ("list", attributes[SERVICE_LABEL])
    return ("ignore", "")


@dataclass
class SwarmSet:
    """The services followed, their backends' summary ids, and which to list again when.

    Not thread-safe; trio only. Each method returns what the watcher must
    change in its ContainerSet.
    """

    network_names: dict[str, str] = field(default_factory=dict)  # network ID -> name
    backends: dict[str, frozenset[str]] = field(default_factory=dict)  # service ID -> summary ids
    skipped: dict[str, str] = field(default_factory=dict)  # service name -> why it is not routed
    _poll_until: dict[str, float] = field(default_factory=dict)  # service ID -> list it until then, at least
    _converging: set[str] = field(default_factory=set)

    def replace_all(self, services: Sequence[Mapping[str, Json]],
                    tasks: Sequence[Mapping[str, Json]]) -> list[JsonObject]:
        """A full listing: the summaries of every service's backends."""
        by_service: dict[str, list[Mapping[str, Json]]] = {}
        for task in tasks:
            by_service.setdefault(str(task.get("ServiceID", "")), []).append(task)
        self.backends = {}
        self.skipped = {}
        self._converging = set()
        summaries: list[JsonObject] = []
        for service in services:
            _, found = self.listed(str(service["ID"]), service, by_service.get(str(service["ID"]), []))
            summaries += found
        self._poll_until = {sid: until for sid, until in self._poll_until.items() if sid in self.backends}
        return summaries

    def listed(self, sid: str, service: Mapping[str, Json] | None,
               tasks: Sequence[Mapping[str, Json]]) -> tuple[list[str], list[JsonObject]]:
        """Service `sid` listed again (None: it is gone): (summary ids gone, its summaries now)."""
        before = self.backends.pop(sid, frozenset())
        self._converging.discard(sid)
        if service is None:
            self._poll_until.pop(sid, None)
            return sorted(before), []
        name = str((service.get("Spec") or {}).get("Name", sid))
        self.skipped.pop(name, None)
        try:
            summaries = service_summaries(service, tasks, self.network_names)
        except ValueError as error:
            self.skipped[name] = str(error)
            summaries = []
        self.backends[sid] = frozenset(s["Id"] for s in summaries)
        if converging(service, tasks):
            self._converging.add(sid)
        return sorted(before - self.backends[sid]), summaries

    def touched(self, sid: str, now: float) -> None:
        """An event named service `sid`: list it for SETTLE_WINDOW, at least."""
        self._poll_until[sid] = max(self._poll_until.get(sid, 0.0), now + SETTLE_WINDOW)

    def service_of(self, summary_id: str) -> str | None:
        return next((sid for sid, ids in self.backends.items() if summary_id in ids), None)

    def to_poll(self, now: float) -> list[str]:
        """The services to list again now: converging, or touched in the last SETTLE_WINDOW."""
        for sid, until in list(self._poll_until.items()):
            if until <= now:
                del self._poll_until[sid]
        return sorted(self._converging | set(self._poll_until))
