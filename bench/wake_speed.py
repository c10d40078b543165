#!/usr/bin/env python3
"""Wake-on-request overhead, against the real engine, in one run.

    .venv/bin/python bench/wake_speed.py [--rounds 10]

Each round: a stopped container labelled fastroute.wake=true; one request
through the gateway (in process, with its watcher and waker); the time from
sending the request to its first response byte, and within it the time the
engine's `docker start` call took. Overhead = the difference: fastroute's
readiness checks, the watcher's table update and the forwarding. Also every
call fastroute made to the engine during the wake, by kind. The container is
stopped again (by the bench, outside the measurement) between rounds.

Uses the test backend image (build it once with `make test`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import docker
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.docker_support import build_backend_image, lab  # noqa: E402
from tests.helpers import Client  # noqa: E402
from tests.proxy.test_wake import WAKE, start_waking, stopped  # noqa: E402


class Timed:
    """Wraps a docker client's .api.start to record how long each call took."""

    def __init__(self, inner: Any, took: list[float]) -> None:
        self._inner, self._took = inner, took

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != "start":
            return Timed(attr, self._took) if name == "api" else attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self._took.append(time.perf_counter() - started)

        return timed


async def measure(the_lab: Any, rounds: int) -> None:
    calls: Counter[str] = Counter()
    start_took: list[float] = []
    totals, overheads, per_wake = [], [], []
    async with trio.open_nursery() as nursery:
        backend = await stopped(the_lab, {**WAKE, "fastroute.route": "/bench/wake"})
        gateway, _, waker = await start_waking(nursery, the_lab, calls)
        real_factory = waker.client_factory
        waker.client_factory = lambda url: Timed(real_factory(url), start_took)
        for _ in range(rounds):
            before = Counter(calls)
            client = await Client.connect(gateway)
            started = time.perf_counter()
            await client.stream.send_all(b"GET /bench/wake/ HTTP/1.1\r\nHost: b\r\n\r\n")
            await client.stream.receive_some(1)
            total = time.perf_counter() - started
            await client.aclose()
            totals.append(total)
            overheads.append(total - start_took[-1])
            made = calls - before
            made.pop("ping", None)
            per_wake.append(made)
            await trio.to_thread.run_sync(lambda: the_lab.client.containers.get(backend.id).stop(timeout=1))
            while (None, "/bench/wake") not in gateway.table or gateway.table.lookup(None, "/bench/wake")[1].backends:
                await trio.sleep(0.05)
            await trio.sleep(0.3)
        nursery.cancel_scope.cancel()

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.1f} ms"

    print(f"\n{rounds} wakes of a stopped busybox container")
    print("| | median |")
    print("|---|---|")
    print(f"| request -> first response byte | {ms(totals)} |")
    print(f"| of which `docker start` | {ms(start_took)} |")
    print(f"| wake overhead (the difference) | {ms(overheads)} |")
    kinds = sorted(set().union(*per_wake))
    print("\nengine calls per wake (median; min-max):")
    for kind in kinds:
        counts = [made[kind] for made in per_wake]
        print(f"  {kind}: {statistics.median(counts):g} ({min(counts)}-{max(counts)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    client = docker.from_env()
    image = build_backend_image(client)
    network = client.networks.create(f"fastroute-bench-wake-{time.time_ns()}")
    try:
        with lab(client, image, network.name) as the_lab:
            trio.run(measure, the_lab, args.rounds)
    finally:
        network.remove()


if __name__ == "__main__":
    main()
