# `fastroute haproxy`: keep an HAProxy configuration equal to what runs, and
# HAProxy serving it. Same watcher and route rules as the gateway; the
# output is a file and a reload instead of a table swap.
#
# Rules:
# - the file is replaced atomically (a temporary file beside it, `haproxy -c`,
#   then rename) and only after the check passed: a configuration HAProxy
#   rejects is never installed, and the last good one keeps serving;
# - changes that arrive together are applied together (BATCH), and reloads
#   are at most one per --reload-interval; whatever changed meanwhile goes
#   into that one reload;
# - a runtime change reaches HAProxy before the file is rewritten (the check
#   costs tens of milliseconds); if the file then fails its check, HAProxy
#   serves the change and the file stays as it was until one passes;
# - with --master-socket, what the runtime API can do is done without a
#   reload: a server added to, moved within or taken out of a pool that
#   already exists. A server that stops is taken out at once, even while a
#   reload waits for its turn. Any runtime command that fails falls back to
#   a reload of the (already installed) file.

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from .._config import Address, Route
from ._config import DEFAULT_PREAMBLE, Plan, Running, drain_step, plan_from, render, runtime_step
from ._errors import HAProxyError, MasterUnreachable

__all__ = ["HAProxyOptions", "HAProxySync", "master_command"]

log = logging.getLogger("fastroute.haproxy")

BATCH = 0.01  # seconds: the events of one container start (create, connect, start) are applied together
CLI_TIMEOUT = 10.0  # seconds for one master-socket command
RELOAD_TIMEOUT = 30.0  # seconds for a reload to show (master socket) or the reload command to exit
CHECK_TIMEOUT = 60.0  # seconds for `haproxy -c`
_MASTER_LINE = re.compile(rb"^\s*\d+\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]", re.MULTILINE)
_RUNTIME_OK = ("New server registered", "IP changed", "port changed", "no need to change")


@dataclass(frozen=True, slots=True)
class HAProxyOptions:
    config: Path
    binds: tuple[str, ...] = (":8080",)
    preamble: Path | None = None  # the global and defaults sections; None: DEFAULT_PREAMBLE
    haproxy: str = "haproxy"  # the binary that checks configurations
    reload_cmd: str | None = None
    master_socket: Path | None = None
    reload_interval: float = 2.0  # seconds between reloads, at least


async def master_command(socket_path: Path, command: str) -> str:
    """One command on HAProxy's master CLI ("@1 ..." for the current worker); its reply.

    Raises:
        MasterUnreachable: nothing listens on the socket, it hung up (the
            master re-executes itself on reload), or no reply within CLI_TIMEOUT.
    """
    try:
        with trio.fail_after(CLI_TIMEOUT):
            stream = await trio.open_unix_socket(str(socket_path))
            async with stream:
                await stream.send_all(command.encode("utf-8") + b"\n")
                await stream.send_eof()
                chunks = []
                while chunk := await stream.receive_some(65536):
                    chunks.append(chunk)
    except (OSError, trio.BrokenResourceError, trio.TooSlowError) as error:
        raise MasterUnreachable(f"HAProxy master CLI {socket_path}: {error or type(error).__name__}") from error
    return b"".join(chunks).decode("utf-8", "replace")


async def _master_reloads(socket_path: Path) -> tuple[int, int]:
    reply = (await master_command(socket_path, "show proc")).encode()
    found = _MASTER_LINE.search(reply)
    if found is None:
        raise HAProxyError(f"unexpected reply to 'show proc' on {socket_path}: {reply[:200]!r}")
    return int(found.group(1)), int(found.group(2))


_INSTALLS = itertools.count()


def _write_temporary(path: Path, text: str) -> Path:
    # Unique per install: two installs at once never write the same file.
    temporary = path.with_name(f".{path.name}.fastroute-{os.getpid()}-{next(_INSTALLS)}.tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    return temporary


def _rename_into_place(temporary: Path, path: Path) -> None:
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _first_lines(output: bytes, limit: int = 3) -> str:
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines() if line.strip()]
    alerts = [line for line in lines if "ALERT" in line] or lines
    return " | ".join(alerts[:limit]) or "(no output)"


