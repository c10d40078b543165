# Pure: active health checks (issue 21). Which backends to check, with
# which check, what a check's answer means, and how results move a backend
# in and out of rotation. No trio, no sockets; the clock is an argument. The
# shell (gateway/_health.py) sends the requests and calls these.
#
# Rules:
# - a route with a check (fastroute.healthcheck.path, or health_check in
#   the routes file) has each of its backends checked: GET path every
#   interval, an answer within timeout. 2xx and 3xx pass; any other status,
#   no answer or no connection fails;
# - a backend in rotation leaves after FALL failures in a row, and one out
#   returns after RISE passes in a row (HAProxy's fall and rise). A backend
#   starts in rotation, as HAProxy's servers do: a container joins only once
#   its port accepts anyway (discovery), and its check runs at once;
# - out of rotation means down_until = +inf, so every picker (the trio path's
#   and the compiled engine's) skips it with no code of its own; passive
#   ejection (a refused or reset connection) stays as it is;
# - a backend shared by routes with different checks is checked by each;
#   any of them failing takes it out of every route (its state is shared);
# - a backend no check asks for any more (its route dropped the check) is
#   in rotation again at once (forget).

from __future__ import annotations

import math
from collections.abc import Iterable

from .._config import Address, HealthCheck
from ._pool import BackendState, Pool

__all__ = ["FALL", "RISE", "checks", "forget", "passes", "record", "request", "status_of"]

FALL = 2  # failures in a row that take a backend out
RISE = 2  # passes in a row that bring it back


def checks(pools: Iterable[Pool]) -> dict[tuple[Address, HealthCheck], BackendState]:
    """Every (backend address, check) the table asks for, with the backend's state."""
    wanted: dict[tuple[Address, HealthCheck], BackendState] = {}
    for pool in pools:
        check = pool.route.check
        if check is None:
            continue
        for state in pool.backends:
            wanted[(state.address, check)] = state
    return wanted


def request(check: HealthCheck, address: Address) -> bytes:
    """The check's request: HTTP/1.1, closed after the answer."""
    return (f"GET {check.path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: fastroute-health-check\r\n"
            "Connection: close\r\n\r\n").encode("ascii")


def status_of(data: bytes) -> int | None:
    """The status code of the answer's status line, or None if there is no whole one yet (or it is not HTTP)."""
    line, found, _ = data.partition(b"\r\n")
    if not found:
        return None
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        return 0
    return int(parts[1])


def passes(status: int | None) -> bool:
    return status is not None and 200 <= status < 400


def record(state: BackendState, passed: bool, now: float) -> bool:
    """One check's result; returns whether the backend moved in or out of rotation."""
    state.last_check = now
    if passed == (not state.check_down):
        state.check_streak = 0  # agrees with where it is
        return False
    state.check_streak += 1
    if state.check_down and state.check_streak >= RISE:
        state.check_down = False
        state.check_streak = 0
        state.down_since = 0.0
        state.mark_answered()  # in rotation again, passive ejection's counts cleared too
        state.mark_ok()
        return True
    if not state.check_down and state.check_streak >= FALL:
        state.check_down = True
        state.check_streak = 0
        state.down_since = now
        state.down_until = math.inf
        return True
    return False


def forget(state: BackendState) -> None:
    """No check watches the backend any more: it is in rotation again, as without checks."""
    if state.check_down:
        state.check_down = False
        state.down_until = 0.0
    state.check_streak = 0
    state.down_since = 0.0
