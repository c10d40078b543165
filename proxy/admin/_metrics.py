# Metrics: counted on the hot path in plain dicts (a few dict updates per
# request, only when --admin is on), turned into Prometheus metric families
# only when scraped. Gauges (open connections, table swaps, Docker
# reconnects, wake starts and stops) are read from the gateway at scrape
# time and cost the hot path nothing.
#
# Label `route` is the matched prefix ("" when no route matched: 404s and
# requests refused before routing), so its cardinality is that of the table.

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..gateway._server import Gateway

__all__ = ["BUCKETS", "Stats", "StatsCollector", "render"]

# Seconds; Prometheus client defaults.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Stats:
    """Per-request counts for /metrics and /routes. Not thread-safe; trio only."""

    __slots__ = ("requests", "buckets", "duration_sum", "connect_errors", "timeouts")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}  # (route, "2xx") -> count
        self.buckets: dict[str, list[int]] = {}  # route -> counts per bucket, the last for +Inf
        self.duration_sum: dict[str, float] = {}
        self.connect_errors: dict[str, int] = {}  # route -> refused, reset or unreachable connects
        self.timeouts: dict[tuple[str, str], int] = {}  # (route, "connect" | "response") -> count

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, f"{status // 100}xx" if status else "none")
        self.requests[key] = self.requests.get(key, 0) + 1
        counts = self.buckets.get(route)
        if counts is None:
            counts = self.buckets[route] = [0] * (len(BUCKETS) + 1)
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.duration_sum[route] = self.duration_sum.get(route, 0.0) + seconds
        if status == 504:
            self.timeouts[(route, "response")] = self.timeouts.get((route, "response"), 0) + 1

    def connect_failed(self, route: str, timed_out: bool) -> None:
        if timed_out:
            self.timeouts[(route, "connect")] = self.timeouts.get((route, "connect"), 0) + 1
        else:
            self.connect_errors[route] = self.connect_errors.get(route, 0) + 1

    def route_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (route, _), count in self.requests.items():
            totals[route] = totals.get(route, 0) + count
        return totals


class StatsCollector:
    """A prometheus_client collector over one gateway (its Stats and its live state)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        gateway = self.gateway
        stats = gateway.stats
        assert stats is not None  # the metrics are served only with --admin, which keeps them
        requests = CounterMetricFamily("fastroute_requests", "Requests answered, by route and status class",
                                       labels=["route", "status_class"])
        for (route, status_class), count in sorted(stats.requests.items()):
            requests.add_metric([route, status_class], count)
        yield requests

        duration = HistogramMetricFamily("fastroute_request_duration_seconds",
                                         "From the request head to the end of the response", labels=["route"])
        for route, counts in sorted(stats.buckets.items()):
            cumulative, running = [], 0
            for bound, count in zip((*map(str, BUCKETS), "+Inf"), counts):
                running += count
                cumulative.append((bound, running))
            duration.add_metric([route], cumulative, stats.duration_sum[route])
        yield duration

        errors = CounterMetricFamily("fastroute_upstream_connect_errors",
                                     "Backend connections refused, reset or unreachable", labels=["route"])
        for route, count in sorted(stats.connect_errors.items()):
            errors.add_metric([route], count)
        yield errors
        timeouts = CounterMetricFamily("fastroute_upstream_timeouts",
                                       "Backend connect timeouts and response-head timeouts (504)",
                                       labels=["route", "phase"])
        for (route, phase), count in sorted(stats.timeouts.items()):
            timeouts.add_metric([route, phase], count)
        yield timeouts

        yield GaugeMetricFamily("fastroute_client_connections", "Open client connections",
                                value=gateway.connections)
        upstream = GaugeMetricFamily("fastroute_upstream_connections", "Open backend connections",
                                     labels=["state"])
        states = gateway.registry.states.values()
        upstream.add_metric(["active"], sum(s.outstanding for s in states))
        upstream.add_metric(["idle"], sum(len(s.idle) for s in states))
        yield upstream
        yield CounterMetricFamily("fastroute_table_swaps", "Route tables swapped in", value=gateway.swaps)
        watcher, waker = gateway.watcher, gateway.waker
        yield CounterMetricFamily("fastroute_docker_reconnects", "Docker events stream reconnects",
                                  value=watcher.reconnects if watcher is not None else 0)
        yield CounterMetricFamily("fastroute_wake_starts", "Containers started for a request",
                                  value=waker.starts if waker is not None else 0)
        yield CounterMetricFamily("fastroute_idle_stops", "Woken containers stopped when idle",
                                  value=waker.stops if waker is not None else 0)


def render(gateway: Gateway) -> tuple[bytes, str]:
    """The Prometheus text exposition of `gateway`'s metrics, and its content type."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(gateway))
    # The classic text format, which every Prometheus version scrapes (newer
    # clients announce 1.0.0, which servers before 3.0 do not know).
    return generate_latest(registry), TEXT_FORMAT