class HAProxySync:
    """Turns route sets into an installed configuration and a running HAProxy."""

    def __init__(self, options: HAProxyOptions, names: Callable[[], Mapping[Address, str]] = dict) -> None:
        self.options = options
        self.names = names
        self.routes: tuple[Route, ...] = ()
        self.installed: str | None = None  # text of the file this process last installed
        self.running = Running()  # what HAProxy holds, once synced
        self.synced = False  # HAProxy known to run what is installed
        self.reloads = 0
        self.runtime_commands = 0
        self.busy = False  # a change is being applied (or waits for its reload)
        self._last_reload = -float("inf")
        self._changed = trio.Event()

    @property
    def can_reload(self) -> bool:
        return self.options.reload_cmd is not None or self.options.master_socket is not None

    def set_routes(self, routes: Sequence[Route]) -> None:
        """The new route set (from RouteSources); applied by run()."""
        self.routes = tuple(routes)
        self._changed.set()

    @property
    def idle(self) -> bool:
        """Every change so far applied, or given up on with an error logged."""
        return not self.busy and not self._changed.is_set()

    def plan(self) -> Plan:
        return plan_from(self.routes, self.names())

    def render(self, plan: Plan) -> str:
        """Raises OSError if the preamble file cannot be read."""
        preamble = DEFAULT_PREAMBLE
        if self.options.preamble is not None:
            preamble = self.options.preamble.read_text(encoding="utf-8")
        return render(plan, binds=self.options.binds, preamble=preamble)

    async def install(self, plan: Plan) -> None:
        """Write, check and install the configuration for `plan` (nothing if unchanged).

        Raises:
            HAProxyError: the preamble is unreadable or `haproxy -c` refused the file.
        """
        try:
            text = self.render(plan)
        except OSError as error:
            raise HAProxyError(f"cannot read the preamble: {error}") from None
        if text == self.installed:
            return
        path = self.options.config
        try:
            temporary = await trio.to_thread.run_sync(_write_temporary, path, text)
        except OSError as error:
            raise HAProxyError(f"cannot write {path}: {error}") from None
        try:
            with trio.fail_after(CHECK_TIMEOUT):
                result = await trio.run_process(
                    [self.options.haproxy, "-c", "-f", str(temporary)],
                    capture_stdout=True, capture_stderr=True, check=False,
                )
            if result.returncode != 0:
                raise HAProxyError(
                    f"haproxy -c refused the new configuration (kept {path} as it was): "
                    f"{_first_lines(result.stderr + result.stdout)}"
                )
            await trio.to_thread.run_sync(_rename_into_place, temporary, path)
        except OSError as error:
            raise HAProxyError(f"cannot check or install {path}: {error}") from None
        finally:
            if temporary.exists():
                temporary.unlink()
        self.installed = text
        log.info("installed %s: %d routes", path, len(plan.pools))

    async def reload(self) -> None:
        """Make HAProxy load the installed file.

        Raises:
            HAProxyError: the reload failed or did not show in time.
        """
        if self.options.master_socket is not None:
            await self._reload_through_master(self.options.master_socket)
        elif self.options.reload_cmd is not None:
            await self._reload_command(self.options.reload_cmd)
        else:
            return
        self.reloads += 1
        self._last_reload = trio.current_time()

    async def _reload_through_master(self, socket_path: Path) -> None:
        before, failed_before = await _master_reloads(socket_path)
        try:
            await master_command(socket_path, "reload")
        except MasterUnreachable:
            pass  # the master may hang up as it re-executes: `show proc` tells
        # The master re-executes itself; its socket is briefly gone.
        with trio.move_on_after(RELOAD_TIMEOUT):
            while True:
                await trio.sleep(0.05)
                try:
                    reloads, failed = await _master_reloads(socket_path)
                except HAProxyError:
                    continue
                if failed > failed_before:
                    raise HAProxyError("HAProxy's master reported the reload as failed (see its log)")
                if reloads > before:
                    return
        raise HAProxyError(f"HAProxy did not show the reload within {RELOAD_TIMEOUT:g}s")

    async def _reload_command(self, command: str) -> None:
        with trio.move_on_after(RELOAD_TIMEOUT) as scope:
            result = await trio.run_process(["/bin/sh", "-c", command], capture_stdout=True,
                                            capture_stderr=True, check=False)
        if scope.cancelled_caught:
            raise HAProxyError(f"reload command did not finish within {RELOAD_TIMEOUT:g}s: {command}")
        if result.returncode != 0:
            raise HAProxyError(
                f"reload command exited {result.returncode}: {_first_lines(result.stderr + result.stdout)}"
            )

    async def send(self, commands: Sequence[str]) -> bool:
        """Runtime-API commands to the current worker; False at the first that fails."""
        assert self.options.master_socket is not None
        for command in commands:
            try:
                reply = (await master_command(self.options.master_socket, "@1 " + command)).strip()
            except MasterUnreachable as error:
                log.warning("runtime API unreachable (%s); reloading instead", error)
                return False
            if reply and not reply.startswith(_RUNTIME_OK):
                log.warning("runtime command %r failed (%s); reloading instead", command, reply.splitlines()[0])
                return False
            self.runtime_commands += 1
            log.debug("runtime: %s", command)
        return True

    async def sync_once(self) -> None:
        """Install the configuration for the current routes and reload (for --once and the start).

        Raises:
            HAProxyError: as install() and reload().
        """
        self._changed = trio.Event()
        plan = self.plan()
        await self.install(plan)
        if self.can_reload:
            await self.reload()
            self.running = Running.loaded(plan)
            self.synced = True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Apply every route change, forever. Errors are logged; the last good state stays."""
        task_status.started()
        while True:
            retry = self.options.reload_interval if self.can_reload and not self.synced else float("inf")
            with trio.move_on_after(retry):
                await self._changed.wait()
            self.busy = True
            try:
                await trio.sleep(BATCH)
                await self._step()
            except HAProxyError as error:
                log.error("%s", error)
            finally:
                self.busy = False

    async def _drain(self, plan: Plan) -> None:
        if self.synced and self.options.master_socket is not None:
            commands, drained = drain_step(self.running, plan)
            if commands and await self.send(commands):
                self.running = drained

    async def _step(self) -> None:
        self._changed = trio.Event()  # a change from here on is seen by the next step
        plan = self.plan()
        if self.synced and self.options.master_socket is not None:
            # The running HAProxy first (no file is involved), then the file.
            step = runtime_step(self.running, plan)
            if step is not None:
                if await self.send(step[0]):
                    self.running = step[1]
                    await self.install(plan)
                    return
            else:
                await self._drain(plan)
        await self.install(plan)
        if not self.can_reload or (self.synced and self.running.plan == plan):
            return
        # Wait for the reload's turn; what changes meanwhile joins it, and
        # servers that stop meanwhile still leave at once.
        deadline = self._last_reload + self.options.reload_interval
        while trio.current_time() < deadline:
            with trio.move_on_at(deadline):
                await self._changed.wait()
            self._changed = trio.Event()
            plan = self.plan()
            await self._drain(plan)
            await self.install(plan)
        try:
            await self.reload()
        except HAProxyError:
            self.synced = False
            raise
        self.running = Running.loaded(plan)
        self.synced = True
        log.info("reloaded HAProxy (%d reloads, %d runtime commands so far)", self.reloads, self.runtime_commands)
