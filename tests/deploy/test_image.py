# The container image (Dockerfile), built for real on a debootstrapped
# Debian base (tests/image_support.py) and run as a user runs it: the
# Docker socket mounted, on a user-defined network with backend containers.
# It routes, follows containers that start, turns healthy through its
# HEALTHCHECK, and on `docker stop` (SIGTERM to PID 1) finishes the request
# in flight and exits 0, well before Docker would kill it.

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ..docker_support import RUN_ID, RUN_LABEL, Backend, DockerLab, http_get, wait_for_port
from ..image_support import base_image, gateway_image

WAIT = 30.0  # seconds: the longest a step waits for the engine or the gateway
HEALTHY_WAIT = 60.0  # the first health check runs an interval (10 s) after the start
GATEWAY_PORT = 8080


def eventually(what: str, check: Callable[[], bool], limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def image(docker_client: Any) -> str:
    return gateway_image(base_image())


def start_gateway(lab: DockerLab, image: str, *args: str) -> tuple[Backend, Any]:
    """The image's gateway, following this run's containers on the lab's network: (where it is, its container)."""
    gateway = lab.start_backend(
        image=image, wait=False,
        command=["serve", "--network", lab.network, "--docker-label", f"{RUN_LABEL}={RUN_ID}", "--hold", "0", *args],
        labels={"fastroute.enable": "false"},  # (it carries the run's label: not a backend of its own)
        volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
    )
    wait_for_port((gateway.ip, GATEWAY_PORT), limit=WAIT)
    return gateway, lab.client.containers.get(gateway.id)


def answers(gateway: Backend, path: str, backend: Backend) -> bool:
    status, body = http_get((gateway.ip, GATEWAY_PORT), path)
    return status == 200 and f"host={backend.name}\n".encode() in body


def test_the_image_routes_follows_new_containers_and_turns_healthy(docker_lab: DockerLab, image: str) -> None:
    first = docker_lab.start_backend(labels={"fastroute.route": "/img/first"})
    gateway, container = start_gateway(docker_lab, image)
    eventually("the first backend routed", lambda: answers(gateway, "/img/first/", first))
    second = docker_lab.start_backend(labels={"fastroute.route": "/img/second"})
    eventually("a container started later routed", lambda: answers(gateway, "/img/second/", second))

    def health() -> str:
        container.reload()
        return str(container.attrs["State"]["Health"]["Status"])

    eventually("the HEALTHCHECK healthy", lambda: health() == "healthy", limit=HEALTHY_WAIT)
    assert container.attrs["State"]["Health"]["Log"][-1]["ExitCode"] == 0


def test_docker_stop_drains_the_request_in_flight_and_exits_0(docker_lab: DockerLab, image: str) -> None:
    backend = docker_lab.start_backend(labels={"fastroute.route": "/img/slow"})
    gateway, container = start_gateway(docker_lab, image, "--drain-timeout", "20")
    eventually("the backend routed", lambda: answers(gateway, "/img/slow/", backend))
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(http_get, (gateway.ip, GATEWAY_PORT), "/img/slow/?sleep=2")
        time.sleep(0.5)  # the request is at the backend
        started = time.monotonic()
        container.stop(timeout=30)  # SIGTERM; SIGKILL after 30 s
        stopped_after = time.monotonic() - started
        status, body = in_flight.result(timeout=WAIT)
    assert status == 200 and f"host={backend.name}\n".encode() in body
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0, container.logs()[-2000:]
    assert stopped_after < 20  # it went on its own (Docker kills at 30 s, exit code 137)
