# `fastroute serve` as a real subprocess: start-up errors, SIGHUP reload,
# SIGTERM drain with a request in flight, and constant memory on a 1 GiB body.

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from proxy._config import parse_address

from ...helpers import LOOPBACK, unused_port

GIB = 1024**3
SLOW_ARRIVED: dict[int, threading.Event] = {}  # backend port -> set when a GET /slow reached it


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.startswith("/slow"):
            SLOW_ARRIVED[self.server.server_address[1]].set()
            time.sleep(1.0)
        if self.path.startswith("/big"):
            size = int(self.path.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = b"z" * (1 << 20)
            left = size
            while left:
                n = min(left, len(block))
                self.wfile.write(block[:n])
                left -= n
            return
        body = f"{self.server.name} {self.path}".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        left, total = length, 0
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
            total += len(chunk)
        body = str(total).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def backends() -> Iterator[list[int]]:
    servers = []
    for name in ("one", "two"):
        server = ThreadingHTTPServer((LOOPBACK, 0), _Handler)
        server.daemon_threads = True
        server.name = name  # type: ignore[attr-defined]
        SLOW_ARRIVED[server.server_address[1]] = threading.Event()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield [s.server_address[1] for s in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


class Gateway:
    """`fastroute serve --no-docker` on a port of its own (`command`: how to run fastroute)."""

    def __init__(self, *args: str, command: Sequence[str] = (sys.executable, "-m", "proxy"),
                 cwd: Path | None = None) -> None:
        self.port = unused_port()
        self.proc = subprocess.Popen(
            [*command, "serve", "--no-docker", "--listen", f"{LOOPBACK}:{self.port}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        )
        deadline = time.monotonic() + 60  # only a hang reaches it
        while True:
            try:
                socket.create_connection((LOOPBACK, self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"gateway did not start: {self.proc.communicate()}") from None
                time.sleep(0.05)

    def get(self, path: str) -> tuple[int, bytes]:
        with socket.create_connection((LOOPBACK, self.port), timeout=10) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=30)


def test_serves_routes_given_as_flags(backends: list[int]) -> None:
    gateway = Gateway("--route", f"/one={LOOPBACK}:{backends[0]}", "--route", f"/two={LOOPBACK}:{backends[1]}")
    try:
        assert gateway.get("/one/x") == (200, b"one /one/x")
        assert gateway.get("/two") == (200, b"two /two")
        assert gateway.get("/three")[0] == 404
    finally:
        code, err = gateway.stop()
    assert code == 0
    assert "GET /one/x 200" in err  # the access log


@pytest.mark.parametrize("parser", ["fast", "h11"])
def test_either_parser_serves(backends: list[int], parser: str) -> None:
    gateway = Gateway("--parser", parser, "--route", f"/one={LOOPBACK}:{backends[0]}")
    try:
        assert gateway.get("/one/x") == (200, b"one /one/x")
        assert gateway.get("/one/%2e%2e/x")[0] == 400  # the head checks run whatever the parser
    finally:
        code, err = gateway.stop()
    assert code == 0
    # The engine by default; it needs the fast parser, so h11 is served by the trio path.
    assert f"(parser: {parser}, io: {'native' if parser == 'fast' else 'trio'})" in err


@pytest.mark.parametrize(("flags", "says"), [
    pytest.param(("--io", "native"), "(parser: fast, io: native)", id="native"),
    pytest.param(("--io", "trio"), "(parser: fast, io: trio)", id="trio"),
    pytest.param(("--io", "native", "--parser", "h11"), "(parser: h11, io: trio)", id="native_needs_the_fast_parser"),
])
def test_the_native_engine_serves_when_asked(backends: list[int], flags: tuple[str, ...], says: str) -> None:
    gateway = Gateway(*flags, "--route", f"/one={LOOPBACK}:{backends[0]}")
    try:
        assert gateway.get("/one/x") == (200, b"one /one/x")
        assert gateway.get("/one/%2e%2e/x")[0] == 400
    finally:
        code, err = gateway.stop()
    assert code == 0
    assert says in err


def test_an_unknown_parser_is_refused() -> None:
    result = run_cli("serve", "--no-docker", "--parser", "llhttp")
    assert result.returncode == 2
    assert "invalid choice: 'llhttp'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--route", "nope"], "expected [HOST]PREFIX=HOST:PORT", id="malformed_route"),
        pytest.param(["--routes-file", "/nonexistent.toml"], "cannot read routes file", id="missing_file"),
        pytest.param(["--listen", "256.0.0.1:1"], "cannot listen on", id="bad_listen"),
        pytest.param(["--drain-timeout", "-1"], "positive number of seconds", id="bad_timeout"),
        pytest.param(["--max-idle-upstream", "-1"], "must be a whole number", id="bad_idle_upstream"),
    ],
)
def test_start_up_errors_are_one_line_and_non_zero(args: list[str], message: str) -> None:
    result = run_cli("serve", "--no-docker", "--listen", f"{LOOPBACK}:{unused_port()}", *args)
    if args[0] == "--listen":
        result = run_cli("serve", "--no-docker", *args)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert message in lines[0]


