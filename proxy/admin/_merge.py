# Pure: the admin documents of several workers (`serve --workers N --admin`)
# merged into one, as if one gateway had served every request.
#
# Rules:
# - /metrics: samples with the same name and labels are added up: request
#   and error counters, histogram buckets, sums and counts, and the gauges
#   (open client and backend connections: each worker holds its own);
#   table swaps and Docker reconnects, one per worker for the same change,
#   are added up too (they count work done);
# - /routes: routes by prefix, backends by address: requests, requests in
#   flight and idle connections added up, failures the highest; a backend's
#   state is the worst any worker has (ejected, then retrying, then up), and
#   its retry_in the longest; answers by status class, bytes and latency
#   buckets added up, p50 and p99 computed again from the sum; the charts'
#   histories added slot by slot (the workers number slots by the same
#   clock, and one that answered across a slot's end is shifted to the
#   latest); the gateway's connections added up, its uptime the longest;
# - /healthz: 200 only when every worker answered and is serving; else 503
#   with "degraded" (a worker did not answer: being restarted, or stuck) or
#   "draining";
# - a worker that does not answer is left out (its counters come back when
#   it does; Prometheus reads the dip as a counter reset).

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .._json import JsonObject
from ..routing._stats import quantile

__all__ = ["merge_health", "merge_metrics", "merge_routes"]

_WORSE = {"up": 0, "draining": 0, "retrying": 1, "ejected": 2, "unhealthy": 3}  # a backend's state across workers: the worst one's


def merge_metrics(texts: Sequence[str]) -> bytes:
    """The Prometheus text exposition (0.0.4) of the workers' expositions added up."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import Metric
    from prometheus_client.parser import text_string_to_metric_families

    families: JsonObject = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if family.name not in families:
                families[family.name] = family
                values[family.name] = {}
            samples = values[family.name]
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = samples.get(key, 0.0) + sample.value

    class Merged:
        def collect(self) -> Iterator[Any]:  # Any: prometheus_client's metric families, untyped
            for name, family in families.items():
                metric = Metric(name, family.documentation, family.type)
                for (sample_name, labels), value in values[name].items():
                    metric.add_sample(sample_name, dict(labels), value)
                yield metric

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Merged())
    return generate_latest(registry)


def _shifted(history: dict[str, list[int]] | None, by: int) -> dict[str, list[int]] | None:
    # A history whose last slot is `by` slots before the merged one's.
    if history is None or by == 0:
        return history
    return {key: (values[by:] + [0] * by) if by < len(values) else [0] * len(values)
            for key, values in history.items()}


def _add_history(mine: dict[str, list[int]] | None, theirs: dict[str, list[int]] | None) -> dict[str, list[int]] | None:
    if mine is None or theirs is None:
        return mine or theirs
    return {key: [a + b for a, b in zip(values, theirs.get(key, []))] for key, values in mine.items()}


def _add_counts(mine: dict[str, int], theirs: dict[str, int]) -> dict[str, int]:
    return {key: mine.get(key, 0) + theirs.get(key, 0) for key in sorted({*mine, *theirs})}


def _add_answers(merged: JsonObject, route: JsonObject) -> None:
    # What the status page adds up per route: classes, bytes, latency, history.
    merged["status"] = _add_counts(merged.get("status") or {}, route.get("status") or {})
    merged["bytes_in"] = merged.get("bytes_in", 0) + route.get("bytes_in", 0)
    merged["bytes_out"] = merged.get("bytes_out", 0) + route.get("bytes_out", 0)
    mine, theirs = merged.get("latency_buckets") or [], route.get("latency_buckets") or []
    buckets = [a + b for a, b in zip(mine, theirs)] if mine and theirs else list(mine or theirs)
    merged["latency_buckets"] = buckets
    merged["p50"] = round(q, 6) if buckets and (q := quantile(buckets, 0.5)) is not None else None
    merged["p99"] = round(q, 6) if buckets and (q := quantile(buckets, 0.99)) is not None else None
    merged["history"] = _add_history(merged.get("history"), route.get("history"))


def _add_backends(merged: list[JsonObject], theirs: list[JsonObject]) -> None:
    """A worker's backends of a route added to those merged so far: counts added, the worst state kept."""
    backends = {b["address"]: b for b in merged}
    for backend in theirs:
        mine = backends.get(backend["address"])
        if mine is None:
            merged.append(dict(backend))
            continue
        mine["in_flight"] += backend["in_flight"]
        mine["in_flight_all_routes"] = mine.get("in_flight_all_routes", 0) + backend.get("in_flight_all_routes", 0)
        mine["idle_connections"] += backend["idle_connections"]
        mine["failures"] = max(mine["failures"], backend["failures"])
        if _WORSE.get(backend["state"], 0) > _WORSE.get(mine["state"], 0):
            mine["state"] = backend["state"]
        if backend.get("retry_in") is not None:
            mine["retry_in"] = max(mine.get("retry_in") or 0.0, backend["retry_in"])
        mine["container"] = mine["container"] or backend["container"]


