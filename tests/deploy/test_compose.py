# examples/compose.yaml: valid for Compose, and its socket filter's
# configuration is exactly what `fastroute docker-access` makes now (the
# filter itself is tested for real in tests/proxy/discovery/test_docker_access.py,
# the gateway's image in test_image.py). Its images come from a registry
# this machine cannot reach, so the stack is not started here.

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from proxy.discovery._access import haproxy_config

from ..docker_support import require_tool
from ..haproxy_support import haproxy_binary

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def compose_command() -> list[str]:
    """`docker compose` (v2) where it answers, else Debian's docker-compose."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return [require_tool(("docker-compose",), "apt-get install docker-compose")]


def test_the_compose_file_is_valid() -> None:
    checked = subprocess.run([*compose_command(), "-f", str(EXAMPLES / "compose.yaml"), "config", "-q"],
                             capture_output=True, text=True, timeout=60, cwd=EXAMPLES)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_filters_configuration_is_the_one_fastroute_makes_and_haproxy_takes() -> None:
    kept = EXAMPLES / "docker-access.cfg"
    assert kept.read_text() == haproxy_config(wake=False, listen=":2375", socket="/var/run/docker.sock")
    checked = subprocess.run([haproxy_binary(), "-c", "-f", str(kept)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_only_the_filter_mounts_the_socket_and_the_gateway_asks_it() -> None:
    text = (EXAMPLES / "compose.yaml").read_text()
    services = text.split("\nservices:\n", 1)[1].split("\nnetworks:\n", 1)[0]
    blocks = dict(re.findall(r"^  ([\w-]+):\n((?:(?:    .*)?\n)*)", services + "\n", re.M))
    assert set(blocks) == {"gateway", "docker-filter", "whoami", "files"}
    assert "docker.sock" not in blocks["gateway"]
    assert '"--docker", "tcp://docker-filter:2375"' in blocks["gateway"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in blocks["docker-filter"]
    assert [name for name, block in blocks.items() if "docker.sock" in block] == ["docker-filter"]
