# The bounds an HTTP/2 client connection is held to (protocol/_h2_guard.py),
# with the clock as an argument: no sockets, no waiting.

from __future__ import annotations

import pytest

from proxy.protocol._h2_guard import ENHANCE_YOUR_CALM, OK, REFUSED_STREAM, Bucket, Guard, H2Bounds


def test_streams_past_the_concurrent_limit_are_refused_and_the_next_fits_once_one_closes() -> None:
    guard = Guard(H2Bounds(max_concurrent_streams=3), now=0.0)
    assert [guard.stream_opened() for _ in range(4)] == [OK, OK, OK, REFUSED_STREAM]
    guard.stream_closed()
    assert guard.stream_opened() == OK
    assert guard.open == 3


def test_rapid_reset_ends_the_connection_past_its_burst() -> None:
    # CVE-2023-44487: HEADERS then RST_STREAM, as fast as the client can.
    bounds = H2Bounds(max_concurrent_streams=100, resets_per_second=10.0, reset_burst=50)
    guard = Guard(bounds, now=0.0)
    verdicts = []
    for _ in range(60):
        assert guard.stream_opened() == OK  # each reset frees its slot: the concurrency limit never bites
        verdicts.append(guard.stream_reset(now=0.0))
    assert verdicts == [OK] * 50 + [ENHANCE_YOUR_CALM] * 10
    assert guard.open == 0


def test_resets_at_the_allowed_rate_go_on_for_ever() -> None:
    guard = Guard(H2Bounds(resets_per_second=10.0, reset_burst=5), now=0.0)
    for step in range(1000):
        guard.stream_opened()
        assert guard.stream_reset(now=step * 0.1) == OK  # one every 0.1 s: ten a second


@pytest.mark.parametrize("burst", [1, 7, 1000])
def test_a_control_flood_ends_the_connection_and_a_pause_refills_the_budget(burst: int) -> None:
    guard = Guard(H2Bounds(control_per_second=2.0, control_burst=burst), now=0.0)
    assert [guard.control_frame(now=1.0) for _ in range(burst + 1)] == [OK] * burst + [ENHANCE_YOUR_CALM]
    assert guard.control_frame(now=1.5) == OK  # half a second: one token back at 2 a second
    assert guard.control_frame(now=1.5) == ENHANCE_YOUR_CALM


def test_a_bucket_never_holds_more_than_its_burst() -> None:
    bucket = Bucket(rate=1000.0, burst=2, now=0.0)
    assert [bucket.take(now=3600.0) for _ in range(3)] == [True, True, False]
