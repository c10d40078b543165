# Wake on request: start a stopped container that opted in (fastroute.wake=true)
# when a request for its route arrives, and stop it again when idle.
#
# Rules:
# - only `start` on a container that exists: never pull, never create; a
#   request for an unknown route never reaches this module (404 first);
# - one start per route at a time: every request that arrives meanwhile
#   waits for the same start (up to --wake-queue of them; past it, 503);
# - ready means: running, healthy if it has a HEALTHCHECK, and its port
#   accepts a connection; until then it is kept out of the route table, so
#   requests that arrive meanwhile wait for the same start; not ready within --wake-timeout, or exited: 503
#   with Retry-After, and no new start for that route until a backoff
#   (1 s doubling to 60 s) has passed, so a broken container is not
#   restarted in a tight loop;
# - idle stop: a container this process started, with
#   fastroute.idle-timeout=SECONDS, is stopped once it has had no request in
#   flight (an open tunnel or a long download is one) for that long. It
#   leaves the route table first; its route stays for the next wake.
#   Containers fastroute did not start are never stopped by it (a start
#   that finds one running, the engine's 304, does not make it ours).

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from .._config import Address, Discovery
from ._client import DockerApi, connect
from ._container import parse_container, summary_from_inspect
from ._errors import EngineError, WakeFailed
from ._model import ContainerSet
from .._errors import NoBackendAvailable
from ..routing._pool import Registry
from ._probe import accepts

__all__ = ["WAKE_BACKOFF_MAX", "Waker"]

log = logging.getLogger("fastroute.wake")

WAKE_BACKOFF_MIN = 1.0  # seconds without a new start after the first failed wake
WAKE_BACKOFF_MAX = 60.0  # seconds, the longest
READY_POLL = 0.025  # seconds between readiness checks of a starting container
IDLE_CHECK = 0.25  # seconds between idle checks of the containers we woke
STOP_GRACE = 10  # seconds `docker stop` gives a container before SIGKILL


@dataclass
class _RouteWake:
    waiting: int = 0
    starting: trio.Event | None = None  # set when the current start ends, either way
    error: str | None = None  # why the last start failed, or None
    failures: int = 0
    retry_at: float = 0.0  # time.monotonic() before which no new start is tried


@dataclass
class _Woken:
    since: float
    address: Address | None = None  # set once ready
    idle_timeout: float | None = None
    last_active: float = field(default=0.0)
    seen_serving: bool = False  # the route table has shown it since it was woken


