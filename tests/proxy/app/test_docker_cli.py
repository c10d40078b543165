# The Docker side of the command line: `fastroute routes` and `fastroute
# serve` following the engine, as real subprocesses.

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ...docker_support import RUN_ID, RUN_LABEL, DockerLab, wait_for_port
from ...helpers import unused_port
from .test_serve_cli import Gateway as CliGateway

WAIT = 15.0  # seconds: the longest any test waits for the engine to act


def test_routes_command_prints_the_table_and_why_containers_are_skipped(docker_lab: DockerLab) -> None:
    good = docker_lab.start_backend(labels={"fastroute.route": "/cli/good"})
    bad = docker_lab.start_backend(labels={"fastroute.route": "/cli/bad", "fastroute.port": "eighty"})
    odd = docker_lab.start_backend(labels={"fastroute.route": "/cli/odd", "fastroute.strip_prefix": "maybe"})
    args = [sys.executable, "-m", "proxy", "routes", "--network", docker_lab.network,
            "--docker-label", f"{RUN_LABEL}={RUN_ID}"]

    text = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    data = json.loads(subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=60,
                                     check=True).stdout)

    version = docker_lab.client.version()["Components"][0]["Version"]
    engine = "Podman" if docker_lab.podman else "Docker"
    assert text.startswith(f"engine: {engine} {version} at ")  # which engine answered
    assert data["engine"] == f"{engine} {version}"
    assert f"/cli/good  [docker:label]\n    {good.ip}:8000" in text
    assert f"skipped: {bad.name}" in text and "fastroute.port='eighty'" in text
    route = next(r for r in data["routes"] if r["prefix"] == "/cli/good")
    assert route["containers"][0]["address"] == f"{good.ip}:8000"
    assert any(s["skipped"] == bad.name for s in data["skipped"])
    # A bad optional label: routed without the feature, and said so.
    assert f"/cli/odd  [docker:label]\n    {odd.ip}:8000" in text
    assert f"warning: container {odd.name} ({odd.id[:12]}): label fastroute.strip_prefix='maybe' is not true or " \
           "false; routed without it" in text


def test_routes_command_without_an_engine_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "proxy", "routes", "--docker", "tcp://127.0.0.1:9"],
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastroute: error: cannot read the Docker engine")


def test_routes_command_against_an_engine_that_answers_with_an_error_quotes_it(tmp_path: Path) -> None:
    # What Podman 4.3 answered to the status filter fastroute used to send.
    sock = tmp_path / "engine.sock"
    with engine_that_refuses_listing(sock):
        result = subprocess.run([sys.executable, "-m", "proxy", "routes", "--docker", f"unix://{sock}"],
                                capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert result.stderr == ("fastroute: error: the Docker engine answered with an error: GET /containers/json: "
                             "500 unknown container state: restarting: invalid argument\n")


@contextmanager
def engine_that_refuses_listing(sock: Path) -> Iterator[None]:
    """An engine on `sock` that answers /version and /_ping, and 500 to a listing (threads; closed after)."""
    import socketserver
    import threading
    from http.server import BaseHTTPRequestHandler

    class Engine(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?", 1)[0]
            if path.endswith("/version"):
                self._json(200, {"ApiVersion": "1.41", "Version": "4.3.1",
                                 "Components": [{"Name": "Podman Engine", "Version": "4.3.1"}]})
            elif path.endswith("/_ping"):
                self._json(200, "OK")
            else:
                self._json(500, {"cause": "invalid argument",
                                 "message": "unknown container state: restarting: invalid argument"})

        def _json(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

        def get_request(self):  # type: ignore[no-untyped-def]
            request, _ = super().get_request()
            return request, ("engine", 0)  # http.server wants a client address

    server = Server(str(sock), Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_serve_follows_docker_from_the_command_line(docker_lab: DockerLab) -> None:
    gateway = CliGateway.__new__(CliGateway)
    port = unused_port()
    gateway.port = port
    gateway.proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--listen", f"127.0.0.1:{port}", "--network", docker_lab.network,
         "--docker-label", f"{RUN_LABEL}={RUN_ID}", "--hold", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_port(("127.0.0.1", port))
        backend = docker_lab.start_backend(labels={"fastroute.route": "/from-cli"})
        deadline = time.monotonic() + WAIT
        while gateway.get("/from-cli/")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        status, body = gateway.get("/from-cli/")
        assert status == 200 and f"host={backend.name}\n" in body.decode()  # the body arrives chunked
    finally:
        gateway.proc.send_signal(signal.SIGTERM)
        _, err = gateway.proc.communicate(timeout=30)
    assert gateway.proc.returncode == 0, err


def test_routes_command_shows_routes_to_wake(docker_lab: DockerLab) -> None:
    backend = docker_lab.start_backend(labels={"fastroute.wake": "true", "fastroute.route": "/cli/sleepy"})
    docker_lab.client.containers.get(backend.id).stop(timeout=1)
    args = [sys.executable, "-m", "proxy", "routes", "--network", docker_lab.network,
            "--docker-label", f"{RUN_LABEL}={RUN_ID}"]

    text = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    data = json.loads(subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=60,
                                     check=True).stdout)

    assert "/cli/sleepy  [docker:label]  (stopped: a request wakes it)" in text
    assert f"    -                        {backend.name}" in text
    [route] = [r for r in data["routes"] if r["prefix"] == "/cli/sleepy"]
    assert route["wake"] is True and route["containers"][0]["name"] == backend.name
