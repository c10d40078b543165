# Pure: the containers discovery knows -> routes. No `import docker`, no I/O;
# the clock is an argument.
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
# - one prefix, one pool: containers that give the same prefix share it; if
#   they disagree on strip_prefix, the prefix keeps the first container's
#   setting (by name) and the others are skipped with a reason;
# - a prefix whose last container left is held (no backend, hold_until) for
#   --hold; advance(now) moves those holds on, once per published table.

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from .._config import Address, Discovery, Route
from .._json import Json
from ._container import Container, health_of, parse_container

__all__ = ["TERMINATING", "YOUNG", "ContainerSet", "event_action", "needs_summary", "network_change"]

YOUNG = 5.0  # seconds after becoming ready during which a refused connect means "still booting"
# Signals after which a container is on its way out (kill events carry one).
TERMINATING = {"2", "3", "9", "15", "SIGINT", "SIGQUIT", "SIGKILL", "SIGTERM", "INT", "QUIT", "KILL", "TERM"}


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
    held: dict[tuple[str | None, str], tuple[float, Route]] = field(default_factory=dict)  # key -> (until, route)
    probe_ports: bool = True
    # cid -> (the address that accepted a connection, time.monotonic() then;
    # -inf when it joined because --ready-timeout ran out: never young).
    ready: dict[str, tuple[Address, float]] = field(default_factory=dict)
    _last: dict[tuple[str | None, str], Route] = field(default_factory=dict)

    def replace_all(self, summaries: Iterable[Mapping[str, Json]], *, events_missed: bool = False) -> None:
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

    def update(self, summary: Mapping[str, Json] | None, cid: str, *, joining: bool, resumed: bool = False) -> None:
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

    def apply(self, action: str, cid: str, summary: Mapping[str, Json] | None = None) -> None:
        """One event's action (event_action) on container `cid`.

        "leave" and "remove" need nothing more; the others need the
        container's fresh summary (needs_summary), None if it is gone.
        """
        if action == "leave":
            self.leave(cid)
        elif action == "remove":
            self.remove(cid)
        elif action == "health":
            health = health_of(summary) if summary is not None else None
            if health == "unhealthy":
                self.leave(cid)
            self.update(summary, cid, joining=health == "healthy", resumed=health == "healthy")
        else:
            self.update(summary, cid, joining=action in ("join", "resume"), resumed=action == "resume")

    def leave(self, cid: str) -> None:
        """Out of every pool now (kill/stop/die/pause/unhealthy); no I/O needed."""
        self.leaving.add(cid)

    def _in_pools(self) -> Iterator[str]:
        # Routable and not leaving: in its pools, or will be once probed.
        return (cid for cid, container in self.containers.items() if container.routable and cid not in self.leaving)

    def serves_any(self) -> bool:
        """Whether a container is in its pools (or would be, once probed)."""
        return next(self._in_pools(), None) is not None

    def not_running(self, running: Collection[str]) -> list[str]:
        """Containers in their pools that the engine no longer lists as running.

        Podman sends no event when a stop begins (its first is die, once the
        container exited) and lists a stopping container as not running:
        this is how the watcher sees its stop begin (STOP_POLL_INTERVAL).
        `running` must be listed after every event applied so far.
        """
        return [cid for cid in self._in_pools() if cid not in running]

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

    def advance(self, now: float) -> tuple[tuple[Route, ...], list[str]]:
        """Move the holds on to `now`; the routes for what is routable now, plus held ones, and warnings.

        The warnings: containers skipped for one route (they disagree on
        strip_prefix), and labels of an optional feature that a container is
        routed without (Container.ignored).

        A prefix whose last container left (since the last call) is kept,
        with no backends and `hold_until`, for the hold time; requests for it
        wait for a container. Call it once for each table published.
        """
        Key = tuple[str | None, str]  # (host, prefix): each of a container's hosts with each of its prefixes
        pools: dict[Key, list[Container]] = {}
        boots: dict[Key, list[Container]] = {}
        warnings: list[str] = []
        for container in sorted(self.containers.values(), key=lambda c: (c.name, c.id)):
            warnings += [f"container {container.name} ({container.short_id}): {note}" for note in container.ignored]
            if self.serving(container):
                for key in container.keys:
                    pools.setdefault(key, []).append(container)
            elif self.booting(container):
                for key in container.keys:
                    boots.setdefault(key, []).append(container)
        routes: dict[Key, Route] = {}
        for (host, prefix), members in pools.items():
            first = members[0]
            agreeing = [c for c in members if c.strip_prefix == first.strip_prefix]
            for other in members:
                if other.strip_prefix != first.strip_prefix:
                    warnings.append(
                        f"container {other.name} ({other.short_id}) skipped for {_name(host, prefix)}: its "
                        f"fastroute.strip_prefix differs from {first.name}'s, which serves that prefix"
                    )
            addresses = tuple(dict.fromkeys(c.address for c in agreeing if c.address is not None))
            source = f"docker:{first.source}"
            routes[(host, prefix)] = Route(prefix, addresses, first.strip_prefix, source, host=host, check=first.check)
        # A prefix only booting containers give: known, not ready. Requests
        # for it wait (up to --hold each) rather than get 404.
        for (host, prefix), members in boots.items():
            if (host, prefix) not in routes:
                first = members[0]
                routes[(host, prefix)] = Route(prefix, (), first.strip_prefix, f"docker:{first.source}", booting=True,
                                               host=host)
        for key, route in self._last.items():
            if key not in routes and (route.backends or route.booting) and self.discovery.hold > 0:
                self.held[key] = (now + self.discovery.hold, route)
        for key in list(self.held):
            until, route = self.held[key]
            if key in routes or until <= now:
                del self.held[key]
                continue
            routes[key] = Route(route.prefix, (), route.strip_prefix, route.source, hold_until=until, host=route.host)
        self._last = dict(routes)
        self._add_sleepers(routes)
        return tuple(routes.values()), warnings

    def _add_sleepers(self, routes: dict[tuple[str | None, str], Route]) -> None:
        """A route to wake for each prefix nothing serves now, but that a stopped (or stopping)
        fastroute.wake container gives: requests for it start that container."""
        sleepers: dict[tuple[str | None, str], list[Container]] = {}
        for container in sorted(self.containers.values(), key=lambda c: (c.name, c.id)):
            if container.wake and container.skip is None and (
                    not container.routable or container.id in self.leaving or container.id in self.waking):
                for key in container.keys:
                    sleepers.setdefault(key, []).append(container)
        for (host, prefix), members in sleepers.items():
            held = routes.get((host, prefix))
            if held is not None and (held.backends or held.booting):
                continue  # served, or about to be: nothing to wake
            first = members[0]
            ids = tuple(c.id for c in members if c.strip_prefix == first.strip_prefix)
            routes[(host, prefix)] = Route(prefix, (), first.strip_prefix, f"docker:{first.source}",
                                           hold_until=held.hold_until if held else None, wake=ids, host=host)

    def next_hold_expiry(self) -> float | None:
        return min((until for until, _ in self.held.values()), default=None)


