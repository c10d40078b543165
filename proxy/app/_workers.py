# `fastroute serve --workers N`: N worker processes, each a whole gateway
# (its own trio loop, route table and Docker watcher), sharing the listening
# addresses through SO_REUSEPORT; the kernel spreads new connections among
# them. This process only supervises.
#
# Rules:
# - the addresses are probed here first, so an address in use is one error;
# - SIGTERM / SIGINT / SIGHUP are passed on to every worker (drain, or
#   re-read the routes file); the supervisor exits once all workers have,
#   with the worst exit status;
# - a worker that dies on its own is started again after RESPAWN_DELAY; one
#   that exits with an error within STARTUP_GRACE of its start (it could not
#   listen, say) stops the whole gateway (exit 1): it would only fail again.
#   One killed by a signal is always started again.
# - each worker serves its admin endpoints on a Unix socket in a private
#   directory: the others ask it before stopping an idle container they
#   woke; with --admin, one more process, the admin front (admin/_front.py),
#   serves --admin by merging them, supervised like a worker.

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import time
from types import FrameType

import trio

from .._config import Address, Config
from .._errors import ConfigError
from ..admin._front import AdminFront
from ..gateway._listen import probe
from ._signals import ignore_late_stops

__all__ = ["RESPAWN_DELAY", "STARTUP_GRACE", "run_front", "supervise"]

log = logging.getLogger("fastroute")

ADMIN_FRONT = -1  # the index of the admin front among the workers
RESPAWN_DELAY = 1.0  # seconds before a dead worker is started again
STARTUP_GRACE = 2.0  # seconds: a worker dying sooner is a start-up failure
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def supervise(config: Config) -> int:
    """Run config.workers workers (and the admin front) until they all exit. Returns the exit status."""
    for address in config.listen:
        try:
            probe(address)
        except OSError as error:
            log.error("cannot listen on %s: %s", address, error.strerror or error)
            return 1
    if config.admin is not None:
        try:
            probe(config.admin, reuse_port=False)
        except OSError as error:
            log.error("cannot listen on --admin %s: %s", config.admin, error.strerror or error)
            return 1
    rundir = tempfile.mkdtemp(prefix="fastroute-workers-")  # mode 0700: the workers' admin sockets
    sockets = [os.path.join(rundir, f"worker-{index}.sock") for index in range(config.workers)]
    try:
        return _supervise(config, sockets)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def _supervise(config: Config, sockets: list[str]) -> int:
    supervisor = _Supervisor(config, sockets)
    for signum in FORWARDED:
        signal.signal(signum, supervisor.forward)
    for index in range(config.workers):
        supervisor.spawn(index)
    if config.admin is not None:
        supervisor.spawn(ADMIN_FRONT)
    log.info("%d workers started (pids %s)", config.workers, ", ".join(map(str, supervisor.workers)))
    worst = supervisor.wait()
    ignore_late_stops()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return worst


class _Supervisor:
    """The worker processes (and the admin front) of one `serve --workers N`: started, told the
    signals the supervisor gets, and started again when one dies (not while it starts: then all stop)."""

    def __init__(self, config: Config, sockets: list[str]) -> None:
        self.config = config
        self.sockets = sockets
        self.workers: dict[int, tuple[int, float]] = {}  # pid -> (index, started at)
        self.stopping = False

    def spawn(self, index: int) -> None:
        from ._serve import run

        pid = os.fork()
        if pid == 0:
            for signum in FORWARDED:
                signal.signal(signum, signal.SIG_DFL)
            code = 1
            try:
                if index == ADMIN_FRONT:
                    assert self.config.admin is not None
                    code = run_front(self.config.admin, self.sockets)
                else:
                    peers = tuple(path for other, path in enumerate(self.sockets) if other != index)
                    code = run(self.config, admin_socket=self.sockets[index], peer_sockets=peers)
            finally:
                os._exit(code)
        self.workers[pid] = (index, time.monotonic())

    def forward(self, signum: int, frame: FrameType | None) -> None:
        if signum != signal.SIGHUP:
            self.stopping = True
        for pid in list(self.workers):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def wait(self) -> int:
        """Until every worker exited: the worst exit code of a stop."""
        worst = 0
        while self.workers:
            pid, status = os.wait()
            if pid not in self.workers:
                continue
            index, started = self.workers.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                worst = max(worst, code if code >= 0 else 1)
                continue
            name = "the admin front" if index == ADMIN_FRONT else f"worker {index}"
            if code > 0 and time.monotonic() - started < STARTUP_GRACE:
                log.error("%s exited with %d while starting; stopping the others", name, code)
                self.forward(signal.SIGTERM, None)
                worst = max(worst, 1)
                continue
            log.error("%s (pid %d) exited with %d; starting it again", name, pid, code)
            time.sleep(RESPAWN_DELAY)
            if not self.stopping:
                self.spawn(index)
        return worst


async def _serve_front(front: AdminFront) -> None:
    await front.listen()  # before the nursery: a ConfigError stays one line
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(front.serve)
            log.info("admin endpoints on %s (merging %d workers)",
                     ", ".join(f"{h}:{p}" for h, p in front.addresses), len(front.sockets))
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def run_front(address: Address, sockets: list[str]) -> int:
    """Blocking: serve the merged admin endpoints until SIGTERM or SIGINT. Returns the exit status."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor passes SIGHUP on to reload routes
    ignore_late_stops()
    front = AdminFront(address, sockets)
    try:
        trio.run(_serve_front, front)
    except ConfigError as error:
        log.error("%s", error)
        return 1
    return 0