class Waker:
    """Starts containers for requests and stops the idle ones it started."""

    def __init__(
        self,
        containers: Callable[[], ContainerSet],
        leave: Callable[[str], None],
        set_waking: Callable[[str, bool, Address | None], None],
        registry: Registry,
        *,
        timeout: float,
        queue: int,
        url: str | None = None,
        client_factory: Callable[[str | None], DockerApi] = connect,
        idle_stops: bool = True,
        peer_idle_for: Callable[[Address], Awaitable[float]] | None = None,
    ) -> None:
        self.containers = containers  # the watcher's current set
        self.leave = leave  # takes a container out of the table now (before stopping it)
        self.set_waking = set_waking  # keeps a starting container out of the table until ready
        self.registry = registry
        self.timeout = timeout
        self.queue = queue
        self.url = url
        self.client_factory = client_factory
        self.idle_stops = idle_stops
        # --workers N: how long the other workers have left the address idle
        # (a worker sees only its own requests).
        self.peer_idle_for = peer_idle_for
        self.starts = 0
        self.stops = 0
        self.woken: dict[str, _Woken] = {}
        self._routes: dict[str, _RouteWake] = {}
        self._client: DockerApi | None = None
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hosts the starts (so a start outlives the request that caused it) and the idle stops."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                while self.idle_stops:
                    await trio.sleep(IDLE_CHECK)
                    await self._stop_idle()
                await trio.sleep_forever()
        finally:
            if self._client is not None:
                self._client.close()

    async def wake(self, prefix: str, ids: tuple[str, ...]) -> None:
        """Start the route's container (or join the start under way) and wait until it is ready.

        The caller bounds the wait (--wake-timeout) and then waits for the
        route table to show the container.

        Raises:
            NoBackendAvailable: the queue is full, or the start failed now or
                recently (503 with Retry-After).
        """
        state = self._routes.setdefault(prefix, _RouteWake())
        now = time.monotonic()
        if state.starting is None and state.retry_at > now:
            raise NoBackendAvailable(
                f"the container for {prefix!r} failed to start ({state.error})",
                retry_after=math.ceil(state.retry_at - now),
            )
        if state.waiting >= self.queue:
            raise NoBackendAvailable(f"{state.waiting} requests already wait for {prefix!r} to wake", retry_after=1)
        state.waiting += 1
        try:
            if state.starting is None:
                state.starting = trio.Event()
                assert self._nursery is not None, "Waker.run() is not running"
                self._nursery.start_soon(self._start, prefix, ids, state)
            await state.starting.wait()
            if state.error is not None:
                raise NoBackendAvailable(
                    f"the container for {prefix!r} failed to start ({state.error})",
                    retry_after=max(1, math.ceil(state.retry_at - time.monotonic())),
                )
        finally:
            state.waiting -= 1

    async def _start(self, prefix: str, ids: tuple[str, ...], state: _RouteWake) -> None:
        assert state.starting is not None
        self.set_waking(ids[0], True, None)
        address: Address | None = None
        try:
            with trio.fail_after(self.timeout):
                address = await self._start_one(ids[0])
            state.error = None
            state.failures = 0
            log.info("woke %s for %s at %s", ids[0][:12], prefix, address)
        except (WakeFailed, trio.TooSlowError) as error:
            state.error = str(error) or f"not ready within {self.timeout:g}s"
            state.failures += 1
            backoff = min(WAKE_BACKOFF_MIN * 2.0 ** (state.failures - 1), WAKE_BACKOFF_MAX)
            state.retry_at = time.monotonic() + backoff
            log.warning("could not wake %s for %s: %s; no new start for %gs", ids[0][:12], prefix, state.error,
                        backoff)
        finally:
            # Ready, or failed: either way it is routed by the usual rules now
            # (a container that runs but never listened is left running; if
            # it has an idle timeout, that stops it).
            self.set_waking(ids[0], False, address)
            state.starting.set()
            state.starting = None

    async def _start_one(self, cid: str) -> Address:
        client = await self._connected()
        try:
            started = await trio.to_thread.run_sync(client.start, cid, abandon_on_cancel=True)
        except EngineError as error:
            raise WakeFailed(str(error)) from None
        woken = None
        if started:  # else it ran already (another worker woke it first): not ours to stop
            self.starts += 1
            now = time.monotonic()
            woken = self.woken[cid] = _Woken(since=now, last_active=now)
        while True:
            attrs = await trio.to_thread.run_sync(client.inspect, cid, abandon_on_cancel=True)
            if attrs is None:
                raise WakeFailed("the container was removed")
            container = parse_container(summary_from_inspect(attrs), self._discovery())
            state = (attrs.get("State") or {}).get("Status", "")
            if state in ("exited", "dead"):
                code = (attrs.get("State") or {}).get("ExitCode")
                raise WakeFailed(f"it exited at once (exit code {code})")
            if container is not None and container.skip is not None:
                raise WakeFailed(container.skip)
            if container is not None and container.routable and container.address is not None:
                if await accepts(container.address):
                    if woken is not None:
                        woken.address = container.address
                        woken.idle_timeout = container.idle_timeout
                    return container.address
            await trio.sleep(READY_POLL)

    def _discovery(self) -> Discovery:
        return self.containers().discovery

    async def _connected(self) -> DockerApi:
        if self._client is None:
            try:
                self._client = await trio.to_thread.run_sync(self.client_factory, self.url, abandon_on_cancel=True)
            except Exception as error:  # noqa: BLE001 - engine unreachable: this wake fails
                raise WakeFailed(f"Docker engine unreachable: {type(error).__name__}: {error}") from None
        return self._client

    async def _stop_idle(self) -> None:
        now = time.monotonic()
        known = self.containers().containers
        leaving = self.containers().leaving
        for cid, woken in list(self.woken.items()):
            container = known.get(cid)
            serving = container is not None and container.routable and cid not in leaving
            if container is None or (woken.seen_serving and not serving):
                del self.woken[cid]  # gone, or stopped by someone else: no longer ours to stop
                continue
            woken.seen_serving = woken.seen_serving or serving
            if woken.idle_timeout is None or woken.address is None:
                continue
            backend = self.registry.states.get(woken.address)
            if backend is not None:
                if backend.outstanding > 0:
                    woken.last_active = now
                else:
                    woken.last_active = max(woken.last_active, backend.last_done)
            if now - woken.last_active >= woken.idle_timeout and self.peer_idle_for is not None:
                peer_idle = await self.peer_idle_for(woken.address)
                if peer_idle < woken.idle_timeout:
                    woken.last_active = max(woken.last_active, time.monotonic() - peer_idle)
                    continue
            if now - woken.last_active >= woken.idle_timeout:
                if cid not in self.woken:
                    continue  # gone while the other workers were asked
                del self.woken[cid]
                self.leave(cid)
                log.info("stopping %s (%s): idle for %gs", container.name, cid[:12], woken.idle_timeout)
                assert self._nursery is not None
                self._nursery.start_soon(self._stop, cid)

    async def _stop(self, cid: str) -> None:
        try:
            client = await self._connected()
            await trio.to_thread.run_sync(client.stop, cid, STOP_GRACE, abandon_on_cancel=True)
            self.stops += 1
        except Exception as error:  # noqa: BLE001 - the watcher's events will tell what became of it
            log.warning("could not stop idle container %s: %s", cid[:12], error)

