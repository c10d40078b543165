# Readiness probes: the trio half of ContainerSet's readiness rules
# (_model.py). A booting container without a HEALTHCHECK is routed
# once its port accepts a TCP connection.
#
# Rules:
# - the watcher tries every new candidate once, at once and together, before
#   it publishes (try_now): a service that listens as soon as it starts costs
#   one connect, not a table with a booting route and then another;
# - the others are probed in the background, one task per (container,
#   address): every PROBE_FIRST seconds for PROBE_FAST_TRIES tries (a
#   server that binds a few milliseconds after its start event is routed
#   within a millisecond of it), then with pauses doubling up to PROBE_MAX;
#   a task ends as soon as its container is no longer booting at that
#   address (it left, moved, or became ready another way);
# - past --ready-timeout a container joins anyway, with one warning: a
#   service on another port than its label says should not wait forever.

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable

import trio

from .._config import Address
from ._model import ContainerSet

__all__ = ["PROBE_FAST_TRIES", "PROBE_FIRST", "PROBE_MAX", "Prober", "accepts"]

log = logging.getLogger("fastroute.docker")

PROBE_FIRST = 0.001  # seconds between the first tries
PROBE_FAST_TRIES = 16  # tries PROBE_FIRST apart before the pauses start to double
PROBE_MAX = 0.1  # seconds, the longest pause between tries
PROBE_CONNECT = 1.0  # seconds one connect may take (a bridge address answers in microseconds)
TRY_NOW_LIMIT = 0.01  # seconds the watcher waits for the first tries before it publishes (the rest go on in the background)


async def accepts(address: Address, limit: float = PROBE_CONNECT) -> bool:
    """Whether a TCP connection to `address` is accepted within `limit` seconds (then closed)."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        with trio.move_on_after(limit):
            await sock.connect((address.host, address.port))
            return True
        return False
    except OSError:
        return False
    finally:
        sock.close()


class Prober:
    """Probes the ports of booting containers and marks them ready."""

    def __init__(self, containers: Callable[[], ContainerSet], changed: Callable[[], None], ready_timeout: float,
                 *, check: Callable[[Address], Awaitable[bool]] = accepts) -> None:
        self.containers = containers  # the watcher's current set
        self.changed = changed  # called after a container became ready: publish
        self.ready_timeout = ready_timeout
        self.check = check
        self.probing: set[tuple[str, Address]] = set()
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Hosts the background probes until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def try_now(self, limit: float = TRY_NOW_LIMIT) -> bool:
        """One try of every candidate not probed yet, all at once, for up to `limit` seconds.

        Returns whether any became ready (the caller publishes).
        """
        fresh = [(cid, address) for cid, address in self.containers().to_probe()
                 if (cid, address) not in self.probing]
        if not fresh:
            return False
        found: list[tuple[str, Address]] = []

        async def one(cid: str, address: Address) -> None:
            if await self.check(address):
                found.append((cid, address))

        with trio.move_on_after(limit):
            async with trio.open_nursery() as nursery:
                for cid, address in fresh:
                    nursery.start_soon(one, cid, address)
        now = time.monotonic()
        containers = self.containers()
        return any([containers.mark_ready(cid, address, now) for cid, address in found])

    def schedule(self) -> None:
        """Start a background probe for every candidate that has none."""
        if self._nursery is None:
            return
        for cid, address in self.containers().to_probe():
            if (cid, address) not in self.probing:
                self.probing.add((cid, address))
                self._nursery.start_soon(self._probe, cid, address)

    async def _probe(self, cid: str, address: Address) -> None:
        started = trio.current_time()
        tries = 0
        try:
            while True:
                await trio.sleep(min(PROBE_FIRST * 2.0 ** max(0, tries - PROBE_FAST_TRIES + 1), PROBE_MAX))
                tries += 1
                if not self.containers().probe_wanted(cid, address):
                    return
                ok = await self.check(address)
                if not self.containers().probe_wanted(cid, address):
                    return
                now = time.monotonic()
                if ok:
                    self.containers().mark_ready(cid, address, now)
                    self.changed()
                    return
                if trio.current_time() - started >= self.ready_timeout:
                    container = self.containers().containers[cid]
                    log.warning("container %s (%s) did not accept a connection on %s within %gs "
                                "(--ready-timeout); routing it anyway", container.name, container.short_id,
                                address, self.ready_timeout)
                    self.containers().mark_ready(cid, address, now, young=False)
                    self.changed()
                    return
        finally:
            self.probing.discard((cid, address))
