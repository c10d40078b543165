#!/usr/bin/env python3
"""HAProxy mode speed, against the real engine and Debian's HAProxy, in one run.

    .venv/bin/python bench/haproxy_speed.py [--rounds 10] [--reload-interval 2]

From `docker run` returning to the first request answered by the new
container through HAProxy, with `fastroute haproxy --master-socket` following
the engine as a separate process:

1. joining a prefix that exists (runtime API: `add server`, no reload); the
   pool is one other container, so polling finds the new one at once;
2. a new prefix (a new backend: write, `haproxy -c`, reload). Rounds are
   spaced by more than --reload-interval, so each waits for no earlier reload.

Then a burst: 20 containers with 20 new prefixes started at once, and the
reloads it took. Uses the test backend image (build it once with `make
test`); every container is labelled fastroute.bench=<run> and removed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.docker_support import build_backend_image, http_get  # noqa: E402
from tests.haproxy_support import cli  # noqa: E402
from tests.helpers import unused_port  # noqa: E402

RUN = uuid.uuid4().hex[:8]
POLL = 0.0005  # seconds between requests while waiting for a container


def answer(port: int, path: str) -> tuple[int, bytes]:
    try:
        return http_get(("127.0.0.1", port), path)
    except OSError:
        return 0, b""


def wait_for(port: int, path: str, host: str, limit: float = 30.0) -> float:
    """Seconds until `host` answers `path` through HAProxy."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        status, body = answer(port, path)
        if status == 200 and f"host={host}".encode() in body:
            return time.monotonic() - started
        time.sleep(POLL)
    raise RuntimeError(f"{host} never answered {path}")


def reloads(socket_path: Path) -> int:
    found = re.search(r"^\s*\d+\s+master\s+(\d+)", cli(socket_path, "show proc"), re.MULTILINE)
    assert found
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--reload-interval", type=float, default=2.0)
    args = parser.parse_args()

    client = docker.from_env()
    image = build_backend_image(client)
    network = client.networks.create(f"fastroute-bench-{RUN}", labels={"fastroute.bench": RUN})
    work = Path(tempfile.mkdtemp(prefix="fastroute-haproxy-bench-"))
    config, master = work / "haproxy.cfg", work / "master.sock"
    port = unused_port()
    common = [sys.executable, "-m", "proxy", "haproxy", "--config", str(config), "--bind", f"127.0.0.1:{port}",
              "--network", network.name, "--docker-label", f"fastroute.bench={RUN}", "--hold", "0",
              "--log-level", "warning"]
    haproxy = follower = None

    def run(name: str, route: str) -> Any:
        return client.containers.run(image, name=name, hostname=name, detach=True, network=network.name,
                                     labels={"fastroute.bench": RUN, "fastroute.route": route})

    try:
        subprocess.run([*common, "--once"], check=True)
        haproxy = subprocess.Popen(["haproxy", "-W", "-db", "-S", str(master), "-f", str(config)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        follower = subprocess.Popen([*common, "--master-socket", str(master),
                                     "--reload-interval", str(args.reload_interval)])
        time.sleep(2)  # the follower's first list and reload
        run(f"fr-bench-{RUN}-seed", "/hb/pool")
        wait_for(port, "/hb/pool/", f"fr-bench-{RUN}-seed")

        joined, fresh = [], []
        start_reloads = reloads(master)
        for i in range(args.rounds):
            name = f"fr-bench-{RUN}-join{i}"
            container = run(name, "/hb/pool")
            joined.append(wait_for(port, "/hb/pool/", name))
            container.remove(force=True)  # a pool of two: polling finds the new one at once
            time.sleep(0.2)
        join_reloads = reloads(master) - start_reloads
        for i in range(args.rounds):
            time.sleep(args.reload_interval + 0.2)
            name = f"fr-bench-{RUN}-new{i}"
            run(name, f"/hb/new{i}")
            fresh.append(wait_for(port, f"/hb/new{i}/", name))

        before = reloads(master)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(lambda i: run(f"fr-bench-{RUN}-burst{i}", f"/hb/burst{i}"), range(20)))
        for i in range(20):
            wait_for(port, f"/hb/burst{i}/", f"fr-bench-{RUN}-burst{i}")
        burst_time, burst_reloads = time.monotonic() - started, reloads(master) - before

        def p90(values: list[float]) -> str:
            return f"{statistics.quantiles(values, n=10)[8] * 1000:.1f} ms"

        print(f"\n{args.rounds} rounds, --reload-interval {args.reload_interval:g}")
        print("| docker run -> first answer through HAProxy | median | p90 | reloads |")
        print("|---|---|---|---|")
        print(f"| joining an existing prefix (runtime API) | {statistics.median(joined) * 1000:.1f} ms | "
              f"{p90(joined)} | {join_reloads} |")
        print(f"| a new prefix (check + reload) | {statistics.median(fresh) * 1000:.1f} ms | "
              f"{p90(fresh)} | {args.rounds} |")
        print(f"\nburst: 20 new prefixes started at once, all answering after {burst_time:.2f} s, "
              f"{burst_reloads} reloads")
    finally:
        for proc in (follower, haproxy):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
        for container in client.containers.list(all=True, filters={"label": f"fastroute.bench={RUN}"}):
            container.remove(force=True)
        network.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
