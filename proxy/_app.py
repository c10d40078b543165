# `fastroute serve`: the gateway with static routes, signals and reload.
#
# SIGTERM / SIGINT: drain (stop accepting, close idle keep-alive connections,
# let in-flight requests finish for up to the drain timeout), then exit 0.
# A second SIGTERM / SIGINT while draining stops at once (still exit 0).
# SIGHUP: re-read --routes-file and swap the table; on any error keep the
# old table and log why. Open connections are never touched by a reload.

from __future__ import annotations

import logging
import signal
from functools import partial
from typing import Any

import trio

from ._admin import AdminServer
from ._admin_front import peer_idle_for
from ._config import Config
from ._errors import ConfigError
from ._metrics import Stats
from ._server import Gateway
from ._sources import RouteSources, load_routes
from ._waker import Waker
from ._watcher import DockerWatcher

__all__ = ["RouteSources", "load_routes", "run", "serve"]

log = logging.getLogger("fastroute")


async def serve(
    config: Config,
    *,
    admin_socket: str | None = None,
    peer_sockets: tuple[str, ...] = (),
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the gateway until SIGTERM or SIGINT, then drain and return.

    admin_socket: a worker of `--workers N`: serve the admin endpoints on
    this Unix socket (for the admin front and the other workers), not on
    config.admin; peer_sockets: the other workers' (asked before an idle stop).
    task_status.started() gets the Gateway once it listens.
    """
    gateway = Gateway(config)
    sources = RouteSources(gateway.set_routes, load_routes(config))
    sources.set_static(sources.static)
    admin = None
    if admin_socket is not None:
        if config.admin is not None:
            gateway.stats = Stats()
        admin = AdminServer(gateway, None, unix_path=admin_socket)
    elif config.admin is not None:
        gateway.stats = Stats()
        admin = AdminServer(gateway, config.admin)
    await gateway.listen()
    if admin is not None:
        await admin.listen()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            if admin is not None:
                await nursery.start(admin.serve)
                if admin.unix_path is None:
                    log.info("admin endpoints on %s", ", ".join(f"{h}:{p}" for h, p in admin.addresses))
            if config.docker:
                watcher = DockerWatcher(
                    sources.set_docker, config.discovery, url=config.docker_url, labels=config.docker_labels
                )
                gateway.watcher = watcher
                await nursery.start(watcher.run)
                gateway.waker = Waker(
                    lambda: watcher.containers, watcher.take_out, watcher.set_waking, gateway.registry,
                    timeout=config.timeouts.wake, queue=config.limits.wake_queue, url=config.docker_url,
                    # A worker sees only its own requests: before stopping a
                    # container it woke, it asks the others.
                    peer_idle_for=peer_idle_for(list(peer_sockets)) if peer_sockets else None,
                )
                await nursery.start(gateway.waker.run)
            log.info(
                "listening on %s with %d routes (parser: %s)",
                ", ".join(f"{h}:{p}" for h, p in gateway.addresses), len(gateway.table), config.parser,
            )
            task_status.started(gateway)

            async def drain_then_stop() -> None:
                await gateway.drain()
                nursery.cancel_scope.cancel()

            async for signum in signals:
                if signum == signal.SIGHUP:
                    if config.routes_file is None:
                        log.info("SIGHUP: no --routes-file to re-read")
                    else:
                        sources.reload(config)
                    continue
                name = signal.Signals(signum).name
                if gateway.draining:
                    log.info("%s again: stopping now", name)
                    nursery.cancel_scope.cancel()
                    break
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


def run(config: Config, *, admin_socket: str | None = None, peer_sockets: tuple[str, ...] = ()) -> int:
    """Blocking entry point for the CLI (and each --workers worker). Returns the exit status."""
    ignore_late_stops()
    try:
        trio.run(partial(serve, config, admin_socket=admin_socket, peer_sockets=peer_sockets))
    except ConfigError as error:
        log.error("%s", error)
        return 1
    return 0