def test_invalid_routes_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text("[[routes]]\nprefix = 'x'\nbackends = ['a:1']\n")

    result = run_cli("serve", "--no-docker", "--routes-file", str(path))

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"fastroute: error: routes file {str(path)!r}, route 1: invalid route prefix 'x': does not start with '/'"
    ]


def test_address_in_use() -> None:
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("serve", "--no-docker", "--listen", f"{LOOPBACK}:{port}")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot listen on" in lines[0] and "in use" in lines[0]


def test_sighup_reloads_and_a_bad_file_keeps_the_old_table(tmp_path: Path, backends: list[int]) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(f'[[routes]]\nprefix = "/a"\nbackends = ["{LOOPBACK}:{backends[0]}"]\n')
    gateway = Gateway("--routes-file", str(path))
    try:
        assert gateway.get("/a") == (200, b"one /a")
        assert gateway.get("/b")[0] == 404

        path.write_text(f'[[routes]]\nprefix = "/b"\nbackends = ["{LOOPBACK}:{backends[1]}"]\nstrip_prefix = true\n')
        gateway.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while gateway.get("/b/x")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert gateway.get("/b/x") == (200, b"two /x")
        assert gateway.get("/a")[0] == 404

        path.write_text("[[routes]\nbroken")
        gateway.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert gateway.get("/b/x") == (200, b"two /x")
    finally:
        code, err = gateway.stop()
    assert code == 0
    assert "reload failed, keeping the current routes" in err and "not valid TOML" in err


def test_sigterm_lets_the_request_in_flight_finish(backends: list[int]) -> None:
    gateway = Gateway("--route", f"/={LOOPBACK}:{backends[0]}", "--drain-timeout", "600")
    results: list[tuple[int, bytes]] = []
    worker = threading.Thread(target=lambda: results.append(gateway.get("/slow")))
    worker.start()
    assert SLOW_ARRIVED[backends[0]].wait(60)  # the request is at the backend now (it answers 1 s later)

    gateway.proc.send_signal(signal.SIGTERM)
    worker.join(120)
    code, err = gateway.stop()

    assert results == [(200, b"one /slow")]
    assert code == 0
    assert "SIGTERM: draining" in err


def test_sigterm_with_nothing_in_flight_exits_at_once(backends: list[int]) -> None:
    # A drain timeout no machine's slowness comes near: exiting before it means it did not wait for the idle client.
    gateway = Gateway("--route", f"/={LOOPBACK}:{backends[0]}", "--drain-timeout", "600")
    idle = socket.create_connection((LOOPBACK, gateway.port))  # an idle keep-alive client
    started = time.monotonic()

    code, _ = gateway.stop()

    assert code == 0
    assert time.monotonic() - started < 300
    idle.close()


