"""The whole exchange, each --io path side by side (group "whole exchange, by path").

One round: wrk over 32 keep-alive connections for ROUND_SECONDS through a
gateway process (`fastroute serve --no-docker`, one worker, the fast
parser) to an nginx backend answering 19 bytes, all on loopback. The
figure is the gateway's own CPU time per request (its utime + stime over
the round, from /proc, divided by the requests wrk counted), in
extra_info["gateway_cpu_us_per_request"] (median of the rounds): what the
gateway spends on one exchange (reading, checking, routing, rewriting,
relaying both ways, pooling, its event loop), whatever wrk and nginx cost
the shared CPUs. The round's wall time, which pytest-benchmark reports, is
ROUND_SECONDS by construction and says nothing.

Needs wrk and nginx (the Debian packages); every process it starts is
stopped when the test ends; every round is bounded by wrk's -d.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from compare import BODY, free_port, nginx_conf, start, stop_all  # noqa: E402

ROUND_SECONDS = 2  # wrk's -d
CONNECTIONS = 32


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            pytest.fail(f"{tool} is not installed (apt-get install {tool})")
    work = Path(tempfile.mkdtemp(prefix="fastroute-bench-"))
    os.chmod(work, 0o755)
    port = free_port()
    conf = nginx_conf(work, f'server {{ listen 127.0.0.1:{port}; location / {{ return 200 "{BODY.strip()}\\n"; }} }}')
    (work / "backend.conf").write_text(conf.replace("%s", "backend"))
    proc = start(["nginx", "-c", str(work / "backend.conf"), "-p", str(work)], port)
    try:
        yield port
    finally:
        stop_all([proc])
        shutil.rmtree(work, ignore_errors=True)


def _round(port: int, pid: int, cpu: list[float]) -> None:
    before = _cpu_ticks(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{ROUND_SECONDS}s", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=ROUND_SECONDS + 30, check=True,
    ).stdout
    ticks = _cpu_ticks(pid) - before
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    assert done > 0 and "Non-2xx" not in out and "Socket errors" not in out, out
    cpu.append(ticks / os.sysconf("SC_CLK_TCK") / done * 1e6)


@pytest.mark.parametrize("io", ["trio", "native"])
def test_whole_exchange_by_path(benchmark, backend: int, io: str) -> None:  # type: ignore[no-untyped-def]
    benchmark.group = "whole exchange, by path"
    port = free_port()
    gateway = start([sys.executable, "-m", "proxy", "serve", "--no-docker", "--access-log", "off", "--io", io,
                     "--listen", f"127.0.0.1:{port}", "--route", f"/=127.0.0.1:{backend}"], port)
    cpu: list[float] = []
    try:
        _round(port, gateway.pid, [])  # warm up: the pool, the caches
        benchmark.pedantic(_round, args=(port, gateway.pid, cpu), rounds=3, iterations=1)
    finally:
        stop_all([gateway])
    benchmark.extra_info["gateway_cpu_us_per_request"] = sorted(cpu)[len(cpu) // 2]
