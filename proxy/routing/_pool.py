# Backend pools: which backend gets the next request, and which backends are
# out of rotation. Pure: the clock is passed in, and idle connections are
# opaque objects kept here for the trio shell (_upstream.py) to use.
#
# Rules:
# - least outstanding requests wins; ties go round-robin, so an idle pool
#   spreads requests instead of sending them all to its first backend;
# - a backend that refuses connections is out for EJECT_BASE seconds (or
#   --eject-time), doubled on each further failure up to EJECT_MAX (or the
#   eject time, if longer); the first success resets it;
# - a backend that takes the connection and then fails requests (a reset
#   or a close before any response byte) is out the same way once it failed
#   ERROR_LIMIT in a row (HAProxy's observe layer4 with error-limit); back
#   in rotation, its next such failure takes it out again at once, for
#   twice as long; a response resets the count;
# - a BackendState outlives route table swaps: the table's values (Pool)
#   are rebuilt on a swap, but they take their BackendState from a Registry,
#   so counts, ejections and pooled connections carry over.

from __future__ import annotations

import math

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._config import Address, Route

__all__ = ["EJECT_BASE", "EJECT_MAX", "ERROR_LIMIT", "IDLE_UPSTREAM_MAX_AGE", "UPSTREAM_MAX_INCOMPLETE_EVENT", "BackendState",
           "Pool", "Registry"]

EJECT_BASE = 1.0  # seconds out of rotation after the first refused connection (--eject-time's default)
EJECT_MAX = 30.0  # seconds, the longest time out of rotation
ERROR_LIMIT = 3  # failures after the connect, in a row, that take a backend out of rotation
IDLE_UPSTREAM_MAX_AGE = 30.0  # seconds a pooled connection may sit unused
UPSTREAM_MAX_INCOMPLETE_EVENT = 64 * 1024  # bytes of a backend's response head


class BackendState:
    __slots__ = ("address", "outstanding", "failures", "down_until", "idle", "host_header", "retired", "on_retire",
                 "last_done", "in_flight", "check_down", "check_streak", "last_check", "down_since", "eject", "errors")

    def __init__(self, address: Address, eject: float = EJECT_BASE) -> None:
        self.address = address
        self.eject = eject  # seconds out of rotation after a first failure
        self.outstanding = 0
        self.failures = 0
        self.errors = 0  # requests in a row that failed after the connect, before any response byte
        self.down_until = 0.0
        self.idle: list[Any] = []  # Any: pooled upstream connections, most recent last (each path's own kind)
        self.host_header = str(address).encode("ascii", "replace")
        self.retired = False  # no route uses it any more: pool nothing
        self.on_retire: set[Callable[[], None]] = set()  # called once when it is retired
        self.last_done = 0.0  # time.monotonic() when its last request ended (idle stop)
        # Route name -> its requests in flight here: one backend can serve several routes.
        self.in_flight: dict[str, int] = {}
        # Active health checks (routing/_health.py): out of rotation while
        # check_down; check_streak counts the results in a row that disagree
        # with it; last_check and down_since are time.monotonic() (0: never).
        self.check_down = False
        self.check_streak = 0
        self.last_check = 0.0
        self.down_since = 0.0

    def begin(self, route: str) -> None:
        """A request of `route` is sent to this backend (counted until end())."""
        self.outstanding += 1
        self.in_flight[route] = self.in_flight.get(route, 0) + 1

    def end(self, route: str) -> None:
        self.outstanding -= 1
        left = self.in_flight.get(route, 0) - 1
        if left > 0:
            self.in_flight[route] = left
        else:
            self.in_flight.pop(route, None)

    def is_up(self, now: float) -> bool:
        return now >= self.down_until

    def status(self, now: float) -> str:
        """"up"; "ejected" (out of rotation until down_until); "retrying": back in rotation after
        its pause, its last try failed and no success since (the admin shows it, not "up"); or
        "unhealthy": its active health check failed (out until it passes again)."""
        if self.check_down:
            return "unhealthy"
        if now < self.down_until:
            return "ejected"
        return "retrying" if self.failures else "up"

    def mark_failed(self, now: float) -> float:
        """Take the backend out of rotation; returns for how long (seconds)."""
        self.failures += 1
        pause: float = min(self.eject * 2.0 ** (self.failures - 1), max(EJECT_MAX, self.eject))
        if not self.check_down:  # out until its health check passes, whatever this says
            self.down_until = now + pause
        return pause

    def mark_error(self, now: float) -> bool:
        """A request failed here after the connect, before any response byte; True: now out of rotation."""
        self.errors += 1
        if self.errors < ERROR_LIMIT:
            return False
        self.mark_failed(now)
        return True

    def mark_answered(self) -> None:
        """A response came whole: whatever failed before was not the backend's habit."""
        self.errors = 0
        self.failures = 0

    def mark_ok(self) -> None:
        """A connect succeeded (or a pooled connection was taken)."""
        if self.errors < ERROR_LIMIT:  # one that fails after the connect is not cleared by connecting
            self.failures = 0
        # A request that began before its health check failed may end well: it stays out.
        self.down_until = math.inf if self.check_down else 0.0

    def __repr__(self) -> str:
        return f"BackendState({self.address}, outstanding={self.outstanding}, failures={self.failures})"


@dataclass(eq=False, slots=True)
class Pool:
    """A route table value: the route and its backends' live states."""

    route: Route
    backends: tuple[BackendState, ...]
    next_index: int = 0

    def pick(self, now: float, exclude: Iterable[BackendState] = ()) -> BackendState | None:
        """The up backend with the fewest outstanding requests, or None."""
        best: BackendState | None = None
        count = len(self.backends)
        start = self.next_index
        for offset in range(count):
            backend = self.backends[(start + offset) % count]
            if not backend.is_up(now) or backend in exclude:
                continue
            if best is None or backend.outstanding < best.outstanding:
                best = backend
        self.next_index = (start + 1) % count if count else 0
        return best


class Registry:
    """The BackendState of every address currently in some route."""

    def __init__(self, eject: float = EJECT_BASE) -> None:
        self.states: dict[Address, BackendState] = {}
        self.eject = eject  # BackendState.eject of the states it makes

    def build(self, routes: Iterable[Route]) -> tuple[dict[tuple[str | None, str], Pool], list[BackendState]]:
        """Table values for `routes`, and the states no route uses any more.

        The caller swaps the table in and then closes the idle connections of
        the states it got back.
        """
        states: dict[Address, BackendState] = {}
        values: dict[tuple[str | None, str], Pool] = {}
        for route in routes:
            pool = []
            for address in route.backends:
                state = states.get(address) or self.states.get(address) or BackendState(address, self.eject)
                states[address] = state
                pool.append(state)
            values[route.key] = Pool(route, tuple(pool))
        gone = [state for address, state in self.states.items() if address not in states]
        for state in gone:
            state.retired = True
            for callback in list(state.on_retire):
                callback()
        self.states = states
        return values, gone
