# The run's leak check (tests/leak_check.py) catches what a test leaves
# behind: a run of its own with one leak of each kind planted fails and
# names them all, and the same run without the leaks passes.

from __future__ import annotations

import os
import subprocess
import re
import sys
import uuid
from pathlib import Path
from typing import Any

from .leak_check import live_descendants

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = "from tests.leak_check import pytest_sessionfinish, pytest_sessionstart, pytest_terminal_summary\n"

PLANTED = '''
import os, subprocess, sys, tempfile
from tests import docker_support

PLANT = os.environ.get("PLANT") == "1"


def test_a_process_left_running():
    if PLANT:
        subprocess.Popen(["sleep", "{seconds}"])


def test_a_daemon_that_detached():
    if PLANT:  # its parent exits at once: an orphan, which init would have taken
        subprocess.run(["sh", "-c", "setsid sleep {seconds} >/dev/null 2>&1 &"], check=True)


def test_a_file_outside_tmp_path():
    if PLANT:
        open(os.path.join(tempfile.gettempdir(), "{file}"), "w").close()


def test_a_docker_network():
    if PLANT and {docker}:
        client = docker_support.connect()
        client.networks.create("{network}", labels={{docker_support.RUN_LABEL: docker_support.RUN_ID}})
        client.close()
'''


def run_planted(tmp_path: Path, *, plant: bool, docker: bool) -> tuple[subprocess.CompletedProcess[str], str, str]:
    seconds = str(3000 + uuid.uuid4().int % 1000)  # a sleep no other process runs
    file = f"fastroute-planted-{uuid.uuid4().hex[:8]}"
    network = f"fastroute-planted-{uuid.uuid4().hex[:8]}"
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_planted.py").write_text(
        PLANTED.format(seconds=seconds, file=file, docker=docker, network=network))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PLANT": "1" if plant else "0"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return result, seconds, network


def sleeping(seconds: str) -> list[int]:
    """The processes running `sleep SECONDS`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes() == f"sleep\0{seconds}\0".encode():
                found.append(int(entry))
        except OSError:
            pass
    return found


def test_a_run_that_leaves_things_behind_fails_and_names_them(tmp_path: Path) -> None:
    result, seconds, _ = run_planted(tmp_path, plant=True, docker=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "4 passed" in output  # every test passed: the leaks alone fail the run
    assert output.count("LEFT BEHIND process") == 2 and output.count(f"sleep {seconds}") == 2, output
    assert re.search(r"LEFT BEHIND file: \S*/fastroute-tests-\w+/fastroute-planted-", output), output
    assert sleeping(seconds) == []  # killed by the check, not by this test


def test_a_docker_network_left_behind_is_named_and_removed(tmp_path: Path, docker_client: Any) -> None:
    result, _, network = run_planted(tmp_path, plant=True, docker=True)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"LEFT BEHIND Docker network {network}" in output
    assert docker_client.networks.list(names=[network]) == []  # removed by the check


def test_the_same_run_without_the_leaks_passes(tmp_path: Path) -> None:
    result, _, _ = run_planted(tmp_path, plant=False, docker=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "LEFT BEHIND" not in result.stdout


def test_descendants_are_found_through_a_parent_that_is_gone() -> None:
    # A grandchild stays below its grandparent when its parent exits only
    # because this process is a subreaper: the check's premise, tested alone.
    shell = subprocess.run(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"], check=True, capture_output=True,
                           text=True)
    orphan = int(shell.stdout)  # its parent, the shell, has exited
    try:
        assert orphan in live_descendants(os.getpid())
    finally:
        os.kill(orphan, 9)
        os.waitpid(orphan, 0)  # re-parented to this process: reaped here
