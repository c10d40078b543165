# Pure: Docker's view of containers -> routes. No `import docker`, no I/O.
#
# Input is the container summary the engine's list endpoint returns
# (GET /containers/json: Id, Names, Image, Labels, State, Status, HostConfig,
# NetworkSettings), for one container or all. Output is Route tuples.
#
# Rules:
# - a container is routed while it runs, is not paused, is ready, and has
#   not been told to stop (ContainerSet.leave, fed by kill/stop/die/pause
#   events, so it leaves *before* it dies);
# - ready: healthy if it has a HEALTHCHECK; otherwise its port accepted a
#   connection (the watcher probes it and calls mark_ready) since it last
#   started, was unpaused or changed address. Until then it is booting: its
#   prefixes are routes with no backend and `booting` set, so requests wait
#   for it instead of getting 404 or a refused connection;
# - a refused connection to a container that became ready less than
#   YOUNG seconds ago makes it booting again (refused()): it was not ready
#   after all. Older ones are the pool's business (ejection with backoff);
# - its prefixes: the fastroute.route label (comma-separated), else its
#   image's repository path (registry host, tag and digest dropped;
#   docker.io's "library/" too), or its name with --route-by name;
# - labels: fastroute.enable, fastroute.route, fastroute.port (default
#   8000), fastroute.strip_prefix; an invalid one skips that container only;
# - its address: the IP on --network if given, else on a network fastroute's
#   own container shares, else on its only network; never a guess: several
#   candidates, or network mode host/none, skip it with a reason;
# - one prefix, one pool: containers that give the same prefix share it; if
#   they disagree on strip_prefix, the prefix keeps the first container's
#   setting (by name) and the others are skipped with a reason.

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fastroute import InvalidPrefix, normalise_prefix

from .._config import Address, Discovery, Route

__all__ = [
    "DEFAULT_PORT",
    "YOUNG",
    "Container",
    "ContainerSet",
    "network_change",
    "event_action",
    "has_ip_on",
    "needs_summary",
    "image_prefix",
    "parse_container",
    "summary_from_inspect",
]

DEFAULT_PORT = 8000
YOUNG = 5.0  # seconds after becoming ready during which a refused connect means "still booting"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
# Signals after which a container is on its way out (kill events carry one).
_TERMINATING = {"2", "3", "9", "15", "SIGINT", "SIGQUIT", "SIGKILL", "SIGTERM", "INT", "QUIT", "KILL", "TERM"}


@dataclass(frozen=True, slots=True)
class Container:
    """What discovery made of one container."""

    id: str
    name: str
    prefixes: tuple[str, ...] = ()
    address: Address | None = None
    strip_prefix: bool = False
    source: str = "image"  # label | image | name
    routable: bool = False  # running, unpaused, healthy
    state: str = ""  # Docker's State and health, for `fastroute routes`
    skip: str | None = None  # why it is not routed although running, or None
    wake: bool = False  # fastroute.wake=true: may be started by a request while stopped
    idle_timeout: float | None = None  # fastroute.idle-timeout: stop it this long idle, if we woke it
    health: str | None = None  # healthy | unhealthy | health: starting; None without a HEALTHCHECK

    @property
    def short_id(self) -> str:
        return self.id[:12]


def image_prefix(image: str) -> str | None:
    """The route prefix of an image reference, or None for a bare image ID.

    "steve/foo:1.2" -> "/steve/foo"; "registry.example:5000/team/app@sha256:..."
    -> "/team/app"; "nginx" and "docker.io/library/nginx" -> "/nginx".
    """
    reference = image.split("@", 1)[0]
    if reference.startswith("sha256:") or (len(reference) in (12, 64) and _is_hex(reference)):
        return None
    parts = reference.split("/")
    registry = None
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry = parts.pop(0)
    last = parts[-1]
    if ":" in last:
        parts[-1] = last.split(":", 1)[0]
    if registry in (None, "docker.io", "index.docker.io", "registry-1.docker.io") and len(parts) > 1 \
            and parts[0] == "library":
        parts.pop(0)
    if not all(parts):
        return None
    return "/" + "/".join(parts)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _label_bool(labels: Mapping[str, str], key: str, default: bool) -> bool:
    value = labels.get(key)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"label {key}={value!r} is not true or false")


