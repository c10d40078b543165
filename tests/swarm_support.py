# A real single-node Swarm for the tests and the benchmark (issue 20):
# `docker swarm init` on this machine's engine (left again afterwards),
# an attachable overlay network of the test's own, and the gateway inside
# it. The gateway is the `fastroute` of this checkout, run in the network
# namespace of a box container (nsenter --net) that is on the overlay and
# on the lab's bridge network: it reaches the tasks on the overlay, and the
# test reaches it on the box's bridge address. Every address used is on a
# network the test created.

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .docker_support import NAME_PREFIX, RUN_ID, RUN_LABEL, require_tool, wait_for_port

GATEWAY_PORT = 8080
ADMIN_PORT = 9090
GRACE = 2  # seconds a task keeps serving after SIGTERM (tests/backend/run.sh)
NS = 1_000_000_000  # the Engine API's durations are nanoseconds


@contextmanager
def single_node_swarm(client: Any) -> Iterator[None]:
    """This engine as a one-node Swarm for the block; left again unless it was one before."""
    state = (client.info().get("Swarm") or {}).get("LocalNodeState")
    if state == "active":
        yield  # someone else's Swarm: use it, leave it be
        return
    client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    try:
        yield
    finally:
        client.swarm.leave(force=True)


@dataclass
class Answer:
    sent: float  # time.monotonic()
    status: int  # 0: the request failed (no answer)
    host: str  # who answered (the backend's hostname), "" if none
    error: str = ""


def get(address: tuple[str, int], path: str, timeout: float = 30.0) -> Answer:
    """One HTTP/1.0 GET through the gateway: who answered."""
    import socket

    sent = time.monotonic()
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: swarm\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as error:
        return Answer(sent, 0, "", f"{type(error).__name__}: {error}")
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return Answer(sent, 0, "", f"no status line: {data[:80]!r}")
    host = next((line[5:].decode() for line in body.splitlines() if line.startswith(b"host=")), "")
    return Answer(sent, status, host, "" if status == 200 else body[:200].decode(errors="replace"))


class Load:
    """`clients` threads sending GETs one after another until stopped (at most `limit` s, `count` each)."""

    def __init__(self, address: tuple[str, int], path: str, *, clients: int = 4, limit: float = 120.0,
                 count: int = 20_000) -> None:
        self.address = address
        self.path = path
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._deadline = time.monotonic() + limit
        self._threads = [threading.Thread(target=self._run, args=(count,), daemon=True) for _ in range(clients)]

    def _run(self, count: int) -> None:
        for _ in range(count):
            if self._stop.is_set() or time.monotonic() > self._deadline:
                return
            self.answers.append(get(self.address, self.path))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]

    def hosts_since(self, moment: float) -> set[str]:
        return {a.host for a in self.answers if a.sent >= moment}


