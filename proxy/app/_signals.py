# Signals, for every process of `fastroute serve` (a gateway, a worker, the
# supervisor, the admin front).
#
# A gateway: SIGTERM / SIGINT drain it (stop accepting, close idle
# keep-alive connections, let in-flight requests finish for up to the drain
# timeout), then it exits 0; a second one while draining stops at once
# (still exit 0). SIGHUP re-reads --routes-file and swaps the table, and
# re-reads the TLS certificates; on any error the old table (or the
# certificates in force) stay and the log says why.

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator

import trio

from .._config import Config
from ..gateway._server import Gateway
from ..routing._sources import RouteSources

__all__ = ["follow_signals", "ignore_late_stops"]

log = logging.getLogger("fastroute")


async def follow_signals(
    signals: AsyncIterator[int], gateway: Gateway, sources: RouteSources, config: Config, everything: trio.CancelScope
) -> None:
    async def drain_then_stop() -> None:
        await gateway.drain()
        everything.cancel()

    async with trio.open_nursery() as nursery:
        async for signum in signals:
            if signum == signal.SIGHUP:
                if gateway.certificates is not None:
                    gateway.certificates.reload("SIGHUP")
                if config.routes_file is not None:
                    sources.reload(config)
                elif gateway.certificates is None:
                    log.info("SIGHUP: no --routes-file or certificate to re-read")
                continue
            name = signal.Signals(signum).name
            if gateway.draining:
                log.info("%s again: stopping now", name)
                everything.cancel()
                return
            log.info("%s: draining (up to %gs)", name, config.timeouts.drain)
            nursery.start_soon(drain_then_stop)


def ignore_late_stops() -> None:
    """Ignore SIGTERM and SIGINT outside trio's signal receiver, for good.

    Between the receiver closing and the process exiting, a late SIGTERM or
    SIGINT (a supervisor or a user repeating itself) must not turn a clean
    exit into a kill. SIG_IGN, not a Python handler: CPython puts signals
    with Python handlers back to their default while the interpreter shuts
    down, which reopened that window.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