def merge_routes(documents: Sequence[JsonObject]) -> JsonObject:
    """One /routes document from the workers' (at least one)."""
    routes: dict[str, JsonObject] = {}
    end = max(d.get("history_end", 0) for d in documents)
    for document in documents:
        lag = end - document.get("history_end", end)
        for route in document["routes"]:
            route = {**route, "history": _shifted(route.get("history"), lag)}
            name = route.get("name", route["prefix"])
            merged = routes.get(name)
            if merged is None:
                routes[name] = {**route, "backends": [dict(b) for b in route["backends"]]}
                continue
            merged["requests"] += route["requests"]
            _add_answers(merged, route)
            merged["wake"] = sorted(set(merged["wake"]) | set(route["wake"]))
            if merged["held_for"] is None:
                merged["held_for"] = route["held_for"]
            merged["booting"] = merged["booting"] and route["booting"]  # booting unless a worker has one ready
            _add_backends(merged["backends"], route["backends"])
    unrouted: JsonObject = {}
    gateway: JsonObject = {}
    for document in documents:
        theirs = document.get("unrouted") or {}
        unrouted = {
            "status": _add_counts(unrouted.get("status") or {}, theirs.get("status") or {}),
            "history": _add_history(unrouted.get("history"),
                                    _shifted(theirs.get("history"), end - document.get("history_end", end))),
        }
        worker = document.get("gateway")
        if worker:
            if not gateway:
                gateway = dict(worker)
            else:
                gateway["connections"] += worker["connections"]
                gateway["started"] = min(gateway["started"], worker["started"])
                gateway["uptime"] = max(gateway["uptime"], worker["uptime"])
    return {
        "routes": sorted(routes.values(), key=lambda r: str(r["prefix"])),
        "unrouted_requests": sum(d["unrouted_requests"] for d in documents),
        "unrouted": unrouted,
        "protocols": _summed([d.get("protocols") or {} for d in documents]),
        "swaps": sum(d["swaps"] for d in documents),
        "warnings": list(dict.fromkeys(w for d in documents for w in d.get("warnings", []))),  # each worker's same ones
        "history_slot": documents[0].get("history_slot"),
        "history_end": end,
        "gateway": gateway,
        "workers": len(documents),
    }


def _summed(counts: Sequence[JsonObject]) -> dict[str, int]:
    """Counts by name, added up across workers."""
    total: dict[str, int] = {}
    for one in counts:
        for name, count in one.items():
            total[name] = total.get(name, 0) + int(count)
    return dict(sorted(total.items()))


def merge_health(answers: Sequence[tuple[int, JsonObject] | None]) -> tuple[int, JsonObject]:
    """The /healthz status and document from each worker's (None: it did not answer)."""
    present = [document for answer in answers if answer is not None for document in [answer[1]]]
    serving = sum(1 for document in present if document.get("status") == "serving")
    if serving == len(answers) and answers:
        status = "serving"
    elif any(document.get("status") == "draining" for document in present):
        status = "draining"
    else:
        status = "degraded"
    first = present[0] if present else {}
    document = {
        "status": status,
        "routes": first.get("routes", 0),
        "docker": first.get("docker"),
        "workers": {"serving": serving, "total": len(answers)},
    }
    return (200 if status == "serving" else 503), document
