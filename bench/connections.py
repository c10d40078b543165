#!/usr/bin/env python3
"""Many connections: 10,000 idle keep-alive clients held, then wrk at 256.

    .venv/bin/python bench/connections.py [--idle 10000] [--wrk-seconds 30] [--io trio|native]

Starts an nginx backend (one worker, 19-byte answer, as bench/compare.py)
and `fastroute serve --no-docker` as a subprocess.
1. Opens --idle client connections, each sending one request and keeping
   the connection, and reports the gateway's RSS before and after.
2. Closes them, runs `wrk -c256` for --wrk-seconds (bounded), and reports
   requests/s, errors, and the gateway's RSS before and after (a leak check).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.compare import gateway_over_nginx  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def teardown_seconds(pid: int, since: float, limit: float = 30.0) -> float:
    """From `since` until the gateway's CPU time stops growing (flat for 0.3 s)."""
    last, last_change = cpu_seconds(pid), time.monotonic()
    while time.monotonic() - since < limit:
        time.sleep(0.05)
        now_cpu = cpu_seconds(pid)
        if now_cpu != last:
            last, last_change = now_cpu, time.monotonic()
        elif time.monotonic() - last_change > 0.3:
            break
    return last_change - since


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--wrk-seconds", type=int, default=30)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between closing the idle ones and wrk")
    parser.add_argument("--io", choices=["trio", "native"], default="trio", help="the gateway's --io (default trio)")
    args = parser.parse_args()
    # The gateway (which inherits this limit) serves (limit - 32) / 2 connections
    # at once, keeping a descriptor for each one's backend: raise it if we may.
    want = 2 * args.idle + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, want), max(hard, want)))
    except (OSError, ValueError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit < want:
        print(f"bench: the file descriptor limit ({limit}) is too low for {args.idle} connections "
              f"(the gateway wants {want})", file=sys.stderr)
        return 1
    clients: list[socket.socket] = []
    with gateway_over_nginx("--io", args.io) as (port, gateway):
        try:
            base = rss_mib(gateway.pid)
            request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
            answered = 0
            for _ in range(args.idle):  # one at a time, so the backend side stays one pooled connection
                sock = socket.create_connection(("127.0.0.1", port))
                sock.sendall(request)
                clients.append(sock)
                sock.settimeout(30)
                data = b""
                while not data.endswith(b"hello from backend\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                answered += data.startswith(b"HTTP/1.1 200 ")
            held = rss_mib(gateway.pid)
            print(f"{args.idle} idle keep-alive connections (each after one request): {answered} answered 200; "
                  f"gateway RSS {base:.1f} MiB -> {held:.1f} MiB "
                  f"({(held - base) * 1024 / args.idle:.1f} KiB per connection)")
        finally:
            closed_at = time.monotonic()
            for sock in clients:
                sock.close()
        busy = teardown_seconds(gateway.pid, closed_at)
        print(f"closing them: the gateway was busy (CPU) for {busy:.2f} s after the first close")
        time.sleep(args.settle)  # let the gateway finish closing them before the load starts
        before = rss_mib(gateway.pid)
        out = subprocess.run(
            ["wrk", "-t1", "-c256", f"-d{args.wrk_seconds}s", f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, timeout=args.wrk_seconds + 60,
        ).stdout
        rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
        errors = re.search(r"Socket errors: (.*)|Non-2xx or 3xx responses: (\d+)", out)
        after = rss_mib(gateway.pid)
        print(f"wrk -c256 for {args.wrk_seconds} s: {rps.group(1) if rps else '?'} req/s, "
              f"errors: {errors.group(0) if errors else 'none'}; gateway RSS {before:.1f} -> {after:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
