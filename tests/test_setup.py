# .ci/setup, the one list of the system parts the tests use: the README's
# opening names every package it installs, and where it may change nothing
# it changes nothing and says what is missing in one line each, exit 0.

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / ".ci" / "setup"


def packages() -> list[str]:
    block = SETUP.read_text().split("parts=(", 1)[1].split("\n)", 1)[0]
    return re.findall(r'^\s*"([a-z0-9.+-]+):', block, re.M)


def test_the_readme_names_every_package_setup_installs() -> None:
    two_commands = (ROOT / "README.md").read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    assert len(packages()) >= 10
    assert [p for p in packages() if f"`{p}`" not in two_commands] == []


def test_forbidden_to_install_it_changes_nothing_and_says_what_is_missing(tmp_path: Path) -> None:
    env = {**os.environ, "FASTROUTE_INSTALL": "no", "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    result = subprocess.run([str(SETUP)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert all(line.startswith("setup: ") for line in lines), lines
    if shutil.which("docker") is None:  # no client to ask: the package is what is missing
        assert any(re.match(r"setup: missing .*docker\.io.* \(FASTROUTE_INSTALL=no\)", line) for line in lines)
    else:
        assert f"setup: no Docker engine answers at unix://{tmp_path}/no-engine.sock (FASTROUTE_INSTALL=no): " \
               "the Docker tests skip; to start one: sudo dockerd (or sudo systemctl start docker)" in lines
    assert not (tmp_path / "no-engine.sock").exists()
