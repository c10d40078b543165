#!/usr/bin/env python3
"""HTTP/2 to clients through HAProxy and through fastroute, on this machine:
issue 40's targets and where fastroute stands against them.

HAProxy 2.6, one thread, defaults, terminating TLS with one ECDSA P-256
certificate (ALPN h2,http/1.1) and, on a second port, h2c with prior
knowledge (`proto h2`); fastroute, one worker, defaults (--access-log off,
as HAProxy logs nothing by default), with the same certificate on a
--listen-tls port and prior knowledge on its plain one; both in front of
one nginx backend answering 19 bytes over HTTP/1.1. h2load (Debian's
nghttp2-client) measures, in alternating rounds (HAProxy, then fastroute):

- `-c32 -m10` small GETs over TLS and over h2c: requests/s and the proxy's
  CPU per request (its user+system time over the round divided by the
  requests h2load completed);
- `-c1 -m1` over TLS: the mean time per request;
- with --large, one 100 MiB response (a file nginx serves) over one stream,
  over TLS and over h2c: MiB/s and the proxy's CPU per MiB.

    .venv/bin/python bench/h2_haproxy.py [--rounds 3] [--requests 200000] [--reference] [--large]

(--reference: a third row, fastroute with --parser h11, whose HTTP/2 runs on
h2's session rather than libnghttp2's.)

Bounded: a fixed count of requests per round; every process started is
stopped.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkouts import cpu_seconds  # noqa: E402
from compare import BODY, free_port, nginx_conf, start, start_haproxy, stop_all  # noqa: E402
from tls_speed import certificate  # noqa: E402


def h2load(url: str, clients: int, streams: int, requests: int) -> tuple[float, float, int]:
    """(requests/s, mean ms per request, requests that succeeded) of one h2load run."""
    out = subprocess.run(["h2load", f"-c{clients}", f"-m{streams}", f"-n{requests}", url],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out).group(1))  # type: ignore[union-attr]
    match = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    assert match is not None, out
    mean = float(match.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[match.group(2)]
    if "h2" not in re.search(r"Application protocol: (\S+)", out).group(1):  # type: ignore[union-attr]
        sys.exit(f"h2_haproxy: {url} did not speak HTTP/2:\n{out}")
    return rps, mean, done


LARGE = 100 * 1024 * 1024  # bytes of the --large response


def h2load_seconds(url: str) -> float:
    """Seconds one h2load run of one request to `url` took (it must succeed whole, over HTTP/2)."""
    out = subprocess.run(["h2load", "-c1", "-m1", "-n1", url], capture_output=True, text=True, timeout=300,
                         check=True).stdout
    if " 1 succeeded" not in out or "h2" not in re.search(r"Application protocol: (\S+)", out).group(1):  # type: ignore[union-attr]
        sys.exit(f"h2_haproxy: {url} did not answer whole over HTTP/2:\n{out}")
    match = re.search(r"finished in ([\d.]+)(ms|s)", out)
    assert match is not None, out
    return float(match.group(1)) * (1e-3 if match.group(2) == "ms" else 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200_000, help="requests per -c32 -m10 round")
    parser.add_argument("--reference", action="store_true",
                        help="a third row: fastroute with --parser h11 (HTTP/2 on h2's session, not libnghttp2's)")
    parser.add_argument("--large", action="store_true", help="also one 100 MiB response over one stream")
    args = parser.parse_args()
    for tool in ("haproxy", "nginx", "h2load"):
        if shutil.which(tool) is None:
            sys.exit(f"h2_haproxy: {tool} is not installed (apt-get install haproxy nginx-light nghttp2-client)")
    work = Path(tempfile.mkdtemp(prefix="fastroute-h2-"))
    work.chmod(0o755)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        backend_port, tls_port, h2c_port = free_port(), free_port(), free_port()
        (work / "large").write_bytes(bytes(range(256)) * (LARGE // 256))
        conf = nginx_conf(work, f'server {{ listen 127.0.0.1:{backend_port}; location / {{ return 200 "{BODY.strip()}\\n"; }} '
                                f'location = /large {{ alias {work}/large; }} }}')
        (work / "backend.conf").write_text(conf.replace("%s", "backend"))
        procs.append(start(["nginx", "-c", str(work / "backend.conf"), "-p", str(work)], backend_port))
        cert, key, bundle = certificate(work)
        haproxy = start_haproxy(work, tls_port, backend_port, tls_bundle=bundle, alpn="h2,http/1.1", h2c_port=h2c_port)
        procs.append(haproxy)
        proxies = {"HAProxy": (haproxy, tls_port, h2c_port)}
        for name, extra in (("fastroute", []), ("fr --h11", ["--parser", "h11"]))[:2 if args.reference else 1]:
            ours_tls, ours_plain = free_port(), free_port()
            procs.append(start([sys.executable, "-m", "proxy", "serve", "--no-docker", "--access-log", "off",
                                "--listen", f"127.0.0.1:{ours_plain}", "--listen-tls", f"127.0.0.1:{ours_tls}",
                                "--tls-cert", str(cert), "--tls-key", str(key),
                                "--route", f"/=127.0.0.1:{backend_port}", *extra], ours_tls))
            proxies[name] = (procs[-1], ours_tls, ours_plain)
        rows: dict[tuple[str, str], list[tuple[float, float]]] = {}
        latency: dict[str, list[float]] = {name: [] for name in proxies}
        large: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.rounds):
            for proxy, (proc, secure, plain) in proxies.items():
                for name, url in (("TLS", f"https://127.0.0.1:{secure}/"), ("h2c", f"http://127.0.0.1:{plain}/")):
                    before = cpu_seconds(proc.pid)
                    rps, _, done = h2load(url, 32, 10, args.requests)
                    rows.setdefault((proxy, name), []).append((rps, (cpu_seconds(proc.pid) - before) / done * 1e6))
                latency[proxy].append(h2load(f"https://127.0.0.1:{secure}/", 1, 1, 5_000)[1])
                if args.large:
                    for name, url in (("TLS", f"https://127.0.0.1:{secure}/large"),
                                      ("h2c", f"http://127.0.0.1:{plain}/large")):
                        before = cpu_seconds(proc.pid)
                        seconds = h2load_seconds(url)
                        mib = LARGE / 2**20
                        large.setdefault((proxy, name), []).append(
                            (mib / seconds, (cpu_seconds(proc.pid) - before) / mib * 1e3))
        print(f"HTTP/2 to clients, HTTP/1.1 nginx backend (19 bytes), HAProxy {_haproxy_version()} one thread and "
              f"fastroute one worker, defaults; h2load, {args.rounds} alternating rounds, medians "
              "(ratios: fastroute over HAProxy):")
        for name in ("TLS", "h2c"):
            for proxy in proxies:
                runs = rows[(proxy, name)]
                print(f"  -c32 -m10 over {name:<4} {proxy:<10} {statistics.median(r for r, _ in runs):9,.0f} req/s   "
                      f"{statistics.median(c for _, c in runs):6.1f} us CPU/request")
            theirs = rows[("HAProxy", name)]
            for proxy in list(proxies)[1:]:
                ours = rows[(proxy, name)]
                print(f"  {proxy:>26} / HAProxy {statistics.median(r for r, _ in ours) / statistics.median(r for r, _ in theirs):6.3f}x"
                      f"        {statistics.median(c for _, c in ours) / statistics.median(c for _, c in theirs):6.2f}x")
        for proxy in proxies:
            print(f"  -c1 -m1 over TLS  {proxy:<10} {statistics.median(latency[proxy]) * 1000:9.0f} us per request (mean)")
        for (proxy, name), runs in large.items():
            print(f"  100 MiB, one stream, {name:<4} {proxy:<10} {statistics.median(r for r, _ in runs):7.0f} MiB/s   "
                  f"{statistics.median(c for _, c in runs):6.2f} ms CPU/MiB")
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _haproxy_version() -> str:
    out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else "?"


if __name__ == "__main__":
    sys.exit(main())
