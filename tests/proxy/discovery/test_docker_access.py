# The Docker socket filter of `fastroute docker-access --haproxy-config`
# (discovery/_access.py), for real: Debian's HAProxy with the generated
# configuration on a Unix socket in front of the engine's. What fastroute
# asks goes through (the discovery, wake and HAProxy-mode tests run again
# with the code under test behind the filter, and the filter must have
# denied none of their calls); what it never asks is refused with 403.

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from proxy.discovery._access import CALLS, FEATURES, haproxy_config, table

from ...docker_support import DockerLab, docker_required
from ...haproxy_support import START_LIMIT, cli, haproxy_binary
from ...helpers import rerun_tests, stop_process

GATED = ["discovery/test_docker_discovery.py", "discovery/test_wake.py", "haproxy/test_haproxy_docker.py"]


def test_every_call_names_known_features_and_the_table_lists_them() -> None:
    listed = table()
    for call in CALLS:
        assert set(call.features) <= set(FEATURES), call
        assert f"{call.method} {call.path}" in listed
    assert all(call.method == "GET" or call.features == ("wake",) for call in CALLS)  # only wake writes


def test_the_swarm_calls_pass_only_with_swarm() -> None:
    assert "/services" not in haproxy_config(wake=True)
    assert "/services" in haproxy_config(wake=False, swarm=True) and "/tasks" in haproxy_config(wake=False, swarm=True)


def test_without_wake_the_filter_lets_get_only() -> None:
    reading, waking = haproxy_config(wake=False), haproxy_config(wake=True)
    assert "method POST" not in reading
    assert waking.count("method POST") == sum(call.method == "POST" for call in CALLS) == 2
    assert "\\" not in waking  # HAProxy's parser would take a backslash for its own escape


@contextmanager
def socket_filter(*, wake: bool, swarm: bool = False, engine: str = "/var/run/docker.sock",
                  ) -> Iterator[tuple[Path, Path]]:
    """HAProxy with haproxy_config() on a Unix socket, in front of the `engine` socket: (its socket, its stats
    socket)."""
    binary = haproxy_binary()
    if not os.path.exists(engine):
        if docker_required():
            pytest.fail(f"no Docker engine socket at {engine}")
        pytest.skip(f"no Docker engine socket at {engine}")
    work = Path(tempfile.mkdtemp(prefix="fastroute-access-"))  # (the run's own, short enough for Unix sockets)
    sock, stats = work / "docker.sock", work / "stats.sock"
    config = haproxy_config(wake=wake, listen=str(sock), swarm=swarm, socket=engine)
    config = config.replace("global\n", f"global\n    stats socket {stats} mode 600 level admin\n", 1)
    (work / "filter.cfg").write_text(config)
    check = subprocess.run([binary, "-c", "-f", str(work / "filter.cfg")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = work / "haproxy.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "-db", "-f", str(work / "filter.cfg")], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_LIMIT
        while not (sock.exists() and stats.exists()):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "HAProxy did not open its sockets"
            time.sleep(0.05)
        yield sock, stats
    finally:
        stop_process(proc)
        shutil.rmtree(work, ignore_errors=True)


def status(sock: Path, method: str, path: str, body: bytes = b"") -> int:
    """One request through the filter (one connection); the status it answered."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(20)
        conn.connect(str(sock))
        conn.sendall(f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        head = b""
        while b"\r\n" not in head:
            chunk = conn.recv(4096)
            assert chunk, f"closed before a status line: {head!r}"
            head += chunk
    return int(head.split(b" ", 2)[1])


def counters(stats: Path) -> dict[str, int]:
    """The frontend's request counters: all of them, and those denied."""
    rows = [line.split(",") for line in cli(stats, "show stat").splitlines()]
    fields = [field.lstrip("# ") for field in rows[0]]
    frontend = next(row for row in rows[1:] if row[:2] == ["docker", "FRONTEND"])
    values = dict(zip(fields, frontend))
    return {"requests": int(values["req_tot"] or 0), "denied": int(values["dreq"] or 0)}


@pytest.mark.parametrize(("method", "path", "body"), [
    pytest.param("POST", "/containers/create", b'{"Image": "busybox"}', id="create"),
    pytest.param("POST", "/v1.40/containers/create?name=x", b'{"Image": "busybox"}', id="create_versioned"),
    pytest.param("POST", "/containers/fastroute-none/exec", b'{"Cmd": ["sh"]}', id="exec"),
    pytest.param("GET", "/containers/fastroute-none/archive?path=/", b"", id="archive"),
    pytest.param("GET", "/containers/fastroute-none/export", b"", id="export"),
    pytest.param("DELETE", "/containers/fastroute-none", b"", id="remove"),
    pytest.param("POST", "/images/create?fromImage=busybox", b"", id="pull"),
    pytest.param("GET", "/images/json", b"", id="images"),
    pytest.param("GET", "/containers/a%2F..%2Fx/json", b"", id="encoded_slash"),
    pytest.param("GET", "/containers/../json", b"", id="dot_segment"),
    pytest.param("GET", "/containers/json/../../info", b"", id="past_an_allowed_path"),
])
def test_what_fastroute_never_asks_is_refused(method: str, path: str, body: bytes) -> None:
    with socket_filter(wake=True) as (sock, stats):
        assert status(sock, method, path, body) == 403
        assert counters(stats)["denied"] == 1


def test_what_fastroute_asks_goes_through_and_start_only_with_wake() -> None:
    with socket_filter(wake=True) as (sock, _):
        assert status(sock, "GET", "/_ping") == 200
        assert status(sock, "GET", "/version") == 200
        assert status(sock, "GET", "/v1.40/containers/json?all=1") == 200
        assert status(sock, "GET", "/v1.40/containers/fastroute-none/json") == 404  # the engine's answer
        assert status(sock, "POST", "/v1.40/containers/fastroute-none/start") == 404
    with socket_filter(wake=False) as (sock, _):
        assert status(sock, "GET", "/_ping") == 200
        assert status(sock, "POST", "/v1.40/containers/fastroute-none/start") == 403
        assert status(sock, "POST", "/v1.40/containers/fastroute-none/stop") == 403


def test_discovery_wake_and_haproxy_mode_pass_through_the_filter(docker_lab: DockerLab) -> None:
    with socket_filter(wake=True) as (sock, stats):
        result = rerun_tests(GATED, {"FASTROUTE_TEST_GATEWAY_DOCKER": f"unix://{sock}"}, timeout=1500)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert " passed" in result.stdout, result.stdout[-2000:]
        if docker_required():
            assert " skipped" not in result.stdout, result.stdout[-2000:]
        seen = counters(stats)
    assert seen["requests"] > 50  # the code under test went through the filter
    assert seen["denied"] == 0  # and asked nothing the list leaves out


def test_the_command_prints_the_list_and_the_configuration() -> None:
    listed = subprocess.run([sys.executable, "-m", "proxy", "docker-access"], capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0 and listed.stdout == table()
    made = subprocess.run([sys.executable, "-m", "proxy", "docker-access", "--haproxy-config", "--wake",
                           "--listen", ":2375", "--socket", "/run/docker.sock"],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0
    assert made.stdout == haproxy_config(wake=True, listen=":2375", socket="/run/docker.sock")
    bad = subprocess.run([sys.executable, "-m", "proxy", "docker-access", "--wake"], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--haproxy-config" in bad.stderr
