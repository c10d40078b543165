# One request on its way to a backend (sans-IO), the same on both paths
# and for every protocol a client speaks: which backend of its pool to try
# next, and after each failure what comes next. Each step returns the
# action the shell carries out:
#
#   a BackendState  connect to it (or take a pooled connection) and send;
#   REROUTE         route the request again on the table in force;
#   a Waiting       wait for the backends tried to leave, then route again
#                   (routing/_retry.py's WAIT, with what the wait needs);
#   a ProxyError    answer the client with it.
#
# The rules are routing/_retry.py's (Attempts); this adds the pick, the
# counts the request's record keeps (exchange.connect_errors, ...), and a
# refused connect to a container that is booting again (`not_ready`, the
# Docker watcher's), which is no failure.

from __future__ import annotations

from collections.abc import Callable

from .._config import Address
from .._errors import ProxyError, UpstreamConnectError, UpstreamConnectTimeout
from ._pool import BackendState, Pool
from ._record import Exchange
from ._retry import NEXT, REROUTE, WAIT, Attempts, Step, Waiting

__all__ = ["REROUTE", "Action", "Stream"]

Action = BackendState | Waiting | ProxyError | str  # the str: REROUTE


class Stream:
    """One request's tries on its pool; each method returns the next Action (see the module's header)."""

    __slots__ = ("exchange", "pool", "attempts", "not_ready")

    def __init__(self, exchange: Exchange, pool: Pool, attempts: Attempts,
                 not_ready: Callable[[Address], bool] | None = None) -> None:
        """Args:
            exchange: the request's record (the backend tried, failed connects and backends are counted there).
            not_ready(address): True when a backend that refused a connection is a container booting again.
        """
        self.exchange = exchange
        self.pool = pool
        self.attempts = attempts
        self.not_ready = not_ready

    def next_backend(self, now: float) -> Action:
        """The first try, or the next after NEXT: a backend of the pool not tried yet, or what else to do."""
        backend = self.pool.pick(now, exclude=self.attempts.tried)
        if backend is None:
            return self.none_left(now)
        self.exchange.backend = str(backend.address)
        return backend

    def none_left(self, now: float) -> Action:
        """No backend of the pool is up to try."""
        return self._after(self.attempts.none_left(self.pool.backends, now), now)

    def connect_failed(self, backend: BackendState, error: UpstreamConnectError, now: float) -> Action:
        """The connect to `backend` failed (nothing was sent)."""
        not_ready = self.not_ready
        booting = error.refused and not_ready is not None and not_ready(backend.address)
        if not booting:
            if isinstance(error, UpstreamConnectTimeout):
                self.exchange.connect_timeouts += 1
            else:
                self.exchange.connect_errors += 1
        return self._after(self.attempts.connect_failed(backend, error, booting=booting, now=now), now)

    def stale(self, backend: BackendState, now: float) -> Action:
        """A pooled connection to `backend` was dead before any byte of the response."""
        return self._after(self.attempts.stale(backend), now)

    def unanswered(self, backend: BackendState, error: ProxyError, *, body_read: bool, now: float) -> Action:
        """`backend` took the request and failed before any byte of the response (`error`: the 502)."""
        self.exchange.backend_failures += 1
        return self._after(self.attempts.failed_after_send(backend, error, body_read=body_read, now=now), now)

    def _after(self, step: Step, now: float) -> Action:
        if step is NEXT:
            return self.next_backend(now)
        if step is WAIT:
            return self.attempts.waiting()
        return step  # REROUTE, or the answer
