# The counts behind /metrics and /routes: per route, requests by status
# class, a latency histogram, failed and timed-out connects. Plain dicts
# updated on the hot path (only with --admin); admin/_metrics.py turns them
# into Prometheus metric families when scraped. Pure; not thread-safe.
#
# Label `route` is the matched prefix ("" when no route matched: 404s and
# requests refused before routing), so its cardinality is that of the table.

from __future__ import annotations

import bisect

__all__ = ["BUCKETS", "Stats"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds; Prometheus client defaults


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
