# `fastroute serve` with HTTPS, as a real process: the start-up line, a
# request over TLS, SIGHUP, --workers, and start-up errors as one line.

from __future__ import annotations

import signal
import socket
import ssl
import time
from pathlib import Path

import pytest

from ...helpers import LOOPBACK, unused_port
from ..app.test_serve_cli import Gateway, backends, run_cli  # noqa: F401 - backends is a fixture
from .tls_support import Pki

API = "api.example.test"


def https_get(port: int, context: ssl.SSLContext, path: str = "/") -> tuple[int, bytes, list[str]]:
    with socket.create_connection((LOOPBACK, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=API) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {API}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            cert = sock.getpeercert()
    head, _, body = data.partition(b"\r\n\r\n")
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"] if cert else []
    return int(head.split()[1]), body, names


def wait_for(condition, what: str, seconds: float = 15) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        time.sleep(0.05)


def test_https_with_a_sighup_reload(tmp_path: Path, backends: list[int]) -> None:  # noqa: F811
    pki = Pki(tmp_path)
    api = pki.issue(API)
    port = unused_port()
    gateway = Gateway("--route", f"/={LOOPBACK}:{backends[0]}", "--listen-tls", f"{LOOPBACK}:{port}",
                      "--tls-cert", str(api.pair.cert), "--tls-key", str(api.pair.key))
    try:
        status, body, names = https_get(port, pki.client_context(), "/x")
        assert (status, body, names) == (200, b"one /x", [API])
        pki.issue(API, "www.example.test", into=api.pair)
        wait_for(lambda: https_get(port, pki.client_context())[2] == [API, "www.example.test"], "the new certificate")
        # Nothing changes now: reloaded all the same, on request. (Signals are taken
        # in order: the reload is logged before the SIGTERM of stop().)
        gateway.proc.send_signal(signal.SIGHUP)
    finally:
        code, err = gateway.stop()
    assert code == 0
    assert f"HTTPS on {LOOPBACK}:{port} with " in err
    assert "io: native)" in err  # HTTPS is the engine's too
    assert "certificate files changed: TLS certificates reloaded (api.example.test, www.example.test)" in err
    assert "SIGHUP: TLS certificates reloaded (api.example.test, www.example.test)" in err


def test_workers_share_the_https_port(tmp_path: Path, backends: list[int]) -> None:  # noqa: F811
    pki = Pki(tmp_path)
    api = pki.issue(API)
    port = unused_port()
    gateway = Gateway("--workers", "2", "--route", f"/={LOOPBACK}:{backends[0]}",
                      "--listen-tls", f"{LOOPBACK}:{port}", "--tls-cert", str(api.pair.cert),
                      "--tls-key", str(api.pair.key))
    try:
        wait_for(lambda: _answers(port, pki), "HTTPS from the workers")
        assert all(https_get(port, pki.client_context())[0] == 200 for _ in range(20))
    finally:
        code, _ = gateway.stop()
    assert code == 0


def _answers(port: int, pki: Pki) -> bool:
    try:
        return https_get(port, pki.client_context())[0] == 200
    except OSError:
        return False


@pytest.mark.parametrize("case", ["wrong_key", "missing_key", "not_pem", "no_certificate", "overlap"])
def test_tls_start_up_errors_are_one_line(tmp_path: Path, case: str) -> None:
    pki = Pki(tmp_path)
    api, other = pki.issue(API), pki.issue("other.test")
    port = unused_port()
    pair = ["--tls-cert", str(api.pair.cert), "--tls-key", str(api.pair.key)]
    args, message = {
        "wrong_key": (["--tls-cert", str(api.pair.cert), "--tls-key", str(other.pair.key)],
                      "the key does not belong to the certificate"),
        "missing_key": (["--tls-cert", str(api.pair.cert), "--tls-key", str(tmp_path / "nope.pem")],
                        f"{tmp_path / 'nope.pem'}: no such file"),
        "not_pem": (["--tls-cert", str(api.pair.cert), "--tls-key", str(api.pair.cert)], "not a PEM certificate and key"),
        "no_certificate": ([], "--listen-tls needs a certificate"),
        "overlap": ([*pair, "--listen", f"0.0.0.0:{port}"], f"--listen-tls {LOOPBACK}:{port} overlaps --listen"),
    }[case]
    result = run_cli("serve", "--no-docker", "--listen-tls", f"{LOOPBACK}:{port}", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("fastroute: error: ") and message in lines[0], lines[0]


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["--acme-storage", "/tmp/x"], "--acme-storage needs --acme-email", id="storage_alone"),
    pytest.param(["--acme-email", "nobody"], "--acme-email 'nobody' is not an email address", id="not_an_email"),
    pytest.param(["--acme-email", "ops@example.test"], "--acme-email needs --listen-tls HOST:PORT", id="no_https"),
])
def test_acme_flag_errors_are_one_line(args: list[str], message: str) -> None:
    result = run_cli("serve", "--no-docker", *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
