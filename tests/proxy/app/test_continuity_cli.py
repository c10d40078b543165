# `fastroute serve` as a real process, starting next to running containers
# and with an engine that is down or hangs: it opens only once it knows its
# routes (or the engine kept it waiting too long), and a hung engine never
# holds up a shutdown.

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from ...docker_support import RUN_ID, RUN_LABEL, DockerLab, EngineFront
from ...helpers import LOOPBACK, unused_port
from .test_serve_cli import Gateway as CliGateway
from .test_serve_cli import _children
from .test_serve_cli import backends  # noqa: F401 - a fixture

WAIT = 15.0  # seconds: the longest any step waits


class Serve(CliGateway):
    """`python -m proxy serve ARGS` on a loopback port of its own, following Docker unless told not to."""

    def __init__(self, *args: str) -> None:
        self.port = unused_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "proxy", "serve", "--listen", f"{LOOPBACK}:{self.port}", "--access-log", "off",
             *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def wait_open(self, pause: float = 0.001) -> float:
        """Connect until the port accepts; returns the time it took."""
        started = time.monotonic()
        while True:
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=1).close()
                return time.monotonic() - started
            except OSError:
                if self.proc.poll() is not None or time.monotonic() - started > WAIT:
                    self.proc.kill()
                    raise AssertionError(f"the gateway did not open: {self.proc.communicate()}") from None
                time.sleep(pause)

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(f"still running {timeout:g}s after SIGTERM; stderr: {err}") from None
        return self.proc.returncode, err


@pytest.fixture
def serving() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for gateway in started:
        if gateway.proc.poll() is None:
            gateway.proc.kill()
            gateway.proc.communicate()


def discovery_flags(lab: DockerLab) -> list[str]:
    return ["--network", lab.network, "--docker-label", f"{RUN_LABEL}={RUN_ID}"]


def in_threads(count: int, call: Callable[[int], object]) -> list[object]:
    results: list[object] = [None] * count

    def one(index: int) -> None:
        try:
            results[index] = call(index)
        except OSError as error:
            results[index] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    return results


def test_started_next_to_running_containers_its_first_requests_are_answered(
    docker_lab: DockerLab, serving: list[Serve]
) -> None:
    a = docker_lab.start_backend(labels={"fastroute.route": "/next/a"})
    b = docker_lab.start_backend(labels={"fastroute.route": "/next/b"})
    gateway = Serve(*discovery_flags(docker_lab))
    serving.append(gateway)
    gateway.wait_open()

    # Sent the moment the port accepts, all at once.
    answers = in_threads(10, lambda i: gateway.get("/next/a/" if i % 2 else "/next/b/"))

    assert [x if isinstance(x, OSError) else x[0] for x in answers] == [200] * 10  # type: ignore[index]
    for i, (_, body) in enumerate(answers):  # type: ignore[misc]
        assert f"host={(a if i % 2 else b).name}\n" in body.decode()  # the body arrives chunked
    code, err = gateway.stop()
    assert code == 0, err
    assert "Docker routes loaded" in err


def test_with_the_engine_down_at_start_it_serves_static_routes_and_picks_the_engine_up_later(
    docker_lab: DockerLab, backends: list[int], serving: list[Serve]  # noqa: F811
) -> None:
    container = docker_lab.start_backend(labels={"fastroute.route": "/later"})
    front = EngineFront()  # nothing listens there yet: the engine is down
    gateway = Serve("--docker", front.url, "--hold", "15",
                    "--route", f"/static={LOOPBACK}:{backends[0]}", *discovery_flags(docker_lab))
    serving.append(gateway)
    try:
        gateway.wait_open()  # at once: nobody listens at the engine's address, there is nothing to wait for
        assert gateway.get("/static/x")[0] == 200
        # A route only the engine could give, while it never answered: 503 at once, not after --hold.
        status, body = gateway.get("/later/")
        assert status == 503 and b"the Docker engine has not answered since the gateway started" in body
        front.start()
        deadline = time.monotonic() + 120  # only a hang reaches it: the watcher retries within 30 s
        while (answer := gateway.get("/later/"))[0] != 200:
            assert answer[0] in (503, 404) and time.monotonic() < deadline, answer
            time.sleep(0.1)
        assert f"host={container.name}" in answer[1].decode()
        code, err = gateway.stop()
    finally:
        front.close()
    assert code == 0, err
    assert f"no Docker engine at {front.url}: serving the static routes" in err and "Docker routes loaded" in err
    assert f"Docker engine unreachable at {front.url} (" in err and "or run with --no-docker" in err


def test_a_shutdown_is_not_held_up_by_an_engine_that_hangs(backends: list[int], serving: list[Serve]) -> None:  # noqa: F811
    front = EngineFront(hang=True)  # accepts, never answers
    front.start()
    gateway = Serve("--docker", front.url, "--docker-start-timeout", "0.5", "--drain-timeout", "2",
                    "--route", f"/static={LOOPBACK}:{backends[0]}")
    serving.append(gateway)
    try:
        gateway.wait_open()
        assert gateway.get("/static/x")[0] == 200
        code, err = gateway.stop(timeout=2 + 3)  # docker-py itself would wait 30 s for that engine
    finally:
        front.close()
    assert code == 0, err


def test_with_workers_a_replaced_worker_takes_connections_only_once_it_knows_the_routes(
    docker_lab: DockerLab, serving: list[Serve]
) -> None:
    container = docker_lab.start_backend(labels={"fastroute.route": "/workers"})
    gateway = Serve("--workers", "2", *discovery_flags(docker_lab))
    serving.append(gateway)
    gateway.wait_open()
    deadline = time.monotonic() + WAIT
    while len(_children(gateway.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    first = _children(gateway.proc.pid)
    assert len(first) == 2
    while gateway.get("/workers/")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    statuses: dict[int, int] = {}
    lost: list[str] = []
    stop = threading.Event()

    def client() -> None:
        for _ in range(20_000):  # bounded; stops when told
            if stop.is_set():
                return
            try:
                status, body = gateway.get("/workers/")
            except (OSError, IndexError, ValueError) as error:
                # A connection queued on the worker that died goes with it
                # (plain SO_REUSEPORT): no answer at all, counted apart.
                lost.append(type(error).__name__)
                continue
            if status == 200 and f"host={container.name}" not in body.decode(errors="replace"):
                lost.append("cut")  # in flight on the worker killed: its head came, its body did not
                continue
            statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        os.kill(first[0], signal.SIGKILL)
        while (len(_children(gateway.proc.pid)) < 2 or first[0] in _children(gateway.proc.pid)) \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        replaced = time.monotonic()
        while time.monotonic() - replaced < 2.0:  # the new worker starts, loads, joins the port
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT)
    code, err = gateway.stop()
    assert code == 0, err
    assert "worker 0" in err and "starting it again" in err
    assert set(statuses) == {200}, (statuses, f"lost without an answer: {len(lost)}")
    assert statuses[200] > 100
    print(f"answers {statuses}, connections lost with the killed worker: {len(lost)} {sorted(set(lost))}")
