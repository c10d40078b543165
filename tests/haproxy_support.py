# A real HAProxy for the tests: Debian's binary in master-worker mode with a
# master CLI socket, on a loopback port of its own, always stopped.
#
# Without haproxy on PATH the tests that need it skip with the reason; with
# FASTROUTE_REQUIRE_DOCKER=1 (CI, which installs it) they fail instead.

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from .docker_support import require_tool
from .helpers import unused_port

START_LIMIT = 10.0  # seconds for HAProxy to listen


def haproxy_binary() -> str:
    return require_tool(("haproxy",), "apt-get install haproxy")


def cli(socket_path: Path, command: str, timeout: float = 5.0) -> str:
    """One master-CLI command, blocking; its reply. Waits out a reload (the socket is briefly
    gone, and a connection open while the master re-executes is reset: seen in a CI run)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _cli_once(socket_path, command, timeout)
        except (ConnectionRefusedError, ConnectionResetError, FileNotFoundError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _cli_once(socket_path: Path, command: str, timeout: float) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(command.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


class HAProxy:
    """One HAProxy master (-W -S) serving `config` on 127.0.0.1:`port`."""

    def __init__(self, directory: Path, *, wrap: Sequence[str] = (), host: str = "127.0.0.1") -> None:
        """wrap: a command that runs HAProxy (nsenter into a network namespace); host: where it is reached."""
        self.binary = haproxy_binary()
        self.config = directory / "haproxy.cfg"
        self.socket = directory / "master.sock"
        self.port = unused_port()
        self.host = host
        self.wrap = tuple(wrap)
        self.bind = f"{'127.0.0.1' if host == '127.0.0.1' else '0.0.0.0'}:{self.port}"
        self.log = directory / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """As Gateway.addresses, so helpers.fetch and Client work against HAProxy."""
        return [(self.host, self.port)]

    def start(self) -> None:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [*self.wrap, self.binary, "-W", "-db", "-S", str(self.socket), "-f", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_LIMIT
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    pass
                cli(self.socket, "show proc")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"HAProxy did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.02)

    def reloads(self) -> int:
        """How many times the master reloaded (from `show proc`)."""
        found = re.search(r"^\s*\d+\s+master\s+(\d+)", cli(self.socket, "show proc"), re.MULTILINE)
        assert found, "no master line in show proc"
        return int(found.group(1))

    def workers(self) -> int:
        """Worker processes alive: the current one and old ones still finishing connections."""
        text = cli(self.socket, "show proc")
        return len(re.findall(r"^\s*\d+\s+worker\s", text, re.MULTILINE))

    def server_states(self, backend: str) -> dict[str, tuple[str, int]]:
        """server name -> (address, admin state) in the current worker."""
        lines = cli(self.socket, f"@1 show servers state {backend}").splitlines()
        states = {}
        for line in lines[2:]:
            fields = line.split()
            if len(fields) > 6:
                states[fields[3]] = (fields[4], int(fields[6]))
        return states

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # the master stops its workers at once, then itself
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