def _checked_prefix(prefix: str, what: str) -> str:
    try:
        return normalise_prefix(prefix)
    except InvalidPrefix as error:
        raise ValueError(f"{what}: {error}") from None


def _health(status: str) -> str | None:
    # The list endpoint reports health inside Status: "Up 3 minutes (healthy)".
    for health in ("healthy", "unhealthy", "health: starting"):
        if status.endswith(f"({health})"):
            return health
    return None


def _address(summary: Mapping[str, Any], name: str, discovery: Discovery, port: int) -> Address:
    mode = (summary.get("HostConfig") or {}).get("NetworkMode", "")
    if mode in ("host", "none") or mode.startswith("container:"):
        raise ValueError(f"network mode {mode!r} has no address of its own; give it a network and pass --network")
    networks: Mapping[str, Any] = (summary.get("NetworkSettings") or {}).get("Networks") or {}
    if discovery.network is not None:
        if discovery.network not in networks:
            raise ValueError(f"not on network {discovery.network!r} (given by --network)")
        candidates = [discovery.network]
    else:
        shared = [n for n in networks if n in discovery.own_networks]
        candidates = shared or list(networks)
        if not candidates:
            raise ValueError("on no network")
        if len(candidates) > 1:
            raise ValueError(
                f"on several networks ({', '.join(sorted(candidates))}): pass --network to choose one"
            )
    settings = networks[candidates[0]] or {}
    ip = settings.get("IPAddress") or settings.get("GlobalIPv6Address")
    if not ip:
        raise ValueError(f"has no IP address on network {candidates[0]!r}")
    ipaddress.ip_address(ip)
    return Address(ip, port)


def parse_container(summary: Mapping[str, Any], discovery: Discovery) -> Container | None:
    """What discovery makes of a container summary; None if it is hidden.

    Hidden: fastroute.enable=false, or not enabled with --exposed-by-default=false
    (fastroute.wake=true enables a container too: it is an explicit opt-in).
    A stopped container is parsed only if it may be woken; it has no address.
    """
    cid = summary["Id"]
    names = summary.get("Names") or []
    name = names[0].lstrip("/") if names else cid[:12]
    labels: Mapping[str, str] = summary.get("Labels") or {}
    docker_state = summary.get("State", "")
    health = _health(summary.get("Status", ""))
    routable = docker_state == "running" and health in (None, "healthy")
    state = docker_state + (f" ({health})" if health else "")
    running = docker_state in ("running", "paused", "restarting")
    try:
        wake = _label_bool(labels, "fastroute.wake", False)
    except ValueError as error:
        if not running:
            return Container(cid, name, state=state, routable=False)
        return Container(cid, name, state=state, routable=routable, skip=str(error))
    if not running and not wake:
        return Container(cid, name, state=state, routable=False)  # on its way out: nothing to check
    try:
        if not _label_bool(labels, "fastroute.enable", discovery.exposed_by_default or wake):
            return None
        strip = _label_bool(labels, "fastroute.strip_prefix", False)
        port_text = labels.get("fastroute.port", str(DEFAULT_PORT)).strip()
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"label fastroute.port={port_text!r} is not a port number (1-65535)")
        port = int(port_text)
        idle_timeout = _idle_timeout(labels)
        prefixes, source = _prefixes(summary, labels, name, discovery)
        address = _address(summary, name, discovery, port) if running else None
    except ValueError as error:
        return Container(cid, name, state=state, routable=routable, skip=str(error), wake=wake, health=health)
    return Container(cid, name, prefixes, address, strip, source, routable, state, wake=wake,
                     idle_timeout=idle_timeout, health=health)


def _idle_timeout(labels: Mapping[str, str]) -> float | None:
    text = labels.get("fastroute.idle-timeout")
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ValueError(f"label fastroute.idle-timeout={text!r} is not a positive number of seconds")
    return value


