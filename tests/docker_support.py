# Docker for the tests: the engine, the backend image, and containers and
# networks that are always removed.
#
# Every object a test run creates is named "fastroute-test-<run>-..." and
# labelled fastroute.test.run=<run>, so nothing can collide with a user's
# containers and a run can find and remove exactly its own leftovers.
#
# No registry is reachable: the backend image is built FROM scratch around
# busybox-static's binary (see tests/backend/) and nothing is ever pulled.

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BACKEND_DIR = Path(__file__).parent / "backend"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
BACKEND_PORT = 8000
RUN_ID = uuid.uuid4().hex[:8]
RUN_LABEL = "fastroute.test.run"
NAME_PREFIX = f"fastroute-test-{RUN_ID}"


# The engine URL the code under test uses (None: DOCKER_HOST, else the local
# socket). test_docker_access.py sets it to a socket filter to run the
# discovery, wake and HAProxy-mode tests through it; the tests' own client
# (connect(), the labs) always talks to the engine itself.
GATEWAY_DOCKER: str | None = os.environ.get("FASTROUTE_TEST_GATEWAY_DOCKER") or None


def engine_socket() -> str:
    """The engine's Unix socket the tests use: DOCKER_HOST's (Podman's, in the Podman re-run), else Docker's."""
    host = os.environ.get("DOCKER_HOST", "")
    return host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock"


def docker_required() -> bool:
    return os.environ.get("FASTROUTE_REQUIRE_DOCKER", "") not in ("", "0")


def require_tool(names: tuple[str, ...], install: str) -> str:
    """The path of the first of `names` found (PATH, then /usr/sbin and /sbin).

    Missing: the test skips with the reason, or fails under FASTROUTE_REQUIRE_DOCKER=1 (CI).
    """
    import shutil

    import pytest

    for name in names:
        found = shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None
        )
        if found is not None:
            return found
    reason = f"{names[0]} is not installed ({install})"
    if docker_required():
        pytest.fail(f"FASTROUTE_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(reason)


_engine_used = False


def engine_used() -> bool:
    """Whether a test of this run talked to an engine (tests/leak_check.py looks for leftovers then)."""
    return _engine_used


def connect() -> Any:
    """A docker SDK client that has answered a ping; raises why not otherwise."""
    import docker  # the router library never imports docker; only the tests and proxy/

    from proxy.discovery._client import DEFAULT_ENGINE, _check_reachable

    global _engine_used
    # Nobody there: say so before docker-py's version probe, which would
    # leave its socket to the garbage collector (a ResourceWarning, an error here).
    _check_reachable(os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE)
    client = docker.from_env(timeout=60)
    try:
        client.ping()
        expected = os.environ.get("FASTROUTE_TEST_ENGINE")  # the Podman re-run says which engine it means
        if expected == "podman" and not is_podman(client):
            raise RuntimeError(f"FASTROUTE_TEST_ENGINE=podman, but {os.environ.get('DOCKER_HOST')} is not Podman")
    except BaseException:
        client.close()
        raise
    _engine_used = True
    return client


def is_podman(client: Any) -> bool:
    """Whether `client` talks to Podman's Docker-compatible API (tests/proxy/discovery/test_podman.py)."""
    components = client.version().get("Components") or [{}]
    return "podman" in str(components[0].get("Name", "")).lower()


# Podman asks the kernel for its own default limits (nofile 1048576), above
# this machine's hard limits, and runc then fails the start; Docker's
# containers inherit dockerd's. Under Podman the test containers get these.
PODMAN_ULIMITS = {"nofile": 1024, "nproc": 1024}


def find_static_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            head = path.read_bytes()[:4096]
            if b"ld-linux" in head or b"/lib/ld-" in head:
                continue  # dynamically linked: it would not run FROM scratch
            return path
    raise RuntimeError(
        "no statically linked busybox found (apt-get install busybox-static); "
        f"looked at {', '.join(BUSYBOX_CANDIDATES)}"
    )


def _backend_context() -> tuple[bytes, str]:
    files = {
        "Dockerfile": (BACKEND_DIR / "Dockerfile").read_bytes(),
        "index.cgi": (BACKEND_DIR / "index.cgi").read_bytes(),
        "run.sh": (BACKEND_DIR / "run.sh").read_bytes(),
        "busybox": find_static_busybox().read_bytes(),
    }
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in sorted(files.items()):
            digest.update(name.encode() + b"\0" + data)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), digest.hexdigest()[:16]


