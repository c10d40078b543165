#!/usr/bin/env python3
"""Soak: steady load through `fastroute serve` while containers churn.

    .venv/bin/python bench/soak.py [--seconds 60] [--clients 16] [--replicas 2]

Starts the gateway as a subprocess following Docker (only this run's
containers, by label), keeps --replicas containers of the test backend
behind /soak, and for --seconds (bounded) runs --clients keep-alive clients
in a loop while a churner recreates one replica at a time (stop with a 1 s
grace, start a new one), so at least one replica is always up. Every 5 s it
prints requests, failures, p99 latency and the gateway's RSS; at the end a
summary. Everything it started is removed. Goal: zero failed requests.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import h11
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.docker_support import build_backend_image, wait_for_port  # noqa: E402
from tests.helpers import unused_port  # noqa: E402

RUN = uuid.uuid4().hex[:8]
LABELS = {"fastroute.soak": RUN, "fastroute.route": "/soak"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.failures: list[str] = []


async def client_loop(port: int, stats: Stats, stop: trio.Event) -> None:
    stream = None
    conn = None
    while not stop.is_set():
        try:
            if stream is None:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                conn = h11.Connection(h11.CLIENT)
            assert conn is not None
            started = time.perf_counter()
            await stream.send_all(conn.send(h11.Request(method="GET", target="/soak/", headers=[("host", "soak")]))
                                  + conn.send(h11.EndOfMessage()))
            status = 0
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(data)
                    continue
                if type(event) is h11.Response:
                    status = event.status_code
                if type(event) in (h11.EndOfMessage, h11.ConnectionClosed):
                    break
            stats.latencies.append(time.perf_counter() - started)
            if status != 200:
                stats.failures.append(f"status {status}")
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
            else:
                await stream.aclose()
                stream = None
        except Exception as error:  # noqa: BLE001 - every failure is counted and reported
            stats.failures.append(f"{type(error).__name__}: {error}")
            if stream is not None:
                await trio.aclose_forcefully(stream)
            stream = None
    if stream is not None:
        await stream.aclose()


async def churn(client: Any, image: str, network: str, replicas: list[Any], stop: trio.Event) -> int:
    recreated = 0
    while not stop.is_set():
        await trio.sleep(2)
        old = replicas.pop(0)
        await trio.to_thread.run_sync(lambda c=old: c.stop(timeout=5))
        new = await trio.to_thread.run_sync(lambda: client.containers.run(
            image, detach=True, labels=LABELS, network=network, environment={"GRACE": "1"}))
        replicas.append(new)
        await trio.to_thread.run_sync(lambda c=old: c.remove(force=True))
        recreated += 1
    return recreated


async def soak(args: argparse.Namespace, client: Any, image: str, network: str, port: int, pid: int) -> None:
    replicas = [await trio.to_thread.run_sync(lambda: client.containers.run(
        image, detach=True, labels=LABELS, network=network, environment={"GRACE": "1"}))
        for _ in range(args.replicas)]
    await trio.sleep(1)
    stats = Stats()
    stop = trio.Event()
    print("   t | requests | failed | p99 ms | gateway RSS KiB")
    async with trio.open_nursery() as nursery:
        for _ in range(args.clients):
            nursery.start_soon(client_loop, port, stats, stop)
        nursery.start_soon(churn, client, image, network, replicas, stop)
        started = time.monotonic()
        seen = 0
        while time.monotonic() - started < args.seconds:
            await trio.sleep(5)
            window = stats.latencies[seen:]
            seen = len(stats.latencies)
            p99 = sorted(window)[int(len(window) * 0.99)] * 1000 if window else float("nan")
            print(f"{time.monotonic() - started:4.0f} | {len(window):8d} | {len(stats.failures):6d} | "
                  f"{p99:6.1f} | {rss_kib(pid)}", flush=True)
        stop.set()
    total = len(stats.latencies)
    print(f"\n{total} requests in {args.seconds} s with {args.clients} clients, {len(stats.failures)} failed; "
          f"p50 {statistics.median(stats.latencies) * 1000:.1f} ms, "
          f"p99 {sorted(stats.latencies)[int(total * 0.99)] * 1000:.1f} ms")
    for failure in sorted(set(stats.failures))[:10]:
        print(f"  failure: {failure} (x{stats.failures.count(failure)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    client = docker.from_env()
    image = build_backend_image(client)
    network = client.networks.create(f"fastroute-soak-{RUN}", labels={"fastroute.soak": RUN})
    port = unused_port()
    gateway = subprocess.Popen(
        [sys.executable, "-m", "proxy", "serve", "--listen", f"127.0.0.1:{port}", "--access-log", "off",
         "--network", network.name, "--docker-label", f"fastroute.soak={RUN}"],
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(("127.0.0.1", port))
        trio.run(soak, args, client, image, network.name, port, gateway.pid)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)
        for container in client.containers.list(all=True, filters={"label": f"fastroute.soak={RUN}"}):
            container.remove(force=True)
        network.remove()
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
