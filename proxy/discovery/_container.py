# Pure: what one container summary says to discovery. No `import docker`, no I/O.
#
# Input is the container summary the engine's list endpoint returns
# (GET /containers/json: Id, Names, Image, Labels, State, Status, HostConfig,
# NetworkSettings), or one made from an inspect (summary_from_inspect).
# Output is a Container: its prefixes, address and flags, or why it is skipped.
#
# Rules:
# - its prefixes: the fastroute.route label (comma-separated), else its
#   image's repository path (registry host, tag and digest dropped;
#   docker.io's "library/" too), or its name with --route-by name;
# - labels: fastroute.enable, fastroute.route, fastroute.host (the host
#   names its routes serve, comma-separated, "*.example.com" for one level
#   of subdomain; without it, every host), fastroute.port (default 8000),
#   fastroute.strip_prefix, fastroute.wake, fastroute.idle-timeout,
#   fastroute.healthcheck.*. A bad value of a label that decides where
#   requests go or who may start the container (enable, route, host, port,
#   wake) skips that container only, saying why; one of an optional
#   feature's (strip_prefix, idle-timeout, healthcheck.*) leaves that
#   feature off and the container routed, saying so (Container.ignored);
# - its address: the IP on --network if given, else on a network fastroute's
#   own container shares, else on its only network; never a guess: several
#   candidates, or network mode host/none, skip it with a reason.

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from fastroute import InvalidPrefix, normalise_prefix

from .._config import Address, Discovery, HealthCheck, health_check, parse_host
from .._errors import ConfigError
from .._json import Json, JsonObject

__all__ = ["DEFAULT_PORT", "Container", "has_ip_on", "has_labels", "health_of", "listed", "image_prefix", "parse_container",
           "summary_from_inspect"]

DEFAULT_PORT = 8000
_T = TypeVar("_T")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


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
    hosts: tuple[str | None, ...] = (None,)  # fastroute.host, normalised; (None,): every host
    check: HealthCheck | None = None  # fastroute.healthcheck.path (and .interval, .timeout)
    # Labels of an optional feature with a bad value: it is routed without
    # that feature, and each says so (ContainerSet.advance's warnings).
    ignored: tuple[str, ...] = ()

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def keys(self) -> tuple[tuple[str | None, str], ...]:
        """The routes it serves, as (host, prefix): each of its hosts with each of its prefixes."""
        return tuple((host, prefix) for host in self.hosts for prefix in self.prefixes)


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


LISTED_STATES = frozenset({"running", "paused", "restarting"})  # discovery's; stopped ones only to wake


def listed(summary: Mapping[str, Json]) -> bool:
    """Whether discovery keeps a container the engine listed: running, paused or restarting, or
    created or exited with fastroute.wake (a request may start it)."""
    state = summary.get("State", "")
    if state in LISTED_STATES:
        return True
    return state in ("created", "exited") and "fastroute.wake" in (summary.get("Labels") or {})


def health_of(summary: Mapping[str, Json]) -> str | None:
    """A summary's health: healthy, unhealthy, health: starting, or None (no HEALTHCHECK, or not said)."""
    return _health(summary.get("Status", ""))


def _health(status: str) -> str | None:
    # The list endpoint reports health inside Status: "Up 3 minutes (healthy)".
    for health in ("healthy", "unhealthy", "health: starting"):
        if status.endswith(f"({health})"):
            return health
    return None


def _address(summary: Mapping[str, Json], name: str, discovery: Discovery, port: int) -> Address:
    mode = (summary.get("HostConfig") or {}).get("NetworkMode", "")
    if mode in ("host", "none") or mode.startswith("container:"):
        raise ValueError(f"network mode {mode!r} has no address of its own; give it a network and pass --network")
    networks: Mapping[str, Json] = (summary.get("NetworkSettings") or {}).get("Networks") or {}
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


def parse_container(summary: Mapping[str, Json], discovery: Discovery) -> Container | None:
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
        ignored: list[str] = []
        strip = _soft(lambda: _label_bool(labels, "fastroute.strip_prefix", False), False, ignored)
        port_text = labels.get("fastroute.port", str(DEFAULT_PORT)).strip()
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"label fastroute.port={port_text!r} is not a port number (1-65535)")
        port = int(port_text)
        idle_timeout = _soft(lambda: _idle_timeout(labels), None, ignored)
        check = _soft(lambda: _check(labels), None, ignored)
        # A Swarm task is routed by its service's name (_swarm.py), and named as its container is.
        prefixes, source = _prefixes(summary, labels, summary.get("ServiceName") or name, discovery)
        hosts = _hosts(labels)
        address = _address(summary, name, discovery, port) if running else None
    except ValueError as error:
        return Container(cid, name, state=state, routable=routable, skip=str(error), wake=wake, health=health)
    return Container(cid, name, prefixes, address, strip, source, routable, state, wake=wake,
                     idle_timeout=idle_timeout, health=health, hosts=hosts, check=check, ignored=tuple(ignored))


def _soft(read: Callable[[], _T], without: _T, ignored: list[str]) -> _T:
    # A label of an optional feature: a bad value leaves the feature off,
    # noted, rather than the whole container unrouted.
    try:
        return read()
    except ValueError as error:
        ignored.append(f"{error}; routed without it")
        return without


def _hosts(labels: Mapping[str, str]) -> tuple[str | None, ...]:
    if "fastroute.host" not in labels:
        return (None,)
    raw = labels["fastroute.host"]
    pieces = [p.strip() for p in raw.split(",") if p.strip()]
    if not pieces:
        raise ValueError(f"label fastroute.host={raw!r} names no host")
    try:
        return tuple(dict.fromkeys(parse_host(p, f"label fastroute.host={raw!r}") for p in pieces))
    except ConfigError as error:
        raise ValueError(str(error)) from None


def _check(labels: Mapping[str, str]) -> HealthCheck | None:
    path = labels.get("fastroute.healthcheck.path")
    if path is None:
        if any(key.startswith("fastroute.healthcheck.") for key in labels):
            raise ValueError("label fastroute.healthcheck.interval or .timeout needs fastroute.healthcheck.path")
        return None
    timeout = labels.get("fastroute.healthcheck.timeout")
    return health_check(path.strip(), labels.get("fastroute.healthcheck.interval", "5").strip(),
                        None if timeout is None else timeout.strip(), where="label fastroute.healthcheck")


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
    summary: Mapping[str, Json], labels: Mapping[str, str], name: str, discovery: Discovery
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


def has_labels(present: Mapping[str, str], wanted: Sequence[str]) -> bool:
    """Whether `present` carries every KEY or KEY=VALUE in `wanted` (--docker-label)."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in present or (sep and present[key] != value):
            return False
    return True


def has_ip_on(summary: Mapping[str, Json], network: str) -> bool:
    settings = ((summary.get("NetworkSettings") or {}).get("Networks") or {}).get(network) or {}
    return bool(settings.get("IPAddress") or settings.get("GlobalIPv6Address"))


def summary_from_inspect(attrs: Mapping[str, Json]) -> JsonObject:
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
