from __future__ import annotations

import pytest

from proxy._config import Address, Route
from proxy.routing._pool import EJECT_BASE, EJECT_MAX, ERROR_LIMIT, BackendState, Registry, Pool

A, B, C = (Address("10.0.0.%d" % i, 8000) for i in (1, 2, 3))


def upstream(*addresses: Address) -> Pool:
    return Pool(Route("/x", addresses), tuple(BackendState(a) for a in addresses))


def test_ties_go_round_robin() -> None:
    pool = upstream(A, B, C)
    picks = [pool.pick(0.0).address for _ in range(6)]  # type: ignore[union-attr]
    assert picks == [A, B, C, A, B, C]


def test_least_outstanding_wins() -> None:
    pool = upstream(A, B, C)
    pool.backends[0].outstanding = 2
    pool.backends[1].outstanding = 1
    pool.backends[2].outstanding = 3
    assert {pool.pick(0.0).address for _ in range(5)} == {B}  # type: ignore[union-attr]


def test_ejection_grows_and_resets() -> None:
    state = BackendState(A)
    pauses = [state.mark_failed(100.0) for _ in range(8)]
    assert pauses[:3] == [EJECT_BASE, 2 * EJECT_BASE, 4 * EJECT_BASE]
    assert pauses[-1] == EJECT_MAX
    assert not state.is_up(100.0 + EJECT_MAX - 0.1)
    assert state.is_up(100.0 + EJECT_MAX)
    state.mark_ok()
    assert state.is_up(100.0) and state.mark_failed(0.0) == EJECT_BASE


def test_failures_after_the_connect_eject_after_a_few_in_a_row() -> None:
    # HAProxy's observe layer4 with error-limit: one reset is not a verdict,
    # ERROR_LIMIT in a row are.
    state = BackendState(A)
    assert [state.mark_error(10.0) for _ in range(ERROR_LIMIT)] == [False] * (ERROR_LIMIT - 1) + [True]
    assert not state.is_up(10.0) and state.status(10.0) == "ejected"
    assert state.is_up(10.0 + EJECT_BASE)


def test_a_backend_that_connects_but_keeps_failing_is_ejected_longer_each_time() -> None:
    state = BackendState(A)
    for _ in range(ERROR_LIMIT):
        state.mark_error(0.0)
    assert state.down_until == EJECT_BASE
    state.mark_ok()  # back in rotation: the connect works, as it always did
    assert state.mark_error(EJECT_BASE) is True  # its next failure takes it out at once, for twice as long
    assert state.down_until == EJECT_BASE + 2 * EJECT_BASE


def test_a_response_clears_the_failures_after_the_connect() -> None:
    state = BackendState(A)
    for _ in range(ERROR_LIMIT - 1):
        state.mark_error(0.0)
    state.mark_answered()
    assert state.mark_error(0.0) is False and state.is_up(0.0)
    for _ in range(ERROR_LIMIT):
        state.mark_error(0.0)
    state.mark_answered()
    state.mark_ok()
    assert state.status(EJECT_BASE) == "up"


@pytest.mark.parametrize(("eject", "expected"), [
    pytest.param(5.0, [5.0, 10.0, 20.0, 30.0, 30.0], id="shorter_than_the_cap"),
    pytest.param(600.0, [600.0, 600.0], id="longer_than_the_cap"),
])
def test_the_eject_time_is_the_first_pause(eject: float, expected: list[float]) -> None:
    # --eject-time, as the Registry hands it to the states it makes.
    (state,) = Registry(eject=eject).build([Route("/a", (A,))])[0][(None, "/a")].backends
    assert [state.mark_failed(0.0) for _ in expected] == expected


def test_pick_skips_down_and_excluded() -> None:
    pool = upstream(A, B)
    pool.backends[0].mark_failed(0.0)
    assert pool.pick(0.5).address == B  # type: ignore[union-attr]
    assert pool.pick(0.5, exclude=[pool.backends[1]]) is None


def test_registry_keeps_state_across_builds_and_retires_the_rest() -> None:
    registry = Registry()
    first, _ = registry.build([Route("/a", (A, B)), Route("/b", (B,))])
    assert first[(None, "/a")].backends[1] is first[(None, "/b")].backends[0]  # one state per address
    state_b = first[(None, "/b")].backends[0]
    state_b.outstanding = 3

    second, gone = registry.build([Route("/b", (B, C))])

    assert second[(None, "/b")].backends[0] is state_b and state_b.outstanding == 3
    assert [s.address for s in gone] == [A]
    assert gone[0].retired and not state_b.retired


def test_status_tells_ejected_retrying_and_up_apart() -> None:
    state = BackendState(Address("10.0.0.1", 8000))
    assert state.status(0.0) == "up"
    pause = state.mark_failed(10.0)
    assert state.status(10.0) == "ejected" and state.status(10.0 + pause - 0.01) == "ejected"
    assert state.status(10.0 + pause) == "retrying"  # back in rotation; its last try failed
    state.mark_ok()
    assert state.status(10.0 + pause) == "up"
