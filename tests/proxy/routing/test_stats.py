# Pure: the status page's numbers (routing/_stats.py): a route's chart
# history as a fixed ring of slots, quantiles from the latency histogram,
# bytes, and a backend's requests in flight per route.

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy._config import Address
from proxy.routing._pool import BackendState
from proxy.routing._stats import BUCKETS, HISTORY_SLOT, HISTORY_SLOTS, History, Stats, quantile


def test_a_known_pattern_lands_in_its_slots_and_old_slots_fall_out() -> None:
    history = History()
    for slot, requests, errors in ((100, 3, 1), (101, 0, 0), (102, 5, 0)):
        for index in range(requests):
            history.add(slot, index < errors)
    requests, errors = history.series(102)
    assert len(requests) == len(errors) == HISTORY_SLOTS
    assert requests[-3:] == [3, 0, 5] and errors[-3:] == [1, 0, 0] and sum(requests) == 8
    # HISTORY_SLOTS later, slot 100's place is reused: its counts are gone, not added to.
    history.add(100 + HISTORY_SLOTS, False)
    requests, _ = history.series(100 + HISTORY_SLOTS)
    assert requests[-1] == 1 and sum(requests) == 1 + 5  # slot 102 is still in the window, 100 is not


@given(st.lists(st.tuples(st.integers(0, 3 * HISTORY_SLOTS), st.booleans()), max_size=200))
def test_the_ring_equals_counting_the_last_slots(events: list[tuple[int, bool]]) -> None:
    events.sort()  # time goes forward
    history = History()
    for slot, error in events:
        history.add(slot, error)
    last = events[-1][0] if events else 0
    requests, errors = history.series(last)
    window = range(last - HISTORY_SLOTS + 1, last + 1)
    assert requests == [sum(1 for s, _ in events if s == slot) for slot in window]
    assert errors == [sum(1 for s, e in events if s == slot and e) for slot in window]


def test_observe_counts_errors_bytes_and_slots_by_the_clock_given() -> None:
    stats = Stats()
    stats.observe("/a", 200, 0.01, now=10 * HISTORY_SLOT, bytes_in=5, bytes_out=100)
    stats.observe("/a", 502, 0.02, now=10 * HISTORY_SLOT + 1, bytes_out=20)
    stats.observe("/a", 0, 0.02, now=11 * HISTORY_SLOT)  # no answer: an error too
    stats.observe("/a", 404, 0.02, now=11 * HISTORY_SLOT)  # a 4xx is the client's: not an error
    assert stats.history["/a"].series(11)[0][-2:] == [2, 2]
    assert stats.history["/a"].series(11)[1][-2:] == [1, 1]
    assert (stats.bytes_in["/a"], stats.bytes_out["/a"]) == (5, 120)


@pytest.mark.parametrize(("observed", "q", "expected"), [
    pytest.param([], 0.5, None, id="none"),
    pytest.param([0.003] * 10, 0.5, 0.0025, id="all_in_the_first_bucket"),
    pytest.param([0.003] * 50 + [0.2] * 50, 0.5, 0.005, id="median_at_a_bucket_edge"),
    pytest.param([0.003] * 98 + [0.7, 0.7], 0.99, 0.75, id="p99_in_a_high_bucket"),
    pytest.param([60.0] * 4, 0.5, BUCKETS[-1], id="past_the_last_bound"),
])
def test_quantile_interpolates_as_prometheus_does(observed: list[float], q: float, expected: float | None) -> None:
    stats = Stats()
    for seconds in observed:
        stats.observe("/r", 200, seconds)
    counts = stats.buckets.get("/r", [0] * (len(BUCKETS) + 1))
    assert quantile(counts, q) == (pytest.approx(expected) if expected is not None else None)


def test_a_backend_counts_its_requests_in_flight_per_route() -> None:
    state = BackendState(Address("10.0.0.1", 8000))
    state.begin("/a")
    state.begin("/a")
    state.begin("/b")
    assert (state.outstanding, state.in_flight) == (3, {"/a": 2, "/b": 1})
    state.end("/a")
    state.end("/b")
    assert (state.outstanding, state.in_flight) == (1, {"/a": 1})
    state.end("/a")
    assert (state.outstanding, state.in_flight) == (0, {})
