#!/usr/bin/env python3
"""HTTPS: fastroute and HAProxy terminating TLS the same way (one ECDSA
P-256 certificate, TLS 1.2/1.3, ALPN http/1.1) in front of one nginx
backend on loopback. wrk measures, in alternating rounds:

- keep-alive requests/s over HTTPS (wrk -c32);
- new connections/s, each a full handshake and one request
  (wrk -c32 with "Connection: close": wrk resumes no session);
- and, for scale, plain-HTTP keep-alive requests/s through the same gateway.

    .venv/bin/python bench/tls_speed.py [--rounds 3] [--duration 4]

Needs Debian's wrk, haproxy and nginx, and trustme (a test dependency).
Every run is bounded by --duration; every process started is stopped.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import free_port, gateway_over_nginx, start_haproxy, stop_all, wrk  # noqa: E402


def certificate(work: Path) -> tuple[Path, Path, Path]:
    """An ECDSA P-256 leaf for 127.0.0.1: (cert, key, the two in one file for HAProxy)."""
    leaf = trustme.CA(key_type=trustme.KeyType.ECDSA).issue_cert("127.0.0.1", key_type=trustme.KeyType.ECDSA)
    cert, key, bundle = work / "cert.pem", work / "key.pem", work / "bundle.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    bundle.write_bytes(cert.read_bytes() + key.read_bytes())
    return cert, key, bundle


def measure(port: int, tls: bool, close: bool, duration: int) -> float:
    headers = ["-H", "Connection: close"] if close else []
    return wrk(port, 32, duration, scheme="https" if tls else "http", extra=headers)["rps"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fastroute-bench-tls-"))
    cert, key, bundle = certificate(work)
    tls_port = free_port()
    results: dict[str, list[float]] = {}
    with gateway_over_nginx("--listen-tls", f"127.0.0.1:{tls_port}", "--tls-cert", str(cert),
                            "--tls-key", str(key)) as (plain_port, _gateway):
        backend_port = _backend_port(_gateway)
        haproxy_port = free_port()
        haproxy = start_haproxy(work, haproxy_port, backend_port, tls_bundle=bundle)
        try:
            for _ in range(args.rounds):
                for name, port, tls, close in (
                    ("haproxy https keep-alive", haproxy_port, True, False),
                    ("fastroute https keep-alive", tls_port, True, False),
                    ("haproxy https new connections", haproxy_port, True, True),
                    ("fastroute https new connections", tls_port, True, True),
                    ("fastroute http keep-alive (native)", plain_port, False, False),
                ):
                    results.setdefault(name, []).append(measure(port, tls, close, args.duration))
        finally:
            stop_all([haproxy])
    median = {name: statistics.median(values) for name, values in results.items()}
    print(f"{args.rounds} alternating rounds of {args.duration}s, wrk -t1 -c32, medians (req/s):")
    for name, value in median.items():
        rounds = ", ".join(f"{v:,.0f}" for v in results[name])
        print(f"  {name:40s} {value:10,.0f}   ({rounds})")
    print(f"fastroute/haproxy, https keep-alive: {median['fastroute https keep-alive'] / median['haproxy https keep-alive']:.2f}x; "
          f"new connections (handshakes): "
          f"{median['fastroute https new connections'] / median['haproxy https new connections']:.2f}x")
    return 0


def _backend_port(gateway: subprocess.Popen[bytes]) -> int:
    args = [str(a) for a in gateway.args]  # type: ignore[union-attr]
    return int(args[args.index("--route") + 1].rsplit(":", 1)[1])


if __name__ == "__main__":
    raise SystemExit(main())