def test_1_gib_each_way_in_constant_memory(backends: list[int]) -> None:
    gateway = Gateway("--route", f"/={LOOPBACK}:{backends[0]}", "--access-log", "off")
    try:
        gateway.get("/warm-up")
        before = gateway.rss_kib()
        peak = before
        with socket.create_connection((LOOPBACK, gateway.port), timeout=30) as sock:
            sock.sendall(f"GET /big/{GIB} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            received = 0
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)
            received = len(head.partition(b"\r\n\r\n")[2])
            while received < GIB:
                chunk = sock.recv(1 << 20)
                assert chunk, "connection closed early"
                received += len(chunk)
                if received % (64 << 20) < len(chunk):
                    peak = max(peak, gateway.rss_kib())
            assert received == GIB

            sock.sendall(f"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {GIB}\r\n\r\n".encode())
            block = b"u" * (1 << 20)
            for i in range(GIB // len(block)):
                sock.sendall(block)
                if i % 64 == 0:
                    peak = max(peak, gateway.rss_kib())
            answer = b""
            while not answer.endswith(str(GIB).encode()):
                answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 ")
    finally:
        gateway.stop()
    # Flat: the gateway grew by less than 64 MiB while moving 2 GiB.
    print(f"RSS before {before} KiB, peak {peak} KiB")
    assert peak - before < 64 * 1024, (before, peak)


def test_running_out_of_file_descriptors_is_survived(backends: list[int]) -> None:
    import resource

    limit = 64

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    port = unused_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--no-docker", "--access-log", "off", "--listen",
         f"{LOOPBACK}:{port}", "--route", f"/={LOOPBACK}:{backends[0]}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=low_fd_limit,
    )
    gateway = Gateway.__new__(Gateway)
    gateway.port, gateway.proc = port, proc
    flood: list[socket.socket] = []
    try:
        from ...docker_support import wait_for_port

        wait_for_port((LOOPBACK, port))
        busy = socket.create_connection((LOOPBACK, port))  # a request in flight through the flood
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in range(3 * limit):  # far more connections than descriptors
            flood.append(socket.create_connection((LOOPBACK, port), timeout=5))
        time.sleep(0.5)
        busy.settimeout(10)
        assert busy.recv(65536).startswith(b"HTTP/1.1 200 ")  # the request in flight finished
        busy.close()
        assert proc.poll() is None  # the accept loop survived
        for sock in flood:
            sock.close()
        flood.clear()
        deadline = time.monotonic() + 15
        while True:  # recovery once the load is gone
            try:
                assert gateway.get("/after")[0] == 200
                break
            except (OSError, IndexError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        for sock in flood:
            sock.close()
        code, err = gateway.stop()
    assert code == 0
    # 64 descriptors serve (64 - 32) / 2 client connections at once, each with
    # its backend connection (the rest wait in the backlog): not 10,000.
    assert "--max-connections 10000 is more than 64 file descriptors allow" in err and "at most 16" in err


@pytest.mark.parametrize("admin_host", ["127.0.0.1", "0.0.0.0"])
def test_the_admin_listener_refuses_the_gateways_own_address(admin_host: str) -> None:
    port = unused_port()
    result = run_cli("serve", "--no-docker", "--listen", f"{LOOPBACK}:{port}", "--admin", f"{admin_host}:{port}")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "overlaps the gateway's --listen" in lines[0], lines


def test_admin_address_in_use_is_one_line() -> None:
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("serve", "--no-docker", "--listen", f"{LOOPBACK}:{unused_port()}",
                         "--admin", f"{LOOPBACK}:{port}")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot listen on --admin" in lines[0], lines


def test_serve_with_admin_answers_healthz_and_metrics(backends: list[int]) -> None:
    admin_port = unused_port()
    gateway = Gateway("--route", f"/one={LOOPBACK}:{backends[0]}", "--admin", f"{LOOPBACK}:{admin_port}")
    try:
        assert gateway.get("/one/")[0] == 200
        admin = Gateway.__new__(Gateway)
        admin.port = admin_port
        status, body = admin.get("/healthz")
        assert status == 200 and b'"status": "serving"' in body
        status, body = admin.get("/metrics")
        assert status == 200
        assert b'fastroute_requests_total{route="/one",status_class="2xx"} 1.0' in body
        assert gateway.get("/metrics")[0] == 404  # never on the public listener
    finally:
        assert gateway.stop()[0] == 0


def test_the_admin_address_defaults_to_fastroute_admin_and_the_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    # The container image sets FASTROUTE_ADMIN for its HEALTHCHECK, and `docker run IMAGE serve ...`
    # replaces the command: the default keeps the check working.
    from proxy.app._cli import build_parser, config_from_args

    monkeypatch.setenv("FASTROUTE_ADMIN", "127.0.0.1:9099")
    assert config_from_args(build_parser().parse_args(["serve"])).admin == parse_address("127.0.0.1:9099")
    flagged = build_parser().parse_args(["serve", "--admin", "127.0.0.1:9098"])
    assert config_from_args(flagged).admin == parse_address("127.0.0.1:9098")
    monkeypatch.delenv("FASTROUTE_ADMIN")
    assert config_from_args(build_parser().parse_args(["serve"])).admin is None


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_workers_share_the_port_and_a_dead_one_is_replaced(backends: list[int]) -> None:
    gateway = Gateway("--workers", "2", "--route", f"/one={LOOPBACK}:{backends[0]}")
    try:
        deadline = time.monotonic() + 15
        while len(_children(gateway.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = _children(gateway.proc.pid)
        assert len(workers) == 2
        for pid in workers:  # each worker holds a listening socket of its own on the port
            assert any(str(gateway.port) in line for line in _listening_ports(pid)), pid
        assert all(gateway.get("/one/")[0] == 200 for _ in range(40))

        os.kill(workers[0], signal.SIGKILL)
        # Connections the kernel had queued on the dead worker's socket are
        # lost with it (plain SO_REUSEPORT); once it is gone, the other
        # worker takes every new one while the supervisor replaces it.
        while workers[0] in _children(gateway.proc.pid) and _listening_ports(workers[0]):
            time.sleep(0.01)
        answered = [gateway.get("/one/")[0] for _ in range(40)]
        assert answered == [200] * 40
        deadline = time.monotonic() + 15
        while len(_children(gateway.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_children(gateway.proc.pid)) == 2 and workers[0] not in _children(gateway.proc.pid)
    finally:
        code, err = gateway.stop()
    assert code == 0, err
    assert "worker 0" in err and "starting it again" in err


def _listening_ports(pid: int) -> list[str]:
    inodes = set()
    fds = Path(f"/proc/{pid}/fd")
    for fd in (fds.iterdir() if fds.exists() else []):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    lines = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes and fields[3] == "0A":  # LISTEN
                lines.append(str(int(fields[1].rsplit(":", 1)[1], 16)))
    return lines


def _admin_get(port: int, path: str) -> tuple[int, bytes]:
    admin = Gateway.__new__(Gateway)
    admin.port = port
    return admin.get(path)


def test_workers_with_admin_count_every_request_once(backends: list[int]) -> None:
    admin_port = unused_port()
    gateway = Gateway("--workers", "2", "--route", f"/one={LOOPBACK}:{backends[0]}",
                      "--admin", f"{LOOPBACK}:{admin_port}")
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                if _admin_get(admin_port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        children = _children(gateway.proc.pid)
        workers = [pid for pid in children if str(gateway.port) in _listening_ports(pid)]
        fronts = [pid for pid in children if str(admin_port) in _listening_ports(pid)]
        assert len(workers) == 2 and len(fronts) == 1 and fronts[0] not in workers
        assert all(gateway.get("/one/")[0] == 200 for _ in range(40))  # a new connection each: both workers

        status, body = _admin_get(admin_port, "/metrics")
        assert status == 200
        assert b'fastroute_requests_total{route="/one",status_class="2xx"} 40.0' in body
        assert b"fastroute_request_duration_seconds_count{route=\"/one\"} 40.0" in body
        status, body = _admin_get(admin_port, "/routes")
        routes = json.loads(body)
        assert status == 200 and routes["workers"] == 2
        assert [(r["prefix"], r["requests"]) for r in routes["routes"]] == [("/one", 40)]
        status, body = _admin_get(admin_port, "/healthz")
        assert status == 200 and json.loads(body)["workers"] == {"serving": 2, "total": 2}
        assert _admin_get(admin_port, "/")[0] == 200
        os.kill(gateway.proc.pid, signal.SIGHUP)  # passed on to the front too, which must not die of it
        time.sleep(0.5)
        assert _admin_get(admin_port, "/healthz")[0] == 200

        os.kill(workers[0], signal.SIGKILL)  # replaced after 1 s, on the same admin socket path
        statuses = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status, body = _admin_get(admin_port, "/healthz")
            statuses.append(status)
            if status == 200 and workers[0] not in _children(gateway.proc.pid):
                break
            time.sleep(0.1)
        assert statuses[-1] == 200 and 503 in statuses, statuses
        assert json.loads(body)["workers"] == {"serving": 2, "total": 2}
    finally:
        code, err = gateway.stop()
    assert code == 0, err
    assert "merging 2 workers" in err
    assert "worker 0" in err and "starting it again" in err and "admin front" not in err, err


def test_workers_with_the_admin_address_in_use_is_one_line() -> None:
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("serve", "--no-docker", "--workers", "2", "--listen", f"{LOOPBACK}:{unused_port()}",
                         "--admin", f"{LOOPBACK}:{port}")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot listen on --admin" in lines[0], lines


def test_workers_with_the_address_in_use_is_one_line() -> None:
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("serve", "--no-docker", "--workers", "2", "--listen", f"{LOOPBACK}:{port}")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot listen on" in lines[0], lines


@pytest.mark.parametrize("entry", ["run", "run_front", "supervise"])
def test_a_late_sigterm_cannot_kill_a_process_that_is_exiting(entry: str) -> None:
    # Regression (seen in CI: a gateway that had drained and returned 0 was
    # killed by the test's second SIGTERM, exit -15): CPython puts every
    # signal with a Python handler back to its default while the interpreter
    # shuts down, so a repeated SIGTERM then kills the process. Ignoring it
    # with SIG_IGN (which shutdown leaves alone) closes that window.
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        port = holder.getsockname()[1]
        calls = {
            "run": "a.run(c); ",
            "run_front": f"w.run_front(Address('{LOOPBACK}', {port}), []); ",
            # workers that fail at start (the routes file is gone): the supervisor returns 1
            "supervise": f"w.supervise(Config(listen=(Address('{LOOPBACK}', {unused_port()}),), workers=2, "
                         "routes_file=Path('/nonexistent/routes.toml'))); ",
        }
        code = (
            "import signal, proxy.app._serve as a, proxy.app._workers as w; "
            "from pathlib import Path; from proxy._config import Config, Address; "
            f"c = Config(listen=(Address('{LOOPBACK}', {port}),)); "
            + calls[entry]
            + "print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN, signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["True", "True"], result.stderr


def test_no_http2_for_an_address_not_listened_on_is_one_line() -> None:
    port = unused_port()
    result = run_cli("serve", "--no-docker", "--listen", f"{LOOPBACK}:{port}", "--no-http2", f"{LOOPBACK}:{port + 1}")

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a --listen or --listen-tls address" in lines[0], lines
