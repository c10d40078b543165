# `fastroute haproxy`: the HAProxy mode's process. Follows Docker (and the
# static routes) with the gateway's watcher and keeps HAProxy's
# configuration equal to them; see _sync.py for how it is applied.
#
# Nothing is written before the first full list from Docker: restarting
# fastroute must not briefly empty a running HAProxy.
# SIGTERM / SIGINT: exit 0 (HAProxy keeps serving the last configuration).
# SIGHUP: re-read --routes-file and --preamble, and apply.

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import trio

from .._config import Address, Config, Route
from .._errors import ConfigError
from ..discovery._client import connect
from ..discovery._listing import snapshot
from ..discovery._model import ContainerSet
from ..discovery._watcher import DockerWatcher
from ..routing._sources import RouteSources, load_routes
from ._errors import HAProxyError
from ._sync import HAProxyOptions, HAProxySync

__all__ = ["HAProxyMode", "follow", "run"]

log = logging.getLogger("fastroute.haproxy")


@dataclass(frozen=True, slots=True)
class HAProxyMode:
    options: HAProxyOptions
    config: Config  # routes, routes file and Docker settings; listen/timeouts unused
    once: bool = False


def _names(containers: ContainerSet) -> Mapping[Address, str]:
    return {c.address: c.name for c in containers.containers.values() if c.address is not None}


async def follow(mode: HAProxyMode, *, task_status: trio.TaskStatus[HAProxySync] = trio.TASK_STATUS_IGNORED) -> None:
    """Keep HAProxy in step with Docker until SIGTERM or SIGINT.

    task_status.started() gets the HAProxySync once the first configuration
    is installed (and HAProxy reloaded, if it can be).

    Raises:
        ConfigError: the first configuration could not be installed.
    """
    config = mode.config
    watcher: DockerWatcher | None = None
    sync = HAProxySync(mode.options, lambda: _names(watcher.containers) if watcher else {})
    sources = RouteSources(sync, load_routes(config))
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            if config.docker:
                watcher = DockerWatcher(
                    sources, config.discovery, url=config.docker_url, labels=config.docker_labels,
                    client_factory=partial(connect, tls=config.docker_tls),
                )
                await nursery.start(watcher.run)
                log.info("waiting for the first list from Docker")
                await watcher.synced.wait()
            sources.set_static(sources.static)
            try:
                await sync.sync_once()
            except HAProxyError as error:
                if sync.installed is None:
                    raise ConfigError(str(error)) from None
                # Installed, but HAProxy did not reload (not running yet?):
                # run() retries every --reload-interval.
                log.warning("%s", error)
            await nursery.start(sync.run)
            log.info("following %s; %s", "Docker" if config.docker else "static routes only", mode.options.config)
            task_status.started(sync)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    if config.routes_file is not None and not sources.reload(config):
                        continue  # logged; the current routes stay
                    sync.set_routes(sync.routes)  # re-rendered: picks up an edited preamble
                    continue
                log.info("%s: stopping", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()


def _current_routes(config: Config) -> tuple[list[Route], Mapping[Address, str]]:
    static = load_routes(config)
    if not config.docker:
        return list(static), {}
    client = connect(config.docker_url, config.docker_tls)
    try:
        discovery = config.discovery
        if discovery.network is None:
            from dataclasses import replace

            discovery = replace(discovery, own_networks=client.own_networks())
        summaries, listed_warnings = snapshot(client, config.docker_labels, discovery.swarm)
    finally:
        client.close()
    containers = ContainerSet(discovery, probe_ports=False)  # once: HAProxy's own checks take over
    containers.replace_all(summaries)
    docker, warnings = containers.advance(time.monotonic())
    warnings = listed_warnings + warnings
    for warning in warnings:
        log.warning("%s", warning)
    for container in containers.skipped():
        log.warning("container %s (%s) skipped: %s", container.name, container.short_id, container.skip)
    got = _Collected()
    RouteSources(got, static).set_docker(docker)
    return got.routes, _names(containers)


class _Collected:
    """A RouteSink that keeps the merged routes."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def set_routes(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)


async def _once(mode: HAProxyMode) -> None:
    try:
        routes, names = await trio.to_thread.run_sync(_current_routes, mode.config)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - any engine failure is one line
        first = (str(error).strip().splitlines() or [""])[0]
        raise ConfigError(f"cannot read the Docker engine: {type(error).__name__}: {first}") from None
    sync = HAProxySync(mode.options, lambda: names)
    sync.set_routes(routes)
    try:
        await sync.sync_once()
    except HAProxyError as error:
        raise ConfigError(str(error)) from None


def run(mode: HAProxyMode) -> int:
    """Blocking entry point for the CLI. Returns the exit status."""
    try:
        trio.run(_once if mode.once else follow, mode)
    except ConfigError as error:
        log.error("%s", error)
        return 1
    return 0
