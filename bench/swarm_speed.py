#!/usr/bin/env python3
"""Swarm services through the gateway, on a real single-node Swarm, in one run.

    .venv/bin/python bench/swarm_speed.py [--rounds 3] [--clients 4]

Sets up what tests/swarm_support.py sets up for the tests: `docker swarm
init` (left again at the end, unless this engine was in a Swarm already), an
attachable overlay network, and `fastroute serve --swarm on` in the network
namespace of a box container on it. Then, per round:

- scale: a service of 1 task, `service.scale(3)`; from the moment that
  call returns, the time until the engine says each new task runs, and
  until the gateway answers from it (4 clients in a loop). The gap
  between the two is fastroute's own delay: the listing after the service
  event or the 250 ms poll, then the port probe.
- update: a service of 2 tasks, `service.update(image=...)` start-first,
  under --clients clients; the time from that call returning until the
  last request any old task answered was sent, until the update completes
  (the engine's word), and the failed requests among all answers.

Every load loop is bounded in count and time. Prints one line per round and
a summary with medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.docker_support import NAME_PREFIX, RUN_ID, RUN_LABEL, build_backend_image  # noqa: E402
from tests.swarm_support import Load, SwarmLab, single_node_swarm  # noqa: E402


def scale_round(lab: SwarmLab, index: int) -> tuple[float, float]:
    """(median s from scale returning to a new task running, median s to it answering)."""
    app = f"scale{index}"
    service = lab.create_service(lab.tag(app, "v1"), replicas=1)
    (first,) = lab.wait_converged(service, 1)
    with Load(lab.address, lab.prefix(app) + "/", clients=4, limit=60.0) as load:
        while f"t-{first['ID']}" not in load.hosts_since(0):
            time.sleep(0.05)
        service.scale(3)
        returned = time.monotonic()
        running: dict[str, float] = {}
        answering: dict[str, float] = {}
        deadline = returned + 60
        while (len(running) < 2 or len(answering) < 2) and time.monotonic() < deadline:
            now = time.monotonic()
            for task in lab.running_tasks(service):
                if task["ID"] != first["ID"]:
                    running.setdefault(task["ID"], now)
            for answer in list(load.answers):
                tid = answer.host.removeprefix("t-")
                if answer.sent >= returned and tid != first["ID"] and tid not in answering:
                    answering[tid] = answer.sent
            time.sleep(0.02)
    service.remove()
    if len(answering) < 2:
        raise SystemExit(f"round {index}: the new tasks did not answer within 60 s")
    return (statistics.median(t - returned for t in running.values()),
            statistics.median(t - returned for t in answering.values()))


def update_round(lab: SwarmLab, index: int, clients: int) -> tuple[float, float, int, int]:
    """(s to the last old answer, s to the update completing, failed requests, answers)."""
    app = f"update{index}"
    service = lab.create_service(lab.tag(app, "v1"), replicas=2, order="start-first")
    old = {f"t-{t['ID']}" for t in lab.wait_converged(service, 2)}
    with Load(lab.address, lab.prefix(app) + "/", clients=clients, limit=90.0) as load:
        time.sleep(1.0)
        service.update(image=lab.tag(app, "v2"))
        returned = time.monotonic()
        lab.wait_converged(service, 2, updated=True)
        completed = time.monotonic()
        time.sleep(2.0)
    last_old = max(a.sent for a in load.answers if a.host in old)
    service.remove()
    return last_old - returned, completed - returned, len(load.failed()), len(load.answers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    client = docker.from_env()
    image = build_backend_image(client)
    bridge = client.networks.create(f"{NAME_PREFIX}-bench-net", labels={RUN_LABEL: RUN_ID})
    scales: list[tuple[float, float]] = []
    updates: list[tuple[float, float, int, int]] = []
    try:
        with single_node_swarm(client), tempfile.TemporaryDirectory() as directory:
            lab = SwarmLab(client, image, str(bridge.name))
            try:
                lab.open()
                lab.start_gateway(Path(directory))
                for index in range(args.rounds):
                    scales.append(scale_round(lab, index))
                    print(f"scale 1->3, round {index + 1}: task running {scales[-1][0]:.2f} s, "
                          f"answering {scales[-1][1]:.2f} s after scale returned", flush=True)
                    updates.append(update_round(lab, index, args.clients))
                    last, done, failed, answers = updates[-1]
                    print(f"update start-first, round {index + 1}: last old answer {last:.2f} s, "
                          f"completed {done:.2f} s after update returned; {failed} of {answers} failed", flush=True)
            finally:
                lab.close()
    finally:
        bridge.remove()
    print()
    print(f"median over {args.rounds} rounds:")
    print(f"  scale: new task running {statistics.median(s[0] for s in scales):.2f} s, "
          f"answering through fastroute {statistics.median(s[1] for s in scales):.2f} s "
          f"(fastroute's share {statistics.median(s[1] - s[0] for s in scales):.2f} s)")
    print(f"  update: last old answer {statistics.median(u[0] for u in updates):.2f} s, "
          f"update complete {statistics.median(u[1] for u in updates):.2f} s; "
          f"failed {sum(u[2] for u in updates)} of {sum(u[3] for u in updates)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
