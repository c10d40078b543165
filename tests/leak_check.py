# What a test run leaves behind, checked when the run ends (issue 37): a
# process a test started that is still alive, a Docker container, network,
# volume or Swarm service of this run, and a new file or directory in the
# run's temporary directory outside pytest's tmp_path. Whatever is found is
# named, ended (killed, removed) and fails the run, whether the tests
# passed, failed or skipped.
#
# Rules:
# - processes: pytest makes itself a child subreaper (prctl
#   PR_SET_CHILD_SUBREAPER) when the run starts, so a process that a test
#   started and that went on in the background (a daemon that detached, the
#   children of a process that was killed) is re-parented to pytest, not to
#   init: when the run ends, every live process below pytest is a leak;
# - a process meant to outlive the run (dockerd restarted by a test, which
#   owns the machine's engine in CI) is started inside detached(): while it
#   lasts pytest is no subreaper, so a daemon orphaned then goes to init
#   with everything it starts later (containerd, its shims);
# - Docker: only objects that carry this run's label (tests/docker_support.py
#   RUN_LABEL), and only when a test talked to an engine;
# - files: the run has a temporary directory of its own (TMPDIR and
#   tempfile's, for the tests and every process they start; pytest's
#   tmp_path stays where it was, kept for the last few runs as usual).
#   Whatever is in it when the run ends was left behind; it is then removed
#   whole.
#
# tests/test_leak_check.py plants a leak of each kind in a run of its own
# and sees that run fail.

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

__all__ = ["detached", "pytest_sessionfinish", "pytest_sessionstart", "pytest_terminal_summary"]

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>

_found: list[str] = []
_run_tmp: list[str] = []  # the run's temporary directory, once made


def _subreaper(on: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:  # Linux only, as the gateway's engine is
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


@contextmanager
def detached() -> Iterator[None]:
    """Processes orphaned inside this block go to init: start a daemon meant to outlive the run here."""
    _subreaper(False)
    try:
        yield
    finally:
        _subreaper(True)


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue  # ended, not reaped yet
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def live_descendants(pid: int) -> list[int]:
    """Every live process below `pid`, parents before their children."""
    children = _children_by_parent()
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def _describe(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return f"process {pid}: {' '.join(a.decode(errors='replace') for a in argv if a)[:200]}"
    except OSError:
        return f"process {pid}"


def _reap() -> None:
    # Orphans re-parented to pytest that ended: reap them, so none is left a zombie.
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def pytest_sessionstart(session: pytest.Session) -> None:
    _subreaper(True)
    machine_tmp = tempfile.gettempdir()
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", machine_tmp)  # tmp_path where it always was
    run_tmp = tempfile.mkdtemp(prefix="fastroute-tests-")
    _run_tmp.append(run_tmp)
    os.environ["TMPDIR"] = run_tmp
    tempfile.tempdir = run_tmp


def _leaked_processes() -> list[str]:
    leaked = live_descendants(os.getpid())
    found = [_describe(pid) for pid in leaked]
    for pid in reversed(leaked):  # children first
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap()
    return found


def _leaked_docker_objects() -> list[str]:
    from . import docker_support

    if not docker_support.engine_used():
        return []
    try:
        client = docker_support.connect()
    except Exception as error:  # noqa: BLE001 - the engine went away: nothing can be checked
        return [f"Docker: could not be checked for leftovers ({type(error).__name__}: {error})"]
    try:
        return docker_support.remove_run_leftovers(client)
    finally:
        client.close()


def _leaked_files() -> list[str]:
    if not _run_tmp:
        return []
    run_tmp = _run_tmp[0]
    found = [f"file: {os.path.join(run_tmp, name)}" for name in sorted(os.listdir(run_tmp))]
    shutil.rmtree(run_tmp, ignore_errors=True)
    return found


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.INTERRUPTED:
        if _run_tmp:
            shutil.rmtree(_run_tmp[0], ignore_errors=True)
        return  # stopped by hand: not checked
    _found.extend(_leaked_processes() + _leaked_docker_objects() + _leaked_files())
    if _found and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _found:
        return
    terminalreporter.section("left behind by the tests", sep="=", red=True, bold=True)
    for line in _found:
        terminalreporter.line(f"LEFT BEHIND {line}")
    terminalreporter.line("(ended or removed now; the run fails: see tests/leak_check.py)")