@dataclass
class SwarmLab:
    """The overlay, the box the gateway runs in, and the services of one test module."""

    client: Any
    image: str  # the backend image
    bridge: str  # the lab's bridge network (the box's second network: where the test reaches it)
    overlay: str = ""
    box: Any = None
    box_ip: str = ""
    gateway: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    services: list[Any] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    seen: dict[str, set[str]] = field(default_factory=dict)  # service ID -> every task ID listed so far
    _network: Any = None

    def open(self) -> None:
        require_tool(("nsenter",), "apt-get install util-linux")
        self._network = self.client.networks.create(
            f"{NAME_PREFIX}-ov-{uuid.uuid4().hex[:6]}", driver="overlay", attachable=True,
            labels={RUN_LABEL: RUN_ID})
        self.overlay = str(self._network.name)
        self.box = self.client.containers.run(
            self.image, name=f"{NAME_PREFIX}-box-{uuid.uuid4().hex[:6]}", detach=True, network=self.bridge,
            labels={RUN_LABEL: RUN_ID, "fastroute.enable": "false"})
        self._network.connect(self.box)
        self.box.reload()
        self.box_ip = self.box.attrs["NetworkSettings"]["Networks"][self.bridge]["IPAddress"]

    @property
    def network_id(self) -> str:
        return str(self._network.id)

    @property
    def address(self) -> tuple[str, int]:
        return (self.box_ip, GATEWAY_PORT)

    @property
    def admin(self) -> tuple[str, int]:
        return (self.box_ip, ADMIN_PORT)

    def in_box(self, *command: str) -> list[str]:
        """`command` run in the box's network namespace (and nothing else of it: files are this machine's)."""
        return ["nsenter", f"--net=/proc/{self.box.attrs['State']['Pid']}/ns/net", "--", *command]

    def start_gateway(self, directory: Path, *flags: str) -> None:
        """`fastroute serve` in the box, following this engine's Swarm (the services of this run only)."""
        self.log = directory / "gateway.log"
        with open(self.log, "wb") as out:
            self.gateway = subprocess.Popen(self.in_box(
                sys.executable, "-m", "proxy", "serve", "--listen", f"0.0.0.0:{GATEWAY_PORT}",
                "--admin", f"0.0.0.0:{ADMIN_PORT}", "--network", self.overlay, "--swarm", "on",
                "--docker-label", f"{RUN_LABEL}={RUN_ID}", *flags), stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.address, 30.0)

    def stop_gateway(self) -> int:
        if self.gateway is None:
            return 0
        self.gateway.terminate()
        try:
            return self.gateway.wait(30)
        finally:
            if self.gateway.poll() is None:
                self.gateway.kill()
            self.gateway = None

    def routes(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"http://{self.admin[0]}:{self.admin[1]}/routes", timeout=5) as answer:
            found: list[dict[str, Any]] = json.load(answer)["routes"]
            return found

    def tag(self, app: str, version: str) -> str:
        """The backend image as this run's `app`, tagged `version` (its route: prefix(app))."""
        repository = f"{NAME_PREFIX}/{app}"
        reference = f"{repository}:{version}"
        if reference not in self.tags:
            self.client.images.get(self.image).tag(repository, version)
            self.tags.append(reference)
        return reference

    @staticmethod
    def prefix(app: str) -> str:
        return f"/{NAME_PREFIX}/{app}"

    def create_service(self, image: str, *, replicas: int = 2, labels: dict[str, str] | None = None,
                       order: str = "start-first", **options: Any) -> Any:
        """A service on the overlay whose tasks answer with host=t-<task id>, and drain for GRACE s."""
        import docker.types

        service = self.client.services.create(
            image, name=f"{NAME_PREFIX}-svc-{uuid.uuid4().hex[:6]}", labels={RUN_LABEL: RUN_ID, **(labels or {})},
            networks=[self.overlay], hostname="t-{{.Task.ID}}", env=[f"GRACE={GRACE}"],
            mode=docker.types.ServiceMode("replicated", replicas=replicas),
            update_config=docker.types.UpdateConfig(parallelism=1, order=order, monitor=NS // 2),
            stop_grace_period=(GRACE + 3) * NS, **options)
        self.services.append(service)
        return service

    def running_tasks(self, service: Any) -> list[dict[str, Any]]:
        service.reload()
        return [t for t in service.tasks() if t["Status"]["State"] == "running" and t["DesiredState"] == "running"]

    def _tasks(self, service: Any) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = service.tasks()
        self.seen.setdefault(service.id, set()).update(t["ID"] for t in tasks)
        return tasks

    def task_hosts(self, service: Any) -> set[str]:
        """The hostname of every task of the service listed so far (the engine forgets removed ones)."""
        self._tasks(service)
        return {f"t-{tid}" for tid in self.seen[service.id]}

    def wait_converged(self, service: Any, replicas: int, limit: float = 60.0, *,
                       updated: bool = False) -> list[dict[str, Any]]:
        """Until the service runs `replicas` tasks and no other task of it is still running
        (updated: and a rolling update has completed)."""
        deadline = time.monotonic() + limit
        while True:
            service.reload()
            tasks = self._tasks(service)
            running = [t for t in tasks if t["Status"]["State"] == "running" and t["DesiredState"] == "running"]
            leftover = [t for t in tasks if t["Status"]["State"] == "running" and t["DesiredState"] != "running"]
            update = (service.attrs.get("UpdateStatus") or {}).get("State")
            if len(running) == replicas and not leftover and update in ((None, "completed") if not updated
                                                                        else ("completed",)):
                return running
            if time.monotonic() > deadline:
                raise AssertionError(f"the service did not converge on {replicas} tasks: {len(running)} running, "
                                     f"{len(leftover)} stopping, update {update}")
            time.sleep(0.2)

    def close(self) -> None:
        errors: list[BaseException] = []
        self.stop_gateway()
        for service in self.services:
            try:
                service.remove()
            except Exception as error:  # noqa: BLE001 - collect, report after cleanup
                if "not found" not in str(error).lower():
                    errors.append(error)
        if self.box is not None:
            self.box.remove(force=True)
        if self._network is not None:
            # The tasks' containers go away a moment after their service; the overlay only then.
            deadline = time.monotonic() + 30
            while True:
                try:
                    self._network.remove()
                    break
                except Exception as error:  # noqa: BLE001
                    if time.monotonic() > deadline:
                        errors.append(error)
                        break
                    time.sleep(0.5)
        for tag in self.tags:
            try:
                self.client.images.remove(tag, noprune=True)
            except Exception as error:  # noqa: BLE001
                errors.append(error)
        if errors:
            raise RuntimeError(f"could not clean up: {errors}")
