#!/usr/bin/env python3
"""Bulk transfer: 100 MiB downloads and uploads through HAProxy and fastroute.

    .venv/bin/python bench/bulk.py [--mib 100] [--rounds 3] [--ios trio,native]

One nginx backend serves a file of --mib MiB and accepts (and discards) an
upload of the same size; HAProxy (one thread) and `fastroute serve` (one
worker) sit in front of it on loopback. Each transfer is one HTTP/1.1
request from a Python client reading or writing 1 MiB at a time (the same
client for every proxy); prints MiB/s per run and the ratio of medians.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.compare import free_port, nginx_conf, start, start_haproxy, stop_all  # noqa: E402

CHUNK = 1 << 20


def download(port: int, size: int) -> float:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        received = 0
        while chunk := sock.recv(CHUNK):
            received += len(chunk)
    took = time.perf_counter() - started
    assert received > size, f"short download: {received}"
    return size / took / CHUNK


def upload(port: int, size: int) -> float:
    block = b"u" * CHUNK
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % size)
        for _ in range(size // CHUNK):
            sock.sendall(block)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    took = time.perf_counter() - started
    assert reply.startswith(b"HTTP/1.1 200"), reply[:100]
    return size / took / CHUNK


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ios", default="trio,native", help="fastroute's --io paths, one row each (default trio,native)")
    args = parser.parse_args()
    ios = args.ios.split(",")
    size = args.mib * CHUNK
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="fastroute-bulk-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        (work / "www").mkdir()
        with open(work / "www" / "big", "wb") as out:
            out.truncate(size)
        os.chmod(work / "www" / "big", 0o644)
        os.chmod(work / "www", 0o755)
        try:
            backend = free_port()
            conf = nginx_conf(work, f"""
    client_max_body_size {args.mib + 1}m;
    server {{
        listen 127.0.0.1:{backend};
        location /big {{ root {work}/www; }}
        location /upload {{ client_body_buffer_size 1m; proxy_pass http://127.0.0.1:{backend}/done; }}
        location /done {{ return 200 "ok\\n"; }}
    }}""")
            (work / "backend.conf").write_text(conf.replace("%s", "backend"))
            procs.append(start(["nginx", "-c", str(work / "backend.conf"), "-p", str(work)], backend))
            ports = {"haproxy (1 thread)": free_port()}
            procs.append(start_haproxy(work, ports["haproxy (1 thread)"], backend))
            for io in ios:
                name = f"fastroute {io} (1 worker)"
                ports[name] = free_port()
                procs.append(start([
                    sys.executable, "-m", "proxy", "serve", "--no-docker", "--access-log", "off", "--io", io,
                    "--listen", f"127.0.0.1:{ports[name]}", "--route", f"/=127.0.0.1:{backend}",
                ], ports[name]))
            results: dict[str, dict[str, list[float]]] = {name: {"down": [], "up": []} for name in ports}
            for _ in range(args.rounds):
                for name, port in ports.items():
                    results[name]["down"].append(download(port, size))
                    results[name]["up"].append(upload(port, size))
        finally:
            stop_all(procs)
    print(f"{args.mib} MiB per transfer, {args.rounds} rounds, MiB/s (runs; median)")
    for name, result in results.items():
        for way in ("down", "up"):
            runs = ", ".join(f"{v:,.0f}" for v in result[way])
            print(f"  {name:<28} {way:<4} {runs}; median {statistics.median(result[way]):,.0f}")
    base = results["haproxy (1 thread)"]
    for io in ios:
        ours = results[f"fastroute {io} (1 worker)"]
        for way in ("down", "up"):
            print(f"fastroute {io} / haproxy, {way}load: "
                  f"{statistics.median(ours[way]) / statistics.median(base[way]):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
