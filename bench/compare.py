#!/usr/bin/env python3
"""Whole-system comparison: wrk against fastroute, HAProxy and nginx in front
of one nginx backend, all on loopback, in one run. Prints one table.

    .venv/bin/python bench/compare.py [--duration 5] [--connections 32]

Needs Debian's wrk, haproxy and nginx; with caddy installed, a Caddy row
(one core: GOMAXPROCS=1). Every load run is bounded by
--duration; every process it starts is stopped before it exits.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BODY = "hello from backend\n"  # 19 bytes
# Idle backend connections each proxy may keep (nginx's keepalive, fastroute's
# --max-idle-upstream; HAProxy keeps all): above the most connections a
# sweep uses, so that no proxy reconnects for want of room in its pool.
IDLE_UPSTREAM = 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench: {proc.args[0]} did not start on port {port}") from None
            time.sleep(0.05)


def nginx_conf(workdir: Path, body: str) -> str:
    return f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx-%s.pid;
error_log {workdir}/nginx-%s-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body-%s;
    proxy_temp_path {workdir}/proxy-%s;
    keepalive_requests 1000000;
    {body}
}}
"""


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each, then wait (15 s each at most, then SIGKILL)."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_caddy(work: Path, port: int, backend_port: int) -> subprocess.Popen[bytes]:
    """Caddy on one core (GOMAXPROCS=1) on `port`, in front of one backend; no admin endpoint, no TLS."""
    (work / "Caddyfile").write_text(f"""
{{
    admin off
    auto_https off
}}
http://127.0.0.1:{port} {{
    reverse_proxy 127.0.0.1:{backend_port}
}}
""")
    return start(["caddy", "run", "--config", str(work / "Caddyfile"), "--adapter", "caddyfile"], port,
                 env={"GOMAXPROCS": "1", "XDG_DATA_HOME": str(work / "caddy-data"),
                      "XDG_CONFIG_HOME": str(work / "caddy-config")})


def start_haproxy(work: Path, port: int, backend_port: int, *, tls_bundle: Path | None = None,
                  alpn: str = "http/1.1", h2c_port: int | None = None,
                  maxconn: int = 4096) -> subprocess.Popen[bytes]:
    """HAProxy with one thread on `port`, in front of one backend; with `tls_bundle` (certificate
    and key in one PEM), terminating TLS 1.2/1.3 with ALPN `alpn`; with `h2c_port`, HTTP/2 with
    prior knowledge there too (`proto h2`); `maxconn` connections at once."""
    ssl = f" ssl crt {tls_bundle} alpn {alpn}" if tls_bundle is not None else ""
    h2c = f"\n    bind 127.0.0.1:{h2c_port} proto h2" if h2c_port is not None else ""
    (work / "haproxy.cfg").write_text(f"""
global
    nbthread 1
    maxconn {maxconn}
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend front
    bind 127.0.0.1:{port}{ssl}{h2c}
    default_backend back
backend back
    server s1 127.0.0.1:{backend_port}
""")
    return start(["haproxy", "-f", str(work / "haproxy.cfg")], port)


def start(cmd: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=None if env is None else {**os.environ, **env})
    wait_port(port, proc)
    return proc


