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
#   engine never holds up a shutdown (docker-py's own timeout is 30 s).

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

import trio

from .._config import Address, Discovery, Route
from ._client import Engine, EventStream, connect
from ._container import has_ip_on, has_labels, summary_from_inspect
from ._errors import EngineStalled
from ._model import ContainerSet, event_action, needs_summary, network_change
from ._probe import Prober

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


def inspect_one(engine: Engine, labels: Sequence[str], cid: str) -> dict[str, Any] | None:
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

    client_factory(url): the Engine to follow (discovery/_client.py's
    connect; a test passes a fake); called again on every reconnect.
    """

    def __init__(
        self,
        sink: DockerRoutes,
        discovery: Discovery,
        *,
        url: str | None = None,
        labels: Sequence[str] = (),
        client_factory: Callable[[str | None], Engine] = connect,
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
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)  # for the status page
        self.prober = Prober(lambda: self.containers, self._publish, discovery.ready_timeout)
        self._warned: set[str] = set()
        self._published: tuple[Route, ...] | None = None

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
                log.warning("Docker engine unreachable (%s); retrying in %.1fs", _one_line(error), backoff)
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
        try:
            if self.discovery.network is None and not self.discovery.own_networks:
                shared = await _engine(client.own_networks)
                if shared:
                    self.discovery = replace(self.discovery, own_networks=shared)
                    self.containers.discovery = self.discovery
            stream = await _engine(client.events)
            try:
                await self._resync(client, events_missed=self.synced.is_set())
                self.status = "following"
                self.synced.set()
                await self._follow(client, stream)
            finally:
                stream.close()
        finally:
            client.close()

    async def _resync(self, client: Engine, *, events_missed: bool = False) -> None:
        summaries = await _engine(client.containers, self.labels)
        self.containers.replace_all(summaries, events_missed=events_missed)
        self.last_event = time.monotonic()
        await self._publish_ready()

    async def _follow(self, client: Engine, stream: EventStream) -> None:
        send, receive = trio.open_memory_channel[dict[str, Any]](EVENT_BATCH * 4)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, stream, send)
            nursery.start_soon(_watchdog, client)
            next_resync = time.monotonic() + self.discovery.resync_interval
            async with receive:
                while True:
                    wake = next_resync
                    expiry = self.containers.next_hold_expiry()
                    if expiry is not None:
                        wake = min(wake, expiry)
                    with trio.move_on_after(max(0.0, wake - time.monotonic())) as scope:
                        try:
                            batch = [await receive.receive()]
                        except trio.EndOfChannel:
                            nursery.cancel_scope.cancel()
                            return
                        while len(batch) < EVENT_BATCH:
                            try:
                                batch.append(receive.receive_nowait())
                            except (trio.WouldBlock, trio.EndOfChannel):
                                break
                        await self._apply(client, batch)
                    if scope.cancelled_caught:
                        if time.monotonic() >= next_resync:
                            await self._resync(client)
                            next_resync = time.monotonic() + self.discovery.resync_interval
                        else:
                            self._publish()  # a hold ran out

    async def _apply(self, client: Engine, events: list[dict[str, Any]]) -> None:
        changed = False
        for event in events:
            found = event_action(event)
            if found is None:
                continue
            action, cid = found
            changed = True
            attributes = (event.get("Actor") or {}).get("Attributes") or {}
            self.recent.append({
                "time": event.get("time") or time.time(), "event": event.get("Action") or event.get("status", ""),
                "type": event.get("Type", ""), "id": cid[:12],
                "name": attributes.get("name") if event.get("Type") == "container" else attributes.get("container", "")[:12],
            })
            summary = await self._summary(client, cid, network_change(event)) if needs_summary(action) else None
            self.containers.apply(action, cid, summary)
        self.last_event = time.monotonic()
        if changed:
            await self._publish_ready()

    async def _publish_ready(self) -> None:
        # Containers that listen at once are tried before the publish, so
        # they join in this table rather than the next one.
        await self.prober.try_now()
        self._publish()
        self.prober.schedule()

    async def _summary(self, client: Engine, cid: str, change: tuple[str, bool] | None) -> dict[str, Any] | None:
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

    def _publish(self) -> None:
        routes, warnings = self.containers.advance(time.monotonic())
        for container in self.containers.skipped():
            warnings.append(f"container {container.name} ({container.short_id}) skipped: {container.skip}")
        for warning in warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                log.warning("%s", warning)
        if routes != self._published:  # a booting replica joining a live pool changes nothing
            self._published = routes
            self.sink.set_docker(routes)


async def _engine(call: Callable[..., _T], *args: Any) -> _T:
    # A cancelled wait abandons the thread (it ends when docker-py gives up).
    return await trio.to_thread.run_sync(call, *args, abandon_on_cancel=True)


async def _watchdog(client: Engine) -> None:
    # A frozen dockerd (SIGSTOP, a hung host) leaves the events stream
    # half-open: no error, no events. A ping that does not come back in time
    # ends the session, and run() reconnects and resyncs.
    while True:
        await trio.sleep(WATCHDOG_INTERVAL)
        with trio.move_on_after(WATCHDOG_TIMEOUT):
            await trio.to_thread.run_sync(client.ping, abandon_on_cancel=True)
            continue
        raise EngineStalled(f"no answer to a ping within {WATCHDOG_TIMEOUT:g}s")


async def _pump(stream: EventStream, send: trio.MemorySendChannel[dict[str, Any]]) -> None:
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
