# HAProxy mode end to end: `fastroute haproxy` as a real process following a
# real Docker engine, driving a real HAProxy through its master socket.

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ...docker_support import GATEWAY_DOCKER, RUN_ID, RUN_LABEL, DockerLab, http_get
from ...haproxy_support import HAProxy

WAIT = 20.0  # seconds: the longest any step waits for the engine and HAProxy


def wait_until(what: str, check: Callable[[], bool], limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def status(haproxy: HAProxy, path: str) -> int:
    try:
        return http_get(("127.0.0.1", haproxy.port), path)[0]
    except OSError:
        return 0


@pytest.fixture
def following(haproxy: HAProxy, docker_lab: DockerLab, tmp_path: Path) -> Iterator[tuple[HAProxy, Path]]:
    """HAProxy started on `fastroute haproxy --once`'s file, then a follower process; its log path."""
    common = [sys.executable, "-m", "proxy", "haproxy", "--config", str(haproxy.config), "--bind", haproxy.bind,
              "--network", docker_lab.network, "--docker-label", f"{RUN_LABEL}={RUN_ID}", "--hold", "0",
              *(["--docker", GATEWAY_DOCKER] if GATEWAY_DOCKER else [])]
    subprocess.run([*common, "--once"], check=True, capture_output=True, timeout=60)
    haproxy.start()
    log = tmp_path / "fastroute.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*common, "--master-socket", str(haproxy.socket), "--reload-interval", "1"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until("the follower to start", lambda: "following Docker" in log.read_text())
        yield haproxy, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(10) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()


def test_containers_become_reachable_and_unreachable_through_haproxy(
    following: tuple[HAProxy, Path], docker_lab: DockerLab
) -> None:
    haproxy, log = following
    assert status(haproxy, "/hx/one/") == 404

    backend = docker_lab.start_backend(labels={"fastroute.route": "/hx/one"})
    wait_until("the container behind HAProxy", lambda: status(haproxy, "/hx/one/") == 200)
    body = http_get(("127.0.0.1", haproxy.port), "/hx/one/x/")[1]
    assert f"host={backend.name}".encode() in body

    second = docker_lab.start_backend(labels={"fastroute.route": "/hx/one"})
    reloads = haproxy.reloads()
    wait_until("the second container in the pool", lambda: any(
        f"host={second.name}".encode() in http_get(("127.0.0.1", haproxy.port), "/hx/one/")[1]
        for _ in range(6)))
    assert haproxy.reloads() == reloads  # joined through the runtime API

    docker_lab.client.containers.get(backend.id).stop(timeout=2)
    docker_lab.client.containers.get(second.id).stop(timeout=2)
    wait_until("both to leave", lambda: status(haproxy, "/hx/one/") != 200, limit=2.0)
    wait_until("the prefix to go (--hold 0)", lambda: status(haproxy, "/hx/one/") == 404)
    assert "Traceback" not in log.read_text()


def test_a_bad_label_never_breaks_the_running_haproxy(following: tuple[HAProxy, Path], docker_lab: DockerLab) -> None:
    haproxy, log = following
    docker_lab.start_backend(labels={"fastroute.route": "/hx/good"})
    wait_until("the good container", lambda: status(haproxy, "/hx/good/") == 200)
    reloads = haproxy.reloads()

    bad = [
        docker_lab.start_backend(labels={"fastroute.route": "/hx/bad path"}),
        docker_lab.start_backend(labels={"fastroute.route": "/hx/'quoted'{x}/%[src]$HOME",
                                         "fastroute.strip_prefix": "true"}),
        docker_lab.start_backend(labels={"fastroute.route": "/hx/port", "fastroute.port": "eighty"}),
    ]
    wait_until("the skips to be logged", lambda: all(b.name in log.read_text() for b in (bad[0], bad[2])))
    wait_until("the odd but valid prefix", lambda: status(haproxy, "/hx/'quoted'{x}/%[src]$HOME/") == 200)
    assert f"host={bad[1].name}".encode() in http_get(("127.0.0.1", haproxy.port), "/hx/'quoted'{x}/%[src]$HOME/")[1]

    assert status(haproxy, "/hx/good/") == 200
    assert status(haproxy, "/hx/port/") == 404
    assert haproxy.reloads() >= reloads and "refused" not in log.read_text()
    assert subprocess.run([haproxy.binary, "-c", "-f", str(haproxy.config)], capture_output=True).returncode == 0


def test_a_burst_of_20_starts_leads_to_few_reloads(following: tuple[HAProxy, Path], docker_lab: DockerLab) -> None:
    haproxy, log = following
    reloads = haproxy.reloads()
    started = time.monotonic()

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda i: docker_lab.start_backend(labels={"fastroute.route": f"/burst/{i}"}, wait=False),
                      range(20)))
    wait_until("all 20 behind HAProxy", lambda: all(status(haproxy, f"/burst/{i}/") == 200 for i in range(20)))

    took = time.monotonic() - started
    done = haproxy.reloads() - reloads
    print(f"20 starts over {took:.1f}s: {done} reloads")
    assert 1 <= done <= took / 1.0 + 1  # at most one per --reload-interval (1 s), plus the first
    assert done <= 8
