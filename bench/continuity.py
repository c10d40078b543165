#!/usr/bin/env python3
"""Failed requests while containers come and go, against the real engine, in one run.

    .venv/bin/python bench/continuity.py [--rounds 3] [--clients 4] [--boot 2]

Each scenario runs an in-process gateway and watcher (--hold 10 s, the
default) in front of the busybox test backend, with --clients clients each
sending requests in a loop (a new connection per request, bounded in count
and time), and counts every answer:

- first deploy, slow boot: `docker run` of a container whose server listens
  --boot seconds after it starts; the clients start when `run` returns and go
  on until the container has served for 0.5 s. Answers of 404 before the
  route is first known are counted apart ("unknown"): the route cannot be
  known before the engine announces the container.
- recreate, slow boot: `docker stop old` (1 s grace) then `docker run new`,
  new booting --boot seconds, under load; until new has served for 0.5 s.
- recreate, quick boot: the same with a container that listens at once.

Prints one line per scenario and round, and a summary. Labels every container
fastroute.bench=<run> and removes them all at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import docker
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from proxy._config import Discovery  # noqa: E402
from proxy.routing._sources import RouteSources  # noqa: E402
from proxy.discovery._watcher import DockerWatcher  # noqa: E402
from tests.docker_support import build_backend_image  # noqa: E402
from tests.helpers import fetch, start_gateway  # noqa: E402

RUN = uuid.uuid4().hex[:8]
LABEL = f"fastroute.bench={RUN}"
MAX_REQUESTS = 50_000  # per client and scenario
MAX_SECONDS = 30.0  # per scenario


def start(client: Any, image: str, network: str, prefix: str, hostname: str, *, boot: float = 0,
          grace: float = 0) -> Any:
    labels = {"fastroute.bench": RUN, "fastroute.route": prefix}
    environment = {"BOOT": f"{boot:g}", "GRACE": f"{grace:g}"}
    return client.containers.run(image, detach=True, labels=labels, network=network, environment=environment,
                                 hostname=hostname)


async def scenario(client: Any, image: str, network: str, kind: str, boot: float, clients: int) -> Counter[str]:
    prefix = f"/cont{uuid.uuid4().hex[:6]}"
    counts: Counter[str] = Counter()
    async with trio.open_nursery() as nursery:
        gateway = await start_gateway(nursery, [])
        sources = RouteSources(gateway, ())
        watcher = DockerWatcher(sources, Discovery(network=network, hold=10.0), labels=[LABEL])
        await nursery.start(watcher.run)
        await watcher.synced.wait()
        old_host, new_host = f"old-{RUN}", f"new-{RUN}"
        if kind != "first":
            old = await trio.to_thread.run_sync(lambda: start(client, image, network, prefix, old_host, grace=1))
            with trio.fail_after(10):
                while (await fetch(gateway, "GET", prefix + "/")).status != 200:
                    await trio.sleep(0.01)
        served_at: list[float] = []
        known = kind != "first"
        stop = trio.Event()

        async def load() -> None:
            nonlocal known
            for _ in range(MAX_REQUESTS):
                if stop.is_set():
                    return
                reply = await fetch(gateway, "GET", prefix + "/")
                host = reply.body.decode(errors="replace").splitlines()[0].removeprefix("host=") \
                    if reply.status == 200 else ""
                if reply.status == 404 and not known:
                    counts["unknown"] += 1
                    continue
                known = True
                if reply.status != 200:
                    counts[str(reply.status)] += 1
                elif host == new_host:
                    counts["200"] += 1
                    if not served_at:
                        served_at.append(time.monotonic())
                elif host == old_host:
                    counts["200"] += 1
                else:
                    counts["misrouted"] += 1

        async with trio.open_nursery() as inner:
            inner.cancel_scope.deadline = trio.current_time() + MAX_SECONDS
            if kind == "first":
                await trio.to_thread.run_sync(lambda: start(client, image, network, prefix, new_host, boot=boot))
                for _ in range(clients):
                    inner.start_soon(load)
            else:
                for _ in range(clients):
                    inner.start_soon(load)
                await trio.sleep(0.3)
                await trio.to_thread.run_sync(lambda: old.stop(timeout=2))
                await trio.to_thread.run_sync(
                    lambda: start(client, image, network, prefix, new_host, boot=boot if kind == "slow" else 0))
            while not served_at or time.monotonic() - served_at[0] < 0.5:
                await trio.sleep(0.05)
            stop.set()
        nursery.cancel_scope.cancel()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--boot", type=float, default=2.0, help="seconds the slow service takes to listen")
    args = parser.parse_args()
    client = docker.from_env()
    image = build_backend_image(client)
    network = client.networks.create(f"fastroute-bench-{RUN}", labels={"fastroute.bench": RUN})
    names = {"first": f"first deploy, {args.boot:g} s boot", "slow": f"recreate, {args.boot:g} s boot",
             "quick": "recreate, quick boot"}
    totals: dict[str, Counter[str]] = {kind: Counter() for kind in names}
    try:
        for round_ in range(args.rounds):
            for kind in names:
                counts = trio.run(scenario, client, image, network.name, kind, args.boot, args.clients)
                totals[kind] += counts
                print(f"round {round_ + 1} {names[kind]}: {dict(sorted(counts.items()))}", flush=True)
                for container in client.containers.list(all=True, filters={"label": LABEL}):
                    container.remove(force=True)
    finally:
        for container in client.containers.list(all=True, filters={"label": LABEL}):
            container.remove(force=True)
        network.remove()
        client.close()
    print()
    print("| scenario | answers | 200 | failed (not 200, not the leading 404s) | unknown (404 before the start event) |")
    print("|---|---|---|---|---|")
    for kind, counts in totals.items():
        failed = sum(n for key, n in counts.items() if key not in ("200", "unknown"))
        total = sum(counts.values())
        detail = ", ".join(f"{key}: {n}" for key, n in sorted(counts.items()) if key not in ("200", "unknown"))
        print(f"| {names[kind]} | {total} | {counts['200']} | {failed}{f' ({detail})' if detail else ''} "
              f"| {counts['unknown']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
