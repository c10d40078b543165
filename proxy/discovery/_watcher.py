# The Docker watcher: a trio task that keeps the gateway's routes equal to
# what runs. The docker SDK blocks, so every call runs in a worker thread;
# events come over a memory channel.
#
# Rules:
# - open the events stream first, then list: an event racing the list is
#   seen twice, never lost (handling is idempotent);
# - an event updates only the container it names (one inspect), never a
#   full re-list; bursts are applied together, one swap;
# - leave events (kill with a terminating signal, stop, die, pause,
#   unhealthy) take the container out at once, with no engine call;
# - the stream ending or failing is not fatal: keep the last good routes,
#   reconnect with capped backoff forever, then resync in full; a periodic
#   full resync guards against missed events, and a ping watchdog against a
#   stream that stays open while the engine is frozen;
# - a container without a HEALTHCHECK is routed once its port accepts
#   (_probe.py); until then its route is "booting" and requests wait;
# - every engine call runs in a thread that a cancellation abandons: a hung
#   engine never holds up a shutdown (docker-py's own timeout is 30 s);
# - with Swarm followed (_listing.follows_swarm, asked on each connect),
#   services are routes too (_swarm.SwarmSet). The engine sends no task
#   events, so a service event lists that service's tasks again, and a
#   service that converges (or had an event in the last SETTLE_WINDOW) is
#   listed every POLL_INTERVAL until it settles; node events resync in full;
# - Podman sends no event when a stop begins: while it is followed and a
#   container is routed, one bare listing every STOP_POLL_INTERVAL shows the
#   stopping ones, which leave then (ContainerSet.not_running).

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import trio

from .._config import Address, Discovery, Route
from .._json import JsonObject
from ._client import DockerApi, EventStream, connect, engine_address
from ._container import has_ip_on, has_labels, summary_from_inspect
from ._errors import EngineError, EngineStalled
from ._listing import follows_swarm, list_service, list_swarm, refused
from ._model import ContainerSet, event_action, needs_summary, network_change
from ._probe import Prober
from ._swarm import POLL_INTERVAL, TASK_LABEL, SwarmSet, swarm_event, without_tasks

__all__ = ["BACKOFF_MAX", "DockerRoutes", "DockerWatcher", "inspect_one"]

log = logging.getLogger("fastroute.docker")
_T = TypeVar("_T")

BACKOFF_MIN = 0.5  # seconds before the first reconnect
BACKOFF_MAX = 30.0  # seconds, the longest wait between reconnects
EVENT_BATCH = 256  # events applied before one table swap, at most
WATCHDOG_INTERVAL = 10.0  # seconds between pings of the engine while following it
WATCHDOG_TIMEOUT = 5.0  # seconds a ping may take before the engine counts as stalled
LAGGING_LIST_RETRIES = 20  # asks after a network event the list does not show yet
LAGGING_LIST_PAUSE = 0.025  # seconds between those asks
RECENT_EVENTS = 50  # Docker events kept for the admin status page
STOP_POLL_INTERVAL = 0.5  # seconds between Podman's running listings (about 10 ms of its CPU each)


def inspect_one(engine: DockerApi, labels: Sequence[str], cid: str) -> JsonObject | None:
    """One container as a list summary, or None if it is gone or filtered out (--docker-label)."""
    attrs = engine.inspect(cid)
    if attrs is None:
        return None
    summary = summary_from_inspect(attrs)
    return summary if has_labels(summary["Labels"], labels) else None


class DockerRoutes(Protocol):
    """Where the watcher hands every new set of Docker's routes (routing/_sources.RouteSources)."""

    def set_docker(self, routes: tuple[Route, ...]) -> None: ...


