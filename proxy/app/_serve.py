# `fastroute serve`: one gateway process from start to exit. It binds at
# once, loads its routes (static, then Docker's, waiting up to
# --docker-start-timeout), listens, and follows signals (_signals.py) until
# it has drained. Open connections are never touched by a reload.

from __future__ import annotations

import gc
import logging
import signal
from functools import partial

import trio

from ..protocol._compiled import H2SESSION_COMPILED
from .._config import Acme, Config
from ._acme_challenge import ChallengeServer
from ._acme import AcmeManager
from ..acme._store import Store
from ..tls._context import tls_alpn_context
from .._errors import ConfigError
from ..routing._stats import Stats
from ..admin._peers import peer_idle_for
from ..admin._server import AdminServer
from ..discovery._client import connect, engine_address
from ..discovery._waker import Waker
from ..discovery._watcher import DockerWatcher
from ..gateway._server import Gateway
from ..routing._sources import RouteSources, load_routes
from ._signals import follow_signals, ignore_late_stops

__all__ = ["run", "serve"]

log = logging.getLogger("fastroute")


async def serve(
    config: Config,
    *,
    admin_socket: str | None = None,
    peer_sockets: tuple[str, ...] = (),
    task_status: trio.TaskStatus[Gateway] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the gateway until SIGTERM or SIGINT, then drain and return.

    admin_socket: a worker of `--workers N`: serve the admin endpoints on
    this Unix socket (for the admin front and the other workers), not on
    config.admin; peer_sockets: the other workers' (asked before an idle stop).
    task_status.started() gets the Gateway once it listens.
    """
    acme = config.tls.acme
    store = Store(acme.storage, acme.directory) if acme is not None else None
    gateway = Gateway(config, managed=store)
    sources = RouteSources(gateway, load_routes(config))
    if store is None:
        sources.set_static(sources.static)
    admin = None
    if admin_socket is not None:
        if config.admin is not None:
            gateway.stats = Stats()
        admin = AdminServer(gateway, None, unix_path=admin_socket)
    elif config.admin is not None:
        gateway.stats = Stats()
        admin = AdminServer(gateway, config.admin)
    await gateway.bind()  # an address in use fails now; connections are taken once the routes are known
    try:
        if admin is not None:
            await admin.listen()
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(follow_signals, signals, gateway, sources, config, nursery.cancel_scope)
                if acme is not None and store is not None:
                    await _follow_acme(nursery, acme, store, gateway, sources)
                if admin is not None:
                    await nursery.start(admin.serve)
                    if admin.unix_path is None:
                        log.info("admin endpoints on %s", ", ".join(f"{h}:{p}" for h, p in admin.addresses))
                if config.docker:
                    await _follow_docker(nursery, gateway, sources, config, peer_sockets)
                await nursery.start(gateway.serve)
                https = ", ".join(f"{h}:{p}" for h, p in gateway.tls_addresses)
                log.info(
                    "listening on %s%s with %d routes (parser: %s, io: %s)",
                    ", ".join(f"{h}:{p}" for h, p in gateway.addresses) or "no plain-HTTP address",
                    f", HTTPS on {https}" if https else "", len(gateway.table), config.parser,
                    "native" if gateway.engine is not None else "trio",
                )
                if config.parser == "fast" and not H2SESSION_COMPILED:
                    log.info("HTTP/2 runs on h2 (pure Python): the libnghttp2 session is not built "
                             "(apt-get install libnghttp2-dev, then make install)")
                _freeze_the_start()
                task_status.started(gateway)
    finally:
        gc.unfreeze()  # (_freeze_the_start)
        gateway.close_sockets()


def _freeze_the_start() -> None:
    """What the start made (modules, the loops, the first route table) lives about as long as the
    process: out of the collector's sight, so that its passes do not walk it again and again under
    load (the collector's share of CPU halves: bench/README.md). Such an object is still freed when
    nothing refers to it; only a cycle among them waits for the end of serve(), which hands them
    back (gc.unfreeze: a test serves many times in one process)."""
    gc.collect()
    gc.freeze()


async def _follow_acme(nursery: trio.Nursery, acme: Acme, store: Store, gateway: Gateway,
                       sources: RouteSources) -> None:
    """The HTTP-01 backend, routed for every ACME name, and the manager that asks for them."""
    certificates = gateway.certificates
    assert certificates is not None
    challenges = ChallengeServer(store.challenges)
    sources.challenges = await nursery.start(challenges.serve)
    sources.held = certificates.files_cover
    sources.set_static(sources.static)
    if acme.challenge == "tls-alpn-01":
        gateway.acme_challenge = partial(tls_alpn_context, store)
    manager = AcmeManager(acme, store, sources, certificates, lambda: gateway.table_changed)
    await nursery.start(manager.run)
    log.info("ACME: certificates from %s for the names routes give, kept in %s", acme.directory, acme.storage)


async def _follow_docker(
    nursery: trio.Nursery, gateway: Gateway, sources: RouteSources, config: Config, peer_sockets: tuple[str, ...]
) -> None:
    """Start the watcher and the waker, and wait (up to --docker-start-timeout) for the first listing.

    The gateway listens only after this: a request never meets a table
    that is missing the containers already running. If the engine does not
    answer in time, or its first connect fails, it opens with the static
    routes; requests for other routes wait (up to --hold) for the listing
    once the engine has answered, and get 503 at once until then.
    """
    engine = partial(connect, tls=config.docker_tls)
    watcher = DockerWatcher(sources, config.discovery, url=config.docker_url, labels=config.docker_labels,
                            client_factory=engine)
    gateway.watcher = watcher
    gateway.not_ready = watcher.refused
    gateway.routes_complete = False
    await nursery.start(watcher.run)
    gateway.waker = Waker(
        lambda: watcher.containers, watcher.take_out, watcher.set_waking, gateway.registry,
        timeout=config.timeouts.wake, queue=config.limits.wake_queue, url=config.docker_url, client_factory=engine,
        # A worker sees only its own requests: before stopping a
        # container it woke, it asks the others.
        peer_idle_for=peer_idle_for(list(peer_sockets)) if peer_sockets else None,
    )
    await nursery.start(gateway.waker.run)
    limit = config.timeouts.docker_start
    with trio.move_on_after(limit):
        await watcher.tried.wait()
        if watcher.answered:
            await watcher.synced.wait()
    if watcher.synced.is_set():
        gateway.mark_routes_complete()
        log.info("Docker routes loaded: %d containers", len(watcher.containers.containers))
        return
    if watcher.failure is not None:
        log.warning("%s: serving the static routes; requests for other routes wait for it (up to --hold %gs)",
                    watcher.failure, config.discovery.hold)
    elif watcher.answered:
        log.warning("the Docker engine did not list its containers within %gs: serving the static routes; requests "
                    "for other routes wait for it (up to --hold %gs)", limit, config.discovery.hold)
    else:
        # Nobody there (no socket, refused, or silent): opening at once, and
        # not holding requests for routes only Docker could give.
        log.warning("no Docker engine at %s: serving the static routes; requests for other routes get 503 until it "
                    "answers", engine_address(config.docker_url))

    async def complete_when_synced() -> None:
        await watcher.synced.wait()
        gateway.mark_routes_complete()
        log.info("Docker routes loaded: %d containers", len(watcher.containers.containers))

    nursery.start_soon(complete_when_synced)


def run(config: Config, *, admin_socket: str | None = None, peer_sockets: tuple[str, ...] = ()) -> int:
    """Blocking entry point for the CLI (and each --workers worker). Returns the exit status."""
    ignore_late_stops()
    try:
        trio.run(partial(serve, config, admin_socket=admin_socket, peer_sockets=peer_sockets))
    except ConfigError as error:
        log.error("%s", error)
        return 1
    return 0
