# A real ACME CA for the tests: Debian's Pebble on loopback, with its mock
# DNS (pebble-challtestsrv) answering 127.0.0.1 for every name, so that
# Pebble validates challenges against the gateway under test. Pebble's own
# HTTPS certificate is made with trustme; its issuing root is fetched from
# its management port. Always stopped.
#
# Without pebble on PATH the tests that need it skip with the reason; with
# FASTROUTE_REQUIRE_DOCKER=1 (CI, which installs it) they fail instead.

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from .docker_support import require_tool
from .helpers import LOOPBACK, stop_process, unused_port

__all__ = ["Pebble", "run_pebble"]

START_LIMIT = 15.0


@dataclass
class Pebble:
    directory: str  # the ACME directory URL
    ca_bundle: Path  # trusts Pebble's HTTPS endpoint
    management: int  # Pebble's management port
    dns_management: int  # pebble-challtestsrv's (POST /add-a to point a name elsewhere)
    _context: ssl.SSLContext

    def root_pem(self) -> bytes:
        """The root that signs what Pebble issues (random per start)."""
        url = f"https://{LOOPBACK}:{self.management}/roots/0"
        with urllib.request.urlopen(url, context=self._context, timeout=10) as answer:
            return bytes(answer.read())

    def intermediate_pem(self) -> bytes:
        url = f"https://{LOOPBACK}:{self.management}/intermediates/0"
        with urllib.request.urlopen(url, context=self._context, timeout=10) as answer:
            return bytes(answer.read())


def _wait(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_LIMIT
    while True:
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{what} did not start on port {port} (its log is beside its config)") from None
            time.sleep(0.05)


@contextmanager
def run_pebble(directory: Path, *, http_port: int, tls_port: int = 0, validity: int = 3600) -> Iterator[Pebble]:
    """Pebble validating HTTP-01 on `http_port` (and TLS-ALPN-01 on `tls_port`) of 127.0.0.1.

    validity: seconds each issued certificate is valid (Pebble's certificateValidityPeriod).
    """
    pebble = require_tool(("pebble",), "apt-get install pebble")
    challtestsrv = require_tool(("pebble-challtestsrv",), "apt-get install pebble")
    ca = trustme.CA()
    server = ca.issue_cert(LOOPBACK, "localhost")
    cert, key, bundle = directory / "pebble.crt", directory / "pebble.key", directory / "pebble-ca.pem"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(bundle))
    acme, management, dns, dns_management = (unused_port() for _ in range(4))
    config = directory / "pebble.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"{LOOPBACK}:{acme}", "managementListenAddress": f"{LOOPBACK}:{management}",
        "certificate": str(cert), "privateKey": str(key), "httpPort": http_port, "tlsPort": tls_port or 5001,
        "ocspResponderURL": "", "externalAccountBindingRequired": False,
        "certificateValidityPeriod": validity,
    }}))
    env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0", "PATH": "/usr/bin:/bin"}
    procs: list[subprocess.Popen[bytes]] = []
    logs = [(directory / "challtestsrv.log").open("wb"), (directory / "pebble.log").open("wb")]
    try:
        dns_proc = subprocess.Popen(
            [challtestsrv, "-defaultIPv4", LOOPBACK, "-defaultIPv6", "", "-dns01", f"{LOOPBACK}:{dns}",
             "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", f"{LOOPBACK}:{dns_management}"],
            stdout=logs[0], stderr=subprocess.STDOUT)
        procs.append(dns_proc)
        _wait(dns_management, dns_proc, "pebble-challtestsrv")
        proc = subprocess.Popen([pebble, "-config", str(config), "-dnsserver", f"{LOOPBACK}:{dns}"],
                                stdout=logs[1], stderr=subprocess.STDOUT, env=env)
        procs.append(proc)
        _wait(acme, proc, "pebble")
        context = ssl.create_default_context(cafile=str(bundle))
        yield Pebble(f"https://{LOOPBACK}:{acme}/dir", bundle, management, dns_management, context)
    finally:
        for proc in reversed(procs):
            stop_process(proc)
        for log in logs:
            log.close()
