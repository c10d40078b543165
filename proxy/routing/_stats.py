# The counts behind /metrics and /routes: per route, requests by status
# class, a latency histogram, bytes both ways, failed and timed-out
# connects, and a History (requests and errors per HISTORY_SLOT for the
# status page's charts). Plain dicts updated on the hot path (only with
# --admin); admin/_metrics.py turns them into Prometheus metric families
# when scraped. Pure; not thread-safe; the clock is an argument.
#
# Label `route` is the matched prefix ("" when no route matched: 404s and
# requests refused before routing), so its cardinality is that of the table.
#
# A History's slots are numbered by time.monotonic() // HISTORY_SLOT: the
# workers of --workers N share that clock (CLOCK_MONOTONIC is the
# machine's), so the admin front adds their histories slot by slot.

from __future__ import annotations

import bisect
from collections.abc import Sequence

__all__ = ["BUCKETS", "HISTORY_SLOT", "HISTORY_SLOTS", "History", "Stats", "quantile"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds; Prometheus client defaults
HISTORY_SLOT = 5.0  # seconds a point of a route's chart covers
HISTORY_SLOTS = 60  # points kept per route: the last 5 minutes


class History:
    """One route's requests and errors (5xx, or no answer) per slot, the last HISTORY_SLOTS slots: a fixed ring."""

    __slots__ = ("stamps", "requests", "errors")

    def __init__(self) -> None:
        self.stamps = [-1] * HISTORY_SLOTS  # the slot number each place holds
        self.requests = [0] * HISTORY_SLOTS
        self.errors = [0] * HISTORY_SLOTS

    def add(self, slot: int, error: bool) -> None:
        place = slot % HISTORY_SLOTS
        if self.stamps[place] != slot:  # a slot from HISTORY_SLOTS ago, or never used: start it again
            self.stamps[place] = slot
            self.requests[place] = 0
            self.errors[place] = 0
        self.requests[place] += 1
        if error:
            self.errors[place] += 1

    def series(self, last: int) -> tuple[list[int], list[int]]:
        """(requests, errors) per slot, oldest first, up to slot `last`; 0 for a slot with none."""
        requests, errors = [], []
        for slot in range(last - HISTORY_SLOTS + 1, last + 1):
            place = slot % HISTORY_SLOTS
            held = self.stamps[place] == slot
            requests.append(self.requests[place] if held else 0)
            errors.append(self.errors[place] if held else 0)
        return requests, errors


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile (0 < q < 1) of a BUCKETS histogram, in seconds, as Prometheus's
    histogram_quantile() estimates it: linear within the bucket it falls in; the highest
    finite bound if it falls in +Inf. None with no observations."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    below = 0
    for index, count in enumerate(counts):
        if below + count >= rank and count:
            if index == len(BUCKETS):
                return BUCKETS[-1]
            lower = BUCKETS[index - 1] if index else 0.0
            return lower + (BUCKETS[index] - lower) * (rank - below) / count
        below += count
    return BUCKETS[-1]


class Stats:
    """Per-request counts for /metrics and /routes. Not thread-safe; trio only."""

    __slots__ = ("requests", "buckets", "duration_sum", "connect_errors", "timeouts", "bytes_in", "bytes_out",
                 "history", "backend_failures", "protocols")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], int] = {}  # (route, "2xx") -> count
        self.buckets: dict[str, list[int]] = {}  # route -> counts per bucket, the last for +Inf
        self.duration_sum: dict[str, float] = {}
        self.connect_errors: dict[str, int] = {}  # route -> refused, reset or unreachable connects
        self.timeouts: dict[tuple[str, str], int] = {}  # (route, "connect" | "response") -> count
        # route -> backends that took a request and failed before any response byte (reset, closed)
        self.backend_failures: dict[str, int] = {}
        self.bytes_in: dict[str, int] = {}  # route -> request body bytes from clients
        self.bytes_out: dict[str, int] = {}  # route -> response body bytes to clients
        self.history: dict[str, History] = {}
        self.protocols: dict[str, int] = {}  # "HTTP/1.1", "HTTP/1.0", "HTTP/2" -> requests

    def by_protocol(self, protocol: str) -> None:
        """One more request that came in `protocol` (the status page and /metrics show them)."""
        self.protocols[protocol] = self.protocols.get(protocol, 0) + 1

    def observe(self, route: str, status: int, seconds: float, now: float = 0.0, bytes_in: int = 0,
                bytes_out: int = 0) -> None:
        """One request answered (`status` 0: not answered) in `seconds`, at time.monotonic() `now`."""
        key = (route, f"{status // 100}xx" if status else "none")
        self.requests[key] = self.requests.get(key, 0) + 1
        history = self.history.get(route)
        if history is None:
            history = self.history[route] = History()
        history.add(int(now // HISTORY_SLOT), status == 0 or status >= 500)
        if bytes_in:
            self.bytes_in[route] = self.bytes_in.get(route, 0) + bytes_in
        if bytes_out:
            self.bytes_out[route] = self.bytes_out.get(route, 0) + bytes_out
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

    def backend_failed(self, route: str, count: int = 1) -> None:
        self.backend_failures[route] = self.backend_failures.get(route, 0) + count

    def route_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (route, _), count in self.requests.items():
            totals[route] = totals.get(route, 0) + count
        return totals