def build_backend_image(client: Any) -> str:
    """Build (or reuse) the backend image; returns its tag."""
    import docker.errors

    context, digest = _backend_context()
    tag = f"fastroute-test-backend:{digest}"
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    client.images.build(
        fileobj=io.BytesIO(context), custom_context=True, tag=tag, rm=True, pull=False
    )
    return tag


@dataclass(frozen=True)
class Backend:
    """A running test backend container."""

    id: str
    name: str
    ip: str
    port: int = BACKEND_PORT

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)


class DockerLab:
    """Starts containers and networks for one test and removes them all."""

    def __init__(self, client: Any, image: str, network: str) -> None:
        self.client = client
        self.image = image
        self.network = network
        self.podman = is_podman(client)
        self._checks: list[tuple[threading.Event, threading.Thread]] = []
        self._containers: list[Any] = []
        self._networks: list[Any] = []
        self._tags: list[str] = []
        self._subnets: dict[str, str] = {}

    def name(self, what: str) -> str:
        return f"{NAME_PREFIX}-{what}-{uuid.uuid4().hex[:6]}"

    def labels(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {RUN_LABEL: RUN_ID, **(extra or {})}

    def start_backend(
        self,
        *,
        labels: dict[str, str] | None = None,
        network: str | None = None,
        image: str | None = None,
        wait: bool = True,
        **run_options: Any,
    ) -> Backend:
        """Start one backend container; wait until its port 8000 answers unless told not to."""
        name = run_options.pop("name", None) or self.name("backend")
        network = network or self.network
        if self.podman:
            import docker.types

            run_options.setdefault("ulimits", [docker.types.Ulimit(name=n, soft=v, hard=v)
                                               for n, v in PODMAN_ULIMITS.items()])
        container = self.client.containers.run(
            image or self.image,
            name=name,
            hostname=name[:63],
            detach=True,
            labels=self.labels(labels),
            network=network,
            **run_options,
        )
        self._containers.append(container)
        container.reload()
        settings = container.attrs["NetworkSettings"]["Networks"].get(network) or {}
        backend = Backend(id=container.id, name=name, ip=settings.get("IPAddress", ""))
        check = run_options.get("healthcheck")
        if self.podman and check:
            self._drive_health(container.id, check.get("interval") or 1_000_000_000)
        if wait:
            wait_for_port(backend.address)
        return backend

    def tag(self, reference: str) -> str:
        """Tag the backend image as `reference` (removed again by close())."""
        repository, _, tag = reference.rpartition(":") if ":" in reference.split("/")[-1] else (reference, "", "latest")
        self.client.images.get(self.image).tag(repository, tag)
        self._tags.append(f"{repository}:{tag}")
        return reference

    def create_network(self, *, subnet: bool = False) -> str:
        """A bridge network of this test's own; with subnet=True, with a /24
        of its own (10.213-254.x.0), so that containers can be given fixed
        addresses (ip_on gives one)."""
        import random

        import docker.errors
        import docker.types

        if not subnet:
            network = self.client.networks.create(self.name("net"), labels=self.labels())
            self._networks.append(network)
            return str(network.name)
        for _ in range(20):
            net = f"10.{random.randint(213, 254)}.{random.randint(0, 255)}"
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=f"{net}.0/24")])
            try:
                network = self.client.networks.create(self.name("net"), labels=self.labels(), ipam=ipam)
            except docker.errors.APIError as error:
                if "overlap" in str(error).lower():
                    continue
                raise
            self._networks.append(network)
            self._subnets[str(network.name)] = net
            return str(network.name)
        raise RuntimeError("no free /24 found for a test network")

    def ip_on(self, network: str, host: int) -> dict[str, Any]:
        """start_backend options that give a container address .`host` on a create_network(subnet=True) network."""
        import docker.types

        ip = f"{self._subnets[network]}.{host}"
        endpoint = docker.types.EndpointConfig(self.client.api._version, ipv4_address=ip)
        return {"network": network, "networking_config": {network: endpoint}}

    def _drive_health(self, cid: str, interval_ns: int) -> None:
        # Podman runs a HEALTHCHECK from a systemd timer, and none runs here:
        # `podman healthcheck run` every interval stands in for it, until the
        # container is removed.
        import subprocess

        done = threading.Event()

        def drive() -> None:
            while not done.wait(interval_ns / 1e9):
                subprocess.run(["podman", "healthcheck", "run", cid], capture_output=True, timeout=60)

        thread = threading.Thread(target=drive, name=f"podman healthcheck {cid[:12]}", daemon=True)
        thread.start()
        self._checks.append((done, thread))

    def close(self) -> None:
        for done, thread in self._checks:
            done.set()
            thread.join(timeout=70)
        errors = []
        for container in reversed(self._containers):
            try:
                container.remove(force=True)
            except Exception as error:  # noqa: BLE001 - collect, report after cleanup
                if "no such container" not in str(error).lower() and getattr(error, "status_code", None) != 404:
                    errors.append(error)
        for network in reversed(self._networks):
            try:
                network.remove()
            except Exception as error:  # noqa: BLE001
                errors.append(error)
        for tag in self._tags:
            try:
                self.client.images.remove(tag, noprune=True)
            except Exception as error:  # noqa: BLE001
                errors.append(error)
        if errors:
            raise RuntimeError(f"could not clean up: {errors}")