def _prefixes(
    summary: Mapping[str, Any], labels: Mapping[str, str], name: str, discovery: Discovery
) -> tuple[tuple[str, ...], str]:
    if "fastroute.route" in labels:
        raw = labels["fastroute.route"]
        pieces = [p.strip() for p in raw.split(",") if p.strip()]
        if not pieces:
            raise ValueError(f"label fastroute.route={raw!r} names no prefix")
        return tuple(dict.fromkeys(_checked_prefix(p, f"label fastroute.route={raw!r}") for p in pieces)), "label"
    if discovery.route_by == "name":
        return (_checked_prefix("/" + name, f"container name {name!r}"),), "name"
    image = summary.get("Image", "")
    prefix = image_prefix(image)
    if prefix is None:
        raise ValueError(
            f"image {image!r} has no repository name (run it by name, or set the fastroute.route label)"
        )
    return (_checked_prefix(prefix, f"image {image!r}"),), "image"


@dataclass
class ContainerSet:
    """Every container discovery knows, which are ready, and which are leaving. Not thread-safe; trio only.

    probe_ports=False takes a running (and healthy) container as ready without
    a probe: `fastroute routes`, which shows what the engine says.
    """

    discovery: Discovery
    containers: dict[str, Container] = field(default_factory=dict)
    leaving: set[str] = field(default_factory=set)
    waking: set[str] = field(default_factory=set)  # started for a request, not ready yet: not routed
    held: dict[str, tuple[float, Route]] = field(default_factory=dict)  # prefix -> (until, route)
    probe_ports: bool = True
    # cid -> (the address that accepted a connection, time.monotonic() then;
    # -inf when it joined because --ready-timeout ran out: never young).
    ready: dict[str, tuple[Address, float]] = field(default_factory=dict)
    _last: dict[str, Route] = field(default_factory=dict)

    def replace_all(self, summaries: Iterable[Mapping[str, Any]], *, events_missed: bool = False) -> None:
        """A full resync: exactly these containers exist now.

        Leave marks are kept for containers still listed (one stopping slowly
        is listed as running), unless events were missed (the stream broke):
        then the start that would have cleared a mark may be among them, and
        the list is the only truth left.
        """
        fresh: dict[str, Container] = {}
        for summary in summaries:
            container = parse_container(summary, self.discovery)
            if container is not None:
                fresh[container.id] = container
        self.leaving = set() if events_missed else self.leaving & set(fresh)
        self.ready = {cid: seen for cid, seen in self.ready.items() if cid in fresh}
        self.containers = fresh

    def update(self, summary: Mapping[str, Any] | None, cid: str, *, joining: bool, resumed: bool = False) -> None:
        """One container's fresh summary (None: it no longer exists).

        `joining` is true for start/unpause/healthy events: they clear a
        leave mark. Other refreshes (network, rename) keep it. `resumed` is
        true for unpause and healthy events: the engine's list can still say
        "paused" or "health: starting" just after them, so the event wins.
        """
        if summary is None:
            self.remove(cid)
            return
        container = parse_container(summary, self.discovery)
        if resumed and container is not None and container.skip is None and not container.routable:
            container = replace(container, routable=True, state="running")
        if joining:
            self.leaving.discard(cid)
            self.ready.pop(cid, None)  # a new process (or a thawed one): probe it again
        if container is None:
            self.containers.pop(cid, None)
        else:
            self.containers[cid] = container

    def apply(self, action: str, cid: str, summary: Mapping[str, Any] | None = None) -> None:
        """One event's action (event_action) on container `cid`.

        "leave" and "remove" need nothing more; the others need the
        container's fresh summary (needs_summary), None if it is gone.
        """
        if action == "leave":
            self.leave(cid)
        elif action == "remove":
            self.remove(cid)
        else:
            self.update(summary, cid, joining=action in ("join", "resume"), resumed=action == "resume")

    def leave(self, cid: str) -> None:
        """Out of every pool now (kill/stop/die/pause/unhealthy); no I/O needed."""
        self.leaving.add(cid)

    def remove(self, cid: str) -> None:
        self.containers.pop(cid, None)
        self.leaving.discard(cid)
        self.ready.pop(cid, None)

    # --- readiness -----------------------------------------------------------

    def _candidate(self, container: Container) -> bool:
        # Running, meant to be routed, and not on its way out or being woken.
        return (container.skip is None and container.address is not None and container.id not in self.leaving
                and container.id not in self.waking)

    def serving(self, container: Container) -> bool:
        """In its pools now: running, unpaused, healthy or probed, not leaving."""
        if not container.routable or not self._candidate(container):
            return False
        if container.health is not None or not self.probe_ports:
            return True
        seen = self.ready.get(container.id)
        return seen is not None and seen[0] == container.address

    def booting(self, container: Container) -> bool:
        """Started and not ready yet: its port has not accepted, or its HEALTHCHECK is still starting."""
        if not self._candidate(container) or self.serving(container):
            return False
        return container.routable or container.health == "health: starting"

    def to_probe(self) -> list[tuple[str, Address]]:
        """(id, address) of every booting container whose port the watcher should probe."""
        return [(c.id, c.address) for c in self.containers.values()
                if c.address is not None and self.probe_wanted(c.id, c.address)]

    def probe_wanted(self, cid: str, address: Address) -> bool:
        """Whether container `cid` is booting at `address` and waits for its port to accept."""
        container = self.containers.get(cid)
        return (container is not None and container.address == address and container.health is None
                and self.booting(container))

    def mark_ready(self, cid: str, address: Address, now: float, *, young: bool = True) -> bool:
        """`address` accepted a connection at `now` (young=False: it joins without, --ready-timeout ran out).

        Returns whether that changed anything (the container still has that
        address and was not ready).
        """
        container = self.containers.get(cid)
        if container is None or container.address != address or self.serving(container):
            return False
        self.ready[cid] = (address, now if young else -math.inf)
        return True

    def refused(self, address: Address, now: float) -> bool:
        """A connect to `address` was refused at `now`. Whether that means "still booting".

        True for a container that became ready less than YOUNG seconds ago
        (it is booting again: out of its pools, probed anew) or whose engine
        state is "restarting"; False otherwise (the pool ejects the backend).
        """
        booting_again = False
        for container in self.containers.values():
            if container.address != address:
                continue
            if container.state.startswith("restarting"):
                booting_again = True
                continue
            seen = self.ready.get(container.id)
            if seen is not None and seen[0] == address and now - seen[1] < YOUNG and self.serving(container):
                del self.ready[container.id]
                booting_again = True
        return booting_again

    def skipped(self) -> list[Container]:
        return [c for c in self.containers.values() if c.skip is not None]

    def routes(self, now: float) -> tuple[tuple[Route, ...], list[str]]:
        """The routes for what is routable now, plus held ones, and warnings.

        A prefix whose last container left is kept, with no backends and
        `hold_until`, for the hold time; requests for it wait for a container.
        """
        pools: dict[str, list[Container]] = {}
        boots: dict[str, list[Container]] = {}
        warnings: list[str] = []
        for container in sorted(self.containers.values(), key=lambda c: (c.name, c.id)):
            if self.serving(container):
                for prefix in container.prefixes:
                    pools.setdefault(prefix, []).append(container)
            elif self.booting(container):
                for prefix in container.prefixes:
                    boots.setdefault(prefix, []).append(container)
        routes: dict[str, Route] = {}
        for prefix, members in pools.items():
            first = members[0]
            agreeing = [c for c in members if c.strip_prefix == first.strip_prefix]
            for other in members:
                if other.strip_prefix != first.strip_prefix:
                    warnings.append(
                        f"container {other.name} ({other.short_id}) skipped for {prefix}: its "
                        f"fastroute.strip_prefix differs from {first.name}'s, which serves that prefix"
                    )
            addresses = tuple(dict.fromkeys(c.address for c in agreeing if c.address is not None))
            source = f"docker:{first.source}"
            routes[prefix] = Route(prefix, addresses, first.strip_prefix, source)
        # A prefix only booting containers give: known, not ready. Requests
        # for it wait (up to --hold each) rather than get 404.
        for prefix, members in boots.items():
            if prefix not in routes:
                first = members[0]
                routes[prefix] = Route(prefix, (), first.strip_prefix, f"docker:{first.source}", booting=True)
        for prefix, route in self._last.items():
            if prefix not in routes and (route.backends or route.booting) and self.discovery.hold > 0:
                self.held[prefix] = (now + self.discovery.hold, route)
        for prefix in list(self.held):
            until, route = self.held[prefix]
            if prefix in routes or until <= now:
                del self.held[prefix]
                continue
            routes[prefix] = Route(prefix, (), route.strip_prefix, route.source, hold_until=until)
        self._last = dict(routes)
        # A prefix nothing serves now, but that a stopped (or stopping)
        # fastroute.wake container gives: requests for it start that container.
        sleepers: dict[str, list[Container]] = {}
        for container in sorted(self.containers.values(), key=lambda c: (c.name, c.id)):
            if container.wake and container.skip is None and (
                    not container.routable or container.id in self.leaving or container.id in self.waking):
                for prefix in container.prefixes:
                    sleepers.setdefault(prefix, []).append(container)
        for prefix, members in sleepers.items():
            held = routes.get(prefix)
            if held is not None and (held.backends or held.booting):
                continue  # served, or about to be: nothing to wake
            first = members[0]
            ids = tuple(c.id for c in members if c.strip_prefix == first.strip_prefix)
            routes[prefix] = Route(prefix, (), first.strip_prefix, f"docker:{first.source}",
                                   hold_until=held.hold_until if held else None, wake=ids)
        return tuple(routes.values()), warnings

    def next_hold_expiry(self) -> float | None:
        return min((until for until, _ in self.held.values()), default=None)