@contextmanager
def gateway_over_nginx(*gateway_args: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """An nginx backend answering BODY and `fastroute serve --no-docker` in
    front of it, both stopped on exit. Yields (gateway port, gateway process)."""
    work = Path(tempfile.mkdtemp(prefix="fastroute-bench-"))
    os.chmod(work, 0o755)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        backend_port = free_port()
        conf = nginx_conf(work, f'server {{ listen 127.0.0.1:{backend_port}; location / {{ return 200 "{BODY.strip()}\\n"; }} }}')
        (work / "backend.conf").write_text(conf.replace("%s", "backend"))
        procs.append(start(["nginx", "-c", str(work / "backend.conf"), "-p", str(work)], backend_port))
        port = free_port()
        gateway = start([
            sys.executable, "-m", "proxy", "serve", "--no-docker", "--access-log", "off",
            "--listen", f"127.0.0.1:{port}", "--route", f"/=127.0.0.1:{backend_port}", *gateway_args,
        ], port)
        procs.append(gateway)
        yield port, gateway
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def wrk(port: int, connections: int, duration: int, *, scheme: str = "http",
        extra: list[str] | None = None) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", *(extra or []),
         f"{scheme}://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=duration + 30, check=True,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if match:
            scale = {"us": 1.0, "ms": 1000.0, "s": 1e6}[match.group(2)]
            result[f"p{pct}"] = float(match.group(1)) * scale
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        print(f"bench: wrk -c{connections} reported errors on port {port}: {errors.group(0)}", file=sys.stderr)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--sweep", metavar="N,N,...",
                        help="instead: requests/s at each of these connection counts (e.g. 1,8,32,128,512)")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="with --sweep: draw requests/s against connections")
    parser.add_argument("--ios", default="trio,native",
                        help="fastroute's --io paths to run with the fast parser (default trio,native)")
    parser.add_argument("--parsers", default="fast,h11",
                        help="fastroute's --parser modes to run, each with 1 and 2 workers (default fast,h11)")
    args = parser.parse_args()
    sweep = [int(n) for n in args.sweep.split(",")] if args.sweep else []
    if args.plot is not None and not sweep:
        parser.error("--plot needs --sweep")
    for tool in ("wrk", "haproxy", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"bench: {tool} is not installed (apt-get install {tool})", file=sys.stderr)
            return 1

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="fastroute-bench-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        try:
            backend_port = free_port()
            conf = nginx_conf(work, f'server {{ listen 127.0.0.1:{backend_port}; location / {{ return 200 "{BODY.strip()}\\n"; }} }}')
            (work / "backend.conf").write_text(conf.replace("%s", "backend"))
            procs.append(start(["nginx", "-c", str(work / "backend.conf"), "-p", str(work)], backend_port))

            ports = {}
            ports["haproxy (1 thread)"] = free_port()
            procs.append(start_haproxy(work, ports["haproxy (1 thread)"], backend_port))

            ports["nginx (1 worker)"] = free_port()
            conf = nginx_conf(work, f"""
    upstream back {{ server 127.0.0.1:{backend_port}; keepalive {IDLE_UPSTREAM}; }}
    server {{
        listen 127.0.0.1:{ports["nginx (1 worker)"]};
        location / {{ proxy_pass http://back; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}""")
            (work / "proxy.conf").write_text(conf.replace("%s", "proxy"))
            procs.append(start(["nginx", "-c", str(work / "proxy.conf"), "-p", str(work)], ports["nginx (1 worker)"]))

            if shutil.which("caddy") is not None:
                ports["caddy (GOMAXPROCS=1)"] = free_port()
                procs.append(start_caddy(work, ports["caddy (GOMAXPROCS=1)"], backend_port))
            else:
                print("bench: caddy is not installed (apt-get install caddy): no Caddy row", file=sys.stderr)

            ports["trio byte pipe (no HTTP)"] = free_port()
            procs.append(start([sys.executable, str(Path(__file__).parent / "trio_pipe.py"),
                                str(ports["trio byte pipe (no HTTP)"]), str(backend_port)],
                               ports["trio byte pipe (no HTTP)"]))

            modes = [(parser_mode, "trio") for parser_mode in args.parsers.split(",")]
            modes += [("fast", io) for io in args.ios.split(",") if io != "trio"]
            for parser_mode, io in modes:
                for workers in (1, 2):
                    label = parser_mode if io == "trio" else f"{parser_mode} {io}"
                    name = f"fastroute {label} ({workers} worker{'s' if workers > 1 else ''})"
                    ports[name] = free_port()
                    procs.append(start([
                        sys.executable, "-m", "proxy", "serve", "--no-docker", "--access-log", "off",
                        "--parser", parser_mode, "--io", io, "--workers", str(workers),
                        "--max-idle-upstream", str(IDLE_UPSTREAM),
                        "--listen", f"127.0.0.1:{ports[name]}", "--route", f"/=127.0.0.1:{backend_port}",
                    ], ports[name]))

            rows = {"direct (no proxy)": backend_port, **ports}
            if sweep:
                swept: dict[str, dict[int, float]] = {}
                for name, port in rows.items():
                    print(f"bench: {name} on port {port}", file=sys.stderr)
                    wrk(port, 32, 1)  # warm up: pools, caches
                    swept[name] = {n: wrk(port, n, args.duration)["rps"] for n in sweep}
                return report_sweep(swept, sweep, args.duration, args.plot)
            results: dict[str, dict[str, dict[str, float]]] = {}
            for name, port in rows.items():
                wrk(port, args.connections, 1)  # warm up: pools, caches
                results[name] = {
                    "many": wrk(port, args.connections, args.duration),
                    "one": wrk(port, 1, args.duration),
                }
        finally:
            stop_all(procs)

    base = results["haproxy (1 thread)"]
    direct_p50 = results["direct (no proxy)"]["one"].get("p50", 0.0)
    base_added = base["one"].get("p50", 0.0) - direct_p50
    print(f"wrk -t1, {args.connections} connections and 1 connection, {args.duration}s each, one nginx backend "
          f"answering {len(BODY)} bytes, all on loopback; {os.cpu_count()} CPUs")
    print()
    print(f"| in front of the backend | req/s ({args.connections} conns) | ratio to HAProxy | p50 µs | p99 µs "
          "| 1 conn: p50 µs | 1 conn: added p50 over direct | added vs HAProxy's |")
    print("|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        many, one = result["many"], result["one"]
        added = one.get("p50", 0.0) - direct_p50
        print(
            f"| {name} | {many['rps']:.0f} | {many['rps'] / base['many']['rps']:.2f} | {many.get('p50', 0):.0f} "
            f"| {many.get('p99', 0):.0f} | {one.get('p50', 0):.0f} | {added:.0f} "
            f"| {added / base_added if base_added > 0 else float('nan'):.2f}x |"
        )
    for ours_name in [name for name in results if name.startswith("fastroute") and "(1 worker)" in name]:
        ours = results[ours_name]
        for name in ("haproxy (1 thread)", "nginx (1 worker)", "caddy (GOMAXPROCS=1)", "trio byte pipe (no HTTP)"):
            if name not in results:
                continue
            theirs = results[name]
            print(f"{ours_name} / {name}: req/s {ours['many']['rps'] / theirs['many']['rps']:.2f}x, "
                  f"p99 {ours['many'].get('p99', 0) / max(theirs['many'].get('p99', 1), 1):.2f}x")
    return 0


def report_sweep(swept: dict[str, dict[int, float]], sweep: list[int], duration: int, plot: Path | None) -> int:
    print(f"wrk -t1, {duration}s per point, one nginx backend answering {len(BODY)} bytes; {os.cpu_count()} CPUs")
    print()
    print("| requests/s at N connections | " + " | ".join(str(n) for n in sweep) + " |")
    print("|---|" + "---|" * len(sweep))
    base = swept["haproxy (1 thread)"]
    for name, points in swept.items():
        print(f"| {name} | " + " | ".join(f"{points[n]:,.0f} ({points[n] / base[n]:.2f})" for n in sweep) + " |")
    print("(ratio to HAProxy's one thread in parentheses)")
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(8, 5))
        for name, points in swept.items():
            axes.plot(sweep, [points[n] for n in sweep], marker="o", label=name)
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
        axes.set_xticks(sweep, [str(n) for n in sweep])
        axes.set_xlabel("concurrent connections (wrk -t1)")
        axes.set_ylabel("requests/s")
        axes.set_title(f"19-byte responses through each proxy, {os.cpu_count()} CPUs shared with wrk and the backend")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
        figure.tight_layout()
        figure.savefig(plot, dpi=100)
        print(f"plot: {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