def _name(host: str | None, prefix: str) -> str:
    return prefix if host is None else host + prefix


def event_action(event: Mapping[str, Json]) -> tuple[str, str] | None:
    """What a Docker event means for discovery: (action, container id) or None.

    Actions: "join" (refresh, clearing a leave mark), "resume" (the same, and
    the container serves whatever a lagging list says), "health" (its health
    changed, to what its summary says), "refresh", "leave", "remove".

    Both engines' shapes are read: Docker's, and Podman's (its compatible
    API says remove for destroy, gives health_status without the status,
    and shapes network events differently).
    """
    kind = event.get("Type")
    action = event.get("Action", "") or event.get("status", "")
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    if kind == "network":
        # Docker names the container in Attributes.container (Actor.ID is the
        # network's); Podman puts the container's ID in Actor.ID and its name
        # in Attributes.name, and names no network.
        cid = attributes.get("container") or actor.get("ID")
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
    if action == "health_status":  # Podman: the status is not in the event; inspect says it
        return ("health", cid)
    if action == "kill":
        return ("leave", cid) if str(attributes.get("signal", "")).upper() in TERMINATING else None
    if action in ("stop", "die", "pause", "oom", "health_status: unhealthy"):
        return ("leave", cid)
    if action in ("destroy", "remove"):  # Podman says remove
        return ("remove", cid)
    if action in ("rename", "update"):
        return ("refresh", cid)
    return None


def needs_summary(action: str) -> bool:
    """Whether an event's action needs the container's fresh summary (an engine call) before apply()."""
    return action not in ("leave", "remove")


def network_change(event: Mapping[str, Json]) -> tuple[str, bool] | None:
    """For a network connect or disconnect event: (network name, connected).

    The engine announces a change before its list shows it, so the watcher
    asks again until the list agrees with the event.
    """
    if event.get("Type") != "network" or event.get("Action") not in ("connect", "disconnect"):
        return None
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    if "container" not in attributes:  # Podman's shape: its `name` is the container's; no network is named
        return None
    name = attributes.get("name")
    return (str(name), event.get("Action") == "connect") if name else None
