#!/usr/bin/env python3
"""The same load against fastroute from two checkouts: this one and an
earlier one (--before DIR, its extensions built in place), each in front of
one nginx backend, wrk in alternating rounds. Prints requests/s and the
gateway's CPU per request (its user+system time over a round divided by
the requests wrk completed) for each, and their ratios. For a change that
must leave the warm path as it was (issue 39):

    git worktree add /tmp/before <commit> && (cd /tmp/before && ../path/.venv/bin/python setup.py build_ext --inplace)
    .venv/bin/python bench/checkouts.py --before /tmp/before [--rounds 6] [--duration 5] [--connections 32]

Every run is bounded by --duration; every process started is stopped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import BODY, free_port, nginx_conf, start, stop_all, wait_port, wrk  # noqa: E402

HERE = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def gateway(checkout: Path, backend_port: int, args: list[str]) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--no-docker", "--access-log", "off",
                             "--listen", f"127.0.0.1:{port}", "--route", f"/=127.0.0.1:{backend_port}", *args],
                            cwd=checkout, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, proc)
    return port, proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="the earlier checkout, extensions built in place")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per checkout, alternating (default 6)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("gateway_args", nargs="*", help="flags for both gateways (after --)")
    args = parser.parse_args()
    if not (args.before / "proxy").is_dir():
        parser.error(f"{args.before} is not a fastroute checkout")
    work = Path(tempfile.mkdtemp(prefix="fastroute-bench-"))
    os.chmod(work, 0o755)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        backend_port = free_port()
        conf = nginx_conf(work, f'server {{ listen 127.0.0.1:{backend_port}; '
                                f'location / {{ return 200 "{BODY.strip()}\\n"; }} }}')
        (work / "backend.conf").write_text(conf.replace("%s", "backend"))
        procs.append(start(["nginx", "-c", str(work / "backend.conf"), "-p", str(work)], backend_port))
        sides = {"before": args.before.resolve(), "after": HERE}
        running = {}
        for name, checkout in sides.items():
            port, proc = gateway(checkout, backend_port, args.gateway_args)
            procs.append(proc)
            running[name] = (port, proc)
            wrk(port, args.connections, 1)  # warm up
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, (port, proc) in running.items():
                cpu = cpu_seconds(proc.pid)
                rps = wrk(port, args.connections, args.duration)["rps"]
                used = cpu_seconds(proc.pid) - cpu
                results[name].append((rps, used / (rps * args.duration) * 1e6))
        print(f"wrk -t1 -c{args.connections}, {args.rounds} alternating rounds of {args.duration}s, one nginx "
              f"backend answering {len(BODY)} bytes; {os.cpu_count()} CPUs; gateway flags: "
              f"{' '.join(args.gateway_args) or 'defaults'}")
        median = {name: (statistics.median(r for r, _ in rows), statistics.median(c for _, c in rows))
                  for name, rows in results.items()}
        for name, (rps, cpu) in median.items():
            rows = results[name]
            print(f"  {name:7} {sides[name]}: {rps:9.0f} req/s (median; {min(r for r, _ in rows):.0f}-"
                  f"{max(r for r, _ in rows):.0f}), {cpu:6.1f} us CPU/request (median; "
                  f"{min(c for _, c in rows):.1f}-{max(c for _, c in rows):.1f})")
        (rps_b, cpu_b), (rps_a, cpu_a) = median["before"], median["after"]
        print(f"  after/before: {rps_a / rps_b:.3f}x req/s, {cpu_a / cpu_b:.3f}x CPU/request")
    finally:
        stop_all(procs[::-1])
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
