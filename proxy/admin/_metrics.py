# Metrics: counted on the hot path in plain dicts (routing/_stats.py: a few
# dict updates per request, only when --admin is on), turned into Prometheus
# metric families here, only when scraped. Gauges (open connections, table
# swaps, Docker reconnects, wake starts and stops) are read from the gateway
# at scrape time and cost the hot path nothing.
#
# Label `route` is the matched prefix ("" when no route matched: 404s and
# requests refused before routing), so its cardinality is that of the table.

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..routing._stats import BUCKETS

if TYPE_CHECKING:
    from ..gateway._server import Gateway

__all__ = ["TEXT_FORMAT", "StatsCollector", "render"]

TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


class StatsCollector:
    """A prometheus_client collector over one gateway (its Stats and its live state)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Any]:  # Any: prometheus_client's metric families, untyped
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        gateway = self.gateway
        stats = gateway.stats
        assert stats is not None  # the metrics are served only with --admin, which keeps them
        requests = CounterMetricFamily("fastroute_requests", "Requests answered, by route and status class",
                                       labels=["route", "status_class"])
        for (route, status_class), count in sorted(stats.requests.items()):
            requests.add_metric([route, status_class], count)
        yield requests
        yield _by_protocol(stats.protocols)

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
        failures = CounterMetricFamily("fastroute_upstream_failures",
                                       "Requests a backend took and failed (reset or closed) before any response "
                                       "byte; sent again where the retry rules allow", labels=["route"])
        for route, count in sorted(stats.backend_failures.items()):
            failures.add_metric([route], count)
        yield failures
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
        upstream.add_metric(["idle"], sum(gateway.idle_upstreams(s) for s in states))
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


def _by_protocol(protocols: dict[str, int]) -> Any:  # Any: a prometheus_client metric family, untyped
    from prometheus_client.core import CounterMetricFamily

    family = CounterMetricFamily("fastroute_requests_by_protocol", "Requests answered, by the protocol the client spoke",
                                 labels=["protocol"])
    for protocol, count in sorted(protocols.items()):
        family.add_metric([protocol], count)
    return family
