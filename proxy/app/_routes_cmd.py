# `fastroute routes`: the table Docker would give now, for people and machines.

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._config import Discovery
from .._json import Json
from ..discovery._client import connect, engine_address
from ..discovery._errors import EngineError
from ..discovery._listing import snapshot
from ..discovery._model import ContainerSet

__all__ = ["print_routes"]


def print_routes(url: str | None, discovery: Discovery, labels: Sequence[str], *, as_json: bool,
                 tls: Path | None = None) -> int:
    """Print the routes; returns the exit status (1 if the engine cannot be read)."""
    try:
        client = connect(url, tls)
        try:
            engine = "{} {}".format(*client.identity())
            if discovery.network is None:
                from dataclasses import replace

                discovery = replace(discovery, own_networks=client.own_networks())
            summaries, listed_warnings = snapshot(client, labels, discovery.swarm)
        finally:
            client.close()
    except EngineError as error:  # it answered, with an error
        print(f"fastroute: error: the Docker engine answered with an error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - any engine failure is one line
        first = (str(error).strip().splitlines() or [""])[0]
        print(f"fastroute: error: cannot read the Docker engine: {type(error).__name__}: {first}", file=sys.stderr)
        return 1
    containers = ContainerSet(discovery, probe_ports=False)  # what the engine says, unprobed
    containers.replace_all(summaries)
    rows: list[Mapping[str, Json]] = [{"warning": w} for w in listed_warnings]
    rows += describe(containers, time.monotonic())
    if as_json:
        json.dump({
            "engine": engine,
            "routes": [r for r in rows if "prefix" in r],
            "skipped": [r for r in rows if "skipped" in r],
            "warnings": [r["warning"] for r in rows if "warning" in r],
        }, sys.stdout, indent=2)
        print()
        return 0
    print(f"engine: {engine} at {engine_address(url)}")
    for row in rows:
        if "prefix" in row:
            strip = "  (strip prefix)" if row["strip_prefix"] else ""
            wake = "  (stopped: a request wakes it)" if row["wake"] else ""
            print(f"{row['name']}  [{row['source']}]{strip}{wake}")
            for c in row["containers"]:
                print(f"    {c['address'] or '-':<24} {c['name']} ({c['id']}) {c['state']}")
        elif "skipped" in row:
            print(f"skipped: {row['skipped']} ({row['id']}): {row['reason']}")
        else:
            print(f"warning: {row['warning']}")
    if not rows:
        print("no running containers")
    return 0


def describe(containers: ContainerSet, now: float) -> list[Mapping[str, Json]]:
    """Rows for `fastroute routes`: each routed prefix, then each skipped container."""
    routes, warnings = containers.advance(now)
    rows: list[Mapping[str, Json]] = []
    for route in routes:
        members = [c for c in containers.containers.values()
                   if c.id in route.wake or (route.key in c.keys and c.address in route.backends)
                   or (route.booting and route.key in c.keys and containers.booting(c))]
        rows.append({
            "name": route.name,
            "host": route.host,
            "prefix": route.prefix,
            "strip_prefix": route.strip_prefix,
            "source": route.source,
            "wake": bool(route.wake),
            "containers": [{"name": c.name, "id": c.short_id, "address": str(c.address) if c.address else "",
                            "state": c.state}
                           for c in sorted(members, key=lambda c: c.name)],
        })
    for container in sorted(containers.containers.values(), key=lambda c: c.name):
        if container.skip is not None:
            rows.append({"skipped": container.name, "id": container.short_id, "reason": container.skip})
        elif not container.routable and not container.wake:
            rows.append({"skipped": container.name, "id": container.short_id, "reason": f"not serving: {container.state}"})
    for warning in warnings:
        rows.append({"warning": warning})
    return rows