def event_action(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """What a Docker event means for discovery: (action, container id) or None.

    Actions: "join" (refresh, clearing a leave mark), "resume" (the same, and
    the container serves whatever a lagging list says), "refresh", "leave",
    "remove".
    """
    kind = event.get("Type")
    action = event.get("Action", "") or event.get("status", "")
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    if kind == "network":
        cid = attributes.get("container")
        if cid and action in ("connect", "disconnect"):
            return ("refresh", cid)
        return None
    if kind != "container":
        return None
    cid = actor.get("ID") or event.get("id")
    if not cid:
        return None
    if action == "start":
        return ("join", cid)
    if action in ("unpause", "health_status: healthy"):
        return ("resume", cid)
    if action == "kill":
        return ("leave", cid) if str(attributes.get("signal", "")).upper() in _TERMINATING else None
    if action in ("stop", "die", "pause", "oom", "health_status: unhealthy"):
        return ("leave", cid)
    if action == "destroy":
        return ("remove", cid)
    if action in ("rename", "update"):
        return ("refresh", cid)
    return None


def needs_summary(action: str) -> bool:
    """Whether an event's action needs the container's fresh summary (an engine call) before apply()."""
    return action not in ("leave", "remove")


def network_change(event: Mapping[str, Any]) -> tuple[str, bool] | None:
    """For a network connect or disconnect event: (network name, connected).

    The engine announces a change before its list shows it, so the watcher
    asks again until the list agrees with the event.
    """
    if event.get("Type") != "network" or event.get("Action") not in ("connect", "disconnect"):
        return None
    name = ((event.get("Actor") or {}).get("Attributes") or {}).get("name")
    return (str(name), event.get("Action") == "connect") if name else None


def has_ip_on(summary: Mapping[str, Any], network: str) -> bool:
    settings = ((summary.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}
    return bool(settings.get("IPAddress") or settings.get("GlobalIPv6Address"))


def summary_from_inspect(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The list endpoint's summary shape, made from one container's inspect data.

    Inspecting one container costs the engine the same whatever else runs;
    listing filtered by id walks every container. The watcher inspects on
    events and lists only for full resyncs, and both feed parse_container.
    """
    state = attrs.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    status = "Up" if state.get("Running") else "Exited"
    if health in ("healthy", "unhealthy"):
        status += f" ({health})"
    elif health == "starting":
        status += " (health: starting)"
    config = attrs.get("Config") or {}
    return {
        "Id": attrs["Id"],
        "Names": [attrs.get("Name", "")],
        "Image": config.get("Image", ""),
        "Labels": config.get("Labels") or {},
        "State": state.get("Status", ""),
        "Status": status,
        "HostConfig": {"NetworkMode": (attrs.get("HostConfig") or {}).get("NetworkMode", "")},
        "NetworkSettings": {"Networks": (attrs.get("NetworkSettings") or {}).get("Networks") or {}},
    }