def remove_run_leftovers(client: Any) -> list[str]:
    """Remove every service, container, network and volume of this run; returns what was there."""
    selector = {"label": f"{RUN_LABEL}={RUN_ID}"}
    found: list[str] = []
    try:
        services = client.services.list(filters=selector)
    except Exception:  # noqa: BLE001 - not a Swarm manager: there are none
        services = []
    for service in services:
        found.append(f"Docker service {service.name}")
        service.remove()
    for container in client.containers.list(all=True, filters=selector):
        found.append(f"Docker container {container.name}")
        container.remove(force=True)
    for network in client.networks.list(filters=selector):
        found.append(f"Docker network {network.name}")
        network.remove()
    for volume in client.volumes.list(filters=selector):
        found.append(f"Docker volume {volume.name}")
        volume.remove(force=True)
    return found


@contextmanager
def lab(client: Any, image: str, network: str) -> Iterator[DockerLab]:
    the_lab = DockerLab(client, image, network)
    try:
        yield the_lab
    finally:
        the_lab.close()


def wait_for_port(address: tuple[str, int], limit: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + limit
    while True:
        try:
            with socket.create_connection(address, timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def http_get(address: tuple[str, int], path: str = "/") -> tuple[int, bytes]:
    """A minimal blocking HTTP/1.0 GET: (status, body). For smoke checks."""
    import socket

    with socket.create_connection(address, timeout=5.0) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


class EngineFront:
    """A TCP front for the engine's Unix socket, in threads, that a test can
    start late (nothing listens until start()) or make hang (it accepts and
    never answers), as an engine that is down or frozen would."""

    def __init__(self, *, hang: bool = False, socket_path: str | None = None) -> None:
        import socket

        self.hang = hang
        self.socket_path = socket_path or engine_socket()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._listener: Any = None
        self._open: list[Any] = []

    def start(self) -> None:
        import socket
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._open.append(client)
            if self.hang:
                continue  # accepted, never answered
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(self.socket_path)
            self._open.append(engine)
            for source, sink in ((client, engine), (engine, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        import socket

        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        import socket

        if self._listener is not None:
            # shutdown() wakes the accept() in its thread: a listener closed
            # under a blocked accept() stays bound, and start() again fails.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        for sock in self._open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._open.clear()