class DockerWatcher:
    """Follows one Docker engine and hands every new set of routes to `sink`.

    client_factory(url): the DockerApi to follow (discovery/_client.py's
    connect; a test passes a fake); called again on every reconnect.
    """

    def __init__(
        self,
        sink: DockerRoutes,
        discovery: Discovery,
        *,
        url: str | None = None,
        labels: Sequence[str] = (),
        client_factory: Callable[[str | None], DockerApi] = connect,
    ) -> None:
        self.sink = sink
        self.discovery = discovery
        self.url = url
        self.labels = tuple(labels)
        self.client_factory = client_factory
        self.containers = ContainerSet(discovery)
        self.status = "starting"  # starting | following | reconnecting
        self.last_event = 0.0  # time.monotonic() of the last event or resync
        self.reconnects = 0
        self.synced = trio.Event()  # set after the first full sync
        # The engine has answered since start (a connect succeeded): until
        # then a request for a route nobody knows is not held for it.
        self.answered = False
        self.tried = trio.Event()  # set once the first connect has succeeded or failed
        self.recent: deque[JsonObject] = deque(maxlen=RECENT_EVENTS)  # for the status page
        self.prober = Prober(lambda: self.containers, self._publish, discovery.ready_timeout)
        self.swarm: SwarmSet | None = None  # while Swarm services are followed (this session)
        self._next_poll = 0.0  # time.monotonic() when converging services are listed next
        self._warned: set[str] = set()
        # What discovery cannot route as asked, as of the last publish: skipped
        # containers and services, labels routed without (the status page).
        self.warnings: tuple[str, ...] = ()
        self._published: tuple[Route, ...] | None = None
        self.engine = ""  # "Podman 4.3.1": the engine followed, once it answered
        self.failure: str | None = None  # the engine's error answer, while it gives one
        self.polls_stops = False  # this session's engine sends no event when a stop begins (Podman)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the engine forever. Started at once; `synced` tells when the first listing is in."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.prober.run)
            task_status.started()
            await self._follow_forever()
            nursery.cancel_scope.cancel()

    async def _follow_forever(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            try:
                await self._session()
                log.warning("Docker events stream ended; reconnecting")
                backoff = BACKOFF_MIN
            except Exception as error:  # noqa: BLE001 - any engine failure (trio.Cancelled, a BaseException, passes)
                self.tried.set()
                if isinstance(error, EngineError):  # it answered, with an error: say what it said
                    self.failure = f"the Docker engine at {engine_address(self.url)} answered with an error: {error}"
                    log.warning("%s; retrying in %.1fs", self.failure, backoff)
                else:
                    advice = "" if self.answered else " (start Docker, point --docker at it, or run with --no-docker)"
                    log.warning("Docker engine unreachable at %s (%s); retrying in %.1fs%s",
                                engine_address(self.url), _one_line(error), backoff, advice)
                self.status = "reconnecting"
                await trio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                self.reconnects += 1
                continue
            self.status = "reconnecting"
            self.reconnects += 1
            await trio.sleep(backoff)

    async def _session(self) -> None:
        client = await _engine(self.client_factory, self.url)
        self.answered = True
        self.tried.set()
        name, version = await _engine(client.identity)
        if self.engine != f"{name} {version}":
            self.engine = f"{name} {version}"
            log.info("following %s at %s", self.engine, engine_address(self.url))
        self.polls_stops = name == "Podman"
        try:
            if self.discovery.network is None and not self.discovery.own_networks:
                shared = await _engine(client.own_networks)
                if shared:
                    self.discovery = replace(self.discovery, own_networks=shared)
                    self.containers.discovery = self.discovery
            swarm, warning = await _engine(follows_swarm, client, self.discovery.swarm)
            if warning:
                self._warn(warning)
            self.swarm = SwarmSet() if swarm else None
            stream = await (_engine(client.events, True) if swarm else _engine(client.events))
            try:
                await self._resync(client, events_missed=self.synced.is_set())
                self.failure = None
                self.status = "following"
                self.synced.set()
                await self._follow(client, stream)
            finally:
                stream.close()
        finally:
            client.close()

    async def _resync(self, client: DockerApi, *, events_missed: bool = False) -> None:
        summaries: list[Any] = await _engine(client.containers, self.labels)  # Any: dicts, then Mappings (Swarm)
        if self.swarm is not None:
            try:
                names, services, tasks = await _engine(list_swarm, client, self.labels)
            except EngineError as error:
                if self.discovery.swarm == "on":
                    raise
                # A manager behind a socket filter that refuses the Swarm calls.
                self._warn(refused(error))
                self.swarm = None
            else:
                self.swarm.network_names = names
                summaries = without_tasks(summaries) + self.swarm.replace_all(services, tasks)
        self.containers.replace_all(summaries, events_missed=events_missed)
        self.last_event = time.monotonic()
        await self._publish_ready()

    async def _follow(self, client: DockerApi, stream: EventStream) -> None:
        send, receive = trio.open_memory_channel[JsonObject](EVENT_BATCH * 4)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, stream, send)
            nursery.start_soon(_watchdog, client)
            next_resync = time.monotonic() + self.discovery.resync_interval
            next_stop_poll = time.monotonic() + STOP_POLL_INTERVAL
            async with receive:
                while True:
                    wake = next_resync
                    if self.polls_stops and self.containers.serves_any():
                        wake = min(wake, next_stop_poll)
                    expiry = self.containers.next_hold_expiry()
                    if expiry is not None:
                        wake = min(wake, expiry)
                    if self.swarm is not None and self.swarm.to_poll(time.monotonic()):
                        wake = min(wake, self._next_poll)
                    # Only the wait is bounded: an event being applied is never cut off.
                    batch: list[JsonObject] = []
                    with trio.move_on_after(max(0.0, wake - time.monotonic())) as scope:
                        try:
                            batch.append(await receive.receive())
                        except trio.EndOfChannel:
                            nursery.cancel_scope.cancel()
                            return
                    if batch:
                        while len(batch) < EVENT_BATCH:
                            try:
                                batch.append(receive.receive_nowait())
                            except (trio.WouldBlock, trio.EndOfChannel):
                                break
                        await self._apply(client, batch)
                    now = time.monotonic()
                    if now >= next_resync:
                        await self._resync(client)
                        next_resync = time.monotonic() + self.discovery.resync_interval
                    elif self.swarm is not None and now >= self._next_poll and self.swarm.to_poll(now):
                        await self._list_services(client, self.swarm.to_poll(now))
                    elif self.polls_stops and now >= next_stop_poll:
                        await self._poll_stops(client)
                        next_stop_poll = time.monotonic() + STOP_POLL_INTERVAL
                    elif scope.cancelled_caught:
                        self._publish()  # a hold ran out

    async def _apply(self, client: DockerApi, events: list[JsonObject]) -> None:
        changed = False
        to_list: set[str] = set()
        resync = False
        for event in events:
            swarm = swarm_event(event) if self.swarm is not None else None
            found = event_action(event) if swarm is None else None
            if swarm is None and found is None:
                continue
            changed = True
            self._remember(event, found[1] if found else (event.get("Actor") or {}).get("ID", ""))
            if swarm is not None:
                resync |= self._swarm_event(*swarm, to_list)
                continue
            assert found is not None
            action, cid = found
            summary = await self._summary(client, cid, network_change(event)) if needs_summary(action) else None
            if summary is not None and self.swarm is not None and TASK_LABEL in (summary.get("Labels") or {}):
                summary = None  # a task's container: its service is routed
            self.containers.apply(action, cid, summary)
        self.last_event = time.monotonic()
        if resync:
            await self._resync(client)
        elif to_list:
            await self._list_services(client, sorted(to_list))
        elif changed:
            await self._publish_ready()

    def _remember(self, event: JsonObject, cid: str) -> None:
        # For the status page.
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        self.recent.append({
            "time": event.get("time") or time.time(), "event": event.get("Action") or event.get("status", ""),
            "type": event.get("Type", ""), "id": cid[:12],
            "name": attributes.get("container", "")[:12] if event.get("Type") == "network" else attributes.get("name"),
        })

    def _swarm_event(self, what: str, which: str, to_list: set[str]) -> bool:
        # One event while Swarm is followed (_swarm.swarm_event); True: resync in full.
        assert self.swarm is not None
        now = time.monotonic()
        if what == "list":
            self.swarm.touched(which, now)
            to_list.add(which)
        elif what == "gone":
            for summary_id in self.swarm.listed(which, None, [])[0]:
                self.containers.remove(summary_id)
        elif what == "leave":
            self.containers.leave(which)
            sid = self.swarm.service_of(which)
            if sid is not None:
                self.swarm.touched(sid, now)  # the orchestrator replaces it: see the new one soon
        return what == "resync"

    async def _list_services(self, client: DockerApi, sids: Sequence[str]) -> None:
        # List these services and their tasks again, and publish once.
        assert self.swarm is not None
        for sid in sids:
            service, tasks = await _engine(list_service, client, self.labels, sid)
            if self.swarm is None:
                return  # the session ended while listing
            gone, summaries = self.swarm.listed(sid, service, tasks)
            for summary_id in gone:
                self.containers.remove(summary_id)
            for summary in summaries:
                known = summary["Id"] in self.containers.containers
                self.containers.update(summary, summary["Id"], joining=not known)
        self._next_poll = time.monotonic() + POLL_INTERVAL
        await self._publish_ready()

    async def _poll_stops(self, client: DockerApi) -> None:
        if not self.containers.serves_any():
            return
        stopping = self.containers.not_running(await _engine(client.running, self.labels))
        for cid in stopping:
            log.info("container %s is no longer running: out of its pools", cid[:12])
            self.containers.leave(cid)
        if stopping:
            self._publish()

    async def _publish_ready(self) -> None:
        # Containers that listen at once are tried before the publish, so
        # they join in this table rather than the next one.
        await self.prober.try_now()
        self._publish()
        self.prober.schedule()

    async def _summary(self, client: DockerApi, cid: str, change: tuple[str, bool] | None) -> JsonObject | None:
        for _ in range(LAGGING_LIST_RETRIES):
            summary = await _engine(inspect_one, client, self.labels, cid)
            if summary is None or change is None or has_ip_on(summary, change[0]) == change[1]:
                return summary
            if summary.get("State") != "running":
                return summary  # being created or stopped: its start or die event will follow
            await trio.sleep(LAGGING_LIST_PAUSE)
        return summary

    def take_out(self, cid: str) -> None:
        """Out of every pool now, as a leave event would do (before fastroute stops it)."""
        self.containers.leave(cid)
        self._publish()

    def set_waking(self, cid: str, waking: bool, ready: Address | None = None) -> None:
        """While fastroute wakes a container, it is not routed (requests wait for the wake).

        ready: the address the waker saw accept a connection, when the wake worked.
        """
        if waking:
            self.containers.waking.add(cid)
        else:
            self.containers.waking.discard(cid)
            if ready is not None:
                self.containers.mark_ready(cid, ready, time.monotonic())
        self._publish()
        self.prober.schedule()

    def refused(self, address: Address) -> bool:
        """A connect to `address` was refused. True if its container is booting again
        (it became ready moments ago): then it is out of the table now and probed anew."""
        if not self.containers.refused(address, time.monotonic()):
            return False
        log.info("%s refused a connection just after it became ready; waiting for it again", address)
        self._publish()
        self.prober.schedule()
        return True

    def _warn(self, warning: str) -> None:
        if warning not in self._warned:
            self._warned.add(warning)
            log.warning("%s", warning)

    def _publish(self) -> None:
        routes, warnings = self.containers.advance(time.monotonic())
        for container in self.containers.skipped():
            warnings.append(f"container {container.name} ({container.short_id}) skipped: {container.skip}")
        if self.swarm is not None:
            warnings += [f"service {name} skipped: {why}" for name, why in sorted(self.swarm.skipped.items())]
        for warning in warnings:
            self._warn(warning)
        self.warnings = tuple(warnings)
        if routes != self._published:  # a booting replica joining a live pool changes nothing
            self._published = routes
            self.sink.set_docker(routes)


async def _engine(call: Callable[..., _T], *args: object) -> _T:
    # A cancelled wait abandons the thread (it ends when docker-py gives up).
    return await trio.to_thread.run_sync(call, *args, abandon_on_cancel=True)


async def _watchdog(client: DockerApi) -> None:
    # A frozen dockerd (SIGSTOP, a hung host) leaves the events stream
    # half-open: no error, no events. A ping that does not come back in time
    # ends the session, and run() reconnects and resyncs.
    while True:
        await trio.sleep(WATCHDOG_INTERVAL)
        with trio.move_on_after(WATCHDOG_TIMEOUT):
            await trio.to_thread.run_sync(client.ping, abandon_on_cancel=True)
            continue
        raise EngineStalled(f"no answer to a ping within {WATCHDOG_TIMEOUT:g}s")


async def _pump(stream: EventStream, send: trio.MemorySendChannel[JsonObject]) -> None:
    # docker-py's events iterator ends quietly when the connection breaks.
    async with send:
        while True:
            event = await trio.to_thread.run_sync(next, stream, None, abandon_on_cancel=True)
            if event is None:
                return
            await send.send(event)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
