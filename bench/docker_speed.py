#!/usr/bin/env python3
"""Docker discovery speed, against the real engine, in one run.

    .venv/bin/python bench/docker_speed.py [--others 200] [--rounds 20]

1. From `docker run` returning to the first request answered by the new
   container through fastroute (in-process gateway and watcher), with no
   other containers and then with --others running; and to the table swap
   that puts the container in its route (the gateway's own part: the rest
   is the backend answering, a CGI shell script).
2. With --others running: the time one start event's table update takes
   (the watcher's work from receiving the event to the swapped table: one
   engine call, the rebuild, the swap) and a full resync.

Uses the test backend image (build it once with `make test`), labels every
container it starts with fastroute.bench=<run> and removes them all at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import docker
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from proxy.routing._sources import RouteSources  # noqa: E402
from proxy._config import Discovery  # noqa: E402
from proxy.discovery._watcher import DockerWatcher  # noqa: E402
from tests.docker_support import build_backend_image  # noqa: E402
from tests.helpers import fetch, start_gateway  # noqa: E402

RUN = uuid.uuid4().hex[:8]
LABEL = f"fastroute.bench={RUN}"


def start(client: Any, image: str, network: str, route: str | None = None) -> Any:
    labels = {"fastroute.bench": RUN}
    if route:
        labels["fastroute.route"] = route
    return client.containers.run(image, detach=True, labels=labels, network=network)


async def time_to_first_request(client: Any, image: str, network: str, rounds: int) -> tuple[list[float], list[float]]:
    """(docker run -> first answer, docker run -> the route's table swap with the container in it), per round."""
    times = []
    swaps: list[float] = []
    async with trio.open_nursery() as nursery:
        gateway = await start_gateway(nursery, [])
        swapped: dict[str, float] = {}

        class Timed:
            """The gateway as a route sink, noting when each prefix first got a backend."""

            def set_routes(self, routes: Any) -> None:
                routes = list(routes)
                for route in routes:
                    if route.backends:
                        swapped.setdefault(route.prefix, time.perf_counter())
                gateway.set_routes(routes)

        sources = RouteSources(Timed(), ())
        watcher = DockerWatcher(sources, Discovery(network=network, hold=0), labels=[LABEL])
        await nursery.start(watcher.run)
        await watcher.synced.wait()
        for i in range(rounds):
            prefix = f"/bench{i}"
            container = await trio.to_thread.run_sync(start, client, image, network, prefix)
            started = time.perf_counter()
            with trio.fail_after(30):
                while (await fetch(gateway, "GET", prefix + "/")).status != 200:
                    await trio.sleep(0.0005)
            times.append(time.perf_counter() - started)
            swaps.append(swapped[prefix] - started)
            await trio.to_thread.run_sync(lambda c=container: c.remove(force=True))
        nursery.cancel_scope.cancel()
    return times, swaps


async def update_and_resync(client: Any, image: str, network: str, rounds: int) -> tuple[list[float], list[float]]:
    updates: list[float] = []
    resyncs: list[float] = []
    async with trio.open_nursery() as nursery:
        gateway = await start_gateway(nursery, [])
        sources = RouteSources(gateway, ())
        watcher = DockerWatcher(sources, Discovery(network=network, hold=0), labels=[LABEL])
        original = watcher._apply

        async def timed_apply(docker_client: Any, events: list[dict[str, Any]]) -> None:
            # Timed: batches holding a start event, from receiving it to the swapped table.
            started = time.perf_counter()
            await original(docker_client, events)
            if any(e.get("Action") == "start" for e in events):
                updates.append(time.perf_counter() - started)

        watcher._apply = timed_apply  # type: ignore[method-assign]
        await nursery.start(watcher.run)
        await watcher.synced.wait()
        docker_client = await trio.to_thread.run_sync(docker.from_env)
        for _ in range(rounds):
            started = time.perf_counter()
            await watcher._resync(docker_client)
            resyncs.append(time.perf_counter() - started)
        for i in range(rounds):
            container = await trio.to_thread.run_sync(start, client, image, network, f"/upd{i}")
            with trio.fail_after(30):
                while gateway.table.lookup(None, f"/upd{i}".encode()) is None:
                    await trio.sleep(0.001)
            await trio.to_thread.run_sync(lambda c=container: c.remove(force=True))
        docker_client.close()
        nursery.cancel_scope.cancel()
    return updates, resyncs


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, p90 {sorted(values)[int(len(values) * 0.9)] * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--others", type=int, default=200, help="other containers running (default 200)")
    parser.add_argument("--rounds", type=int, default=20, help="measurements per figure (default 20)")
    args = parser.parse_args()
    client = docker.from_env()
    image = build_backend_image(client)
    network = client.networks.create(f"fastroute-bench-{RUN}", labels={"fastroute.bench": RUN})
    try:
        alone, swaps = trio.run(time_to_first_request, client, image, network.name, args.rounds)
        print(f"docker run -> first answer, 0 other containers: {ms(alone)}", flush=True)
        print(f"docker run -> table swap with it, 0 other containers: {ms(swaps)}", flush=True)
        for _ in range(args.others):
            start(client, image, network.name)
        crowded, swaps = trio.run(time_to_first_request, client, image, network.name, args.rounds)
        print(f"docker run -> first answer, {args.others} other containers: {ms(crowded)}", flush=True)
        print(f"docker run -> table swap with it, {args.others} other containers: {ms(swaps)}", flush=True)
        updates, resyncs = trio.run(update_and_resync, client, image, network.name, args.rounds)
        print(f"one event's table update, {args.others} containers: {ms(updates)}")
        print(f"full resync, {args.others} containers: {ms(resyncs)}")
    finally:
        for container in client.containers.list(all=True, filters={"label": LABEL}):
            container.remove(force=True)
        network.remove()
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
