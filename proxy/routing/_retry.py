# The retry and failover rules of one request, as pure functions of what was
# tried. The relay asks after each failure what to do next and only carries
# the answer out: NEXT (pick again: another backend, or a new connection to
# the same one), REROUTE (route the request again on the table in force), or
# a ProxyError (answer the client with it).
#
# Rules (RFC 9110 section 9.2.2 for the stale retry):
# - nothing reached a backend (the connect failed): try another backend of
#   the pool, at most two failed connects per request; none left: the last
#   error (502), or 503 if none was up to begin with;
# - a refused connect to a container that became ready moments ago is not a
#   failure (the watcher takes it out of the table to be probed again): try
#   another backend, or, when none is left, route again, where the request
#   may wait for one;
# - a pooled connection turned out dead before any response byte, no request
#   body byte was read from the client, and the method is idempotent: retry
#   once on a new connection (the backend closed an idle keep-alive, a normal
#   race); otherwise 502;
# - a backend that left the table while we connected (nothing was sent):
#   route again, at most REROUTES times; one that was booting again, at most
#   REROUTES_NOT_READY times (each time a probe found one ready in between).

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

from .._errors import BadGateway, NoBackendAvailable, ProxyError, UpstreamConnectError
from ._pool import BackendState

__all__ = ["IDEMPOTENT", "MAX_FAILED_CONNECTS", "NEXT", "REROUTE", "REROUTES", "REROUTES_NOT_READY",
           "Attempts", "Reroutes", "Step"]

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
MAX_FAILED_CONNECTS = 2  # per request, over the backends of its pool
REROUTES = 2
REROUTES_NOT_READY = 8
NO_BACKEND_RETRY_AFTER = 5  # seconds, in the 503 of a pool with no backend at all

NEXT: Final = "next"
REROUTE: Final = "reroute"
Step = Literal["next", "reroute"] | ProxyError


@dataclass(slots=True)
class Attempts:
    """What one request tried on one pool so far, and the rules for what comes next."""

    prefix: str
    method: bytes
    tried: list[BackendState] = field(default_factory=list)
    failed: int = 0  # connects that failed (booting ones are not counted)
    unready: bool = False  # a backend tried was booting again
    stale_retried: bool = False
    last_error: ProxyError | None = None

    def none_left(self, backends: tuple[BackendState, ...], now: float) -> Step:
        """The pool has no backend left to try: route again, or the answer."""
        if self.unready:
            return REROUTE
        if self.last_error is not None:
            return self.last_error
        if not backends:
            return NoBackendAvailable(f"no backend serves {self.prefix!r} now", retry_after=NO_BACKEND_RETRY_AFTER)
        back_in = min(b.down_until for b in backends) - now
        if not math.isfinite(back_in):  # every one failed its health check: no time to say
            return NoBackendAvailable(f"every backend of {self.prefix!r} fails its health check",
                                      retry_after=NO_BACKEND_RETRY_AFTER)
        return NoBackendAvailable(f"every backend of {self.prefix!r} is out of rotation",
                                  retry_after=max(1, math.ceil(back_in)))

    def connect_failed(self, backend: BackendState, error: UpstreamConnectError, *, booting: bool,
                       now: float) -> Step:
        """A connect to `backend` failed; `booting`: it refused, and it is a container booting again.

        A failure (not booting) takes the backend out of rotation.
        """
        self.tried.append(backend)
        if booting:
            self.unready = True
            return NEXT
        backend.mark_failed(now)
        self.last_error = error
        self.failed += 1
        return error if self.failed >= MAX_FAILED_CONNECTS else NEXT

    def stale(self, backend: BackendState) -> Step:
        """A pooled connection to `backend` was dead before it answered (nothing of the response came)."""
        if self.stale_retried or self.method not in IDEMPOTENT:
            return BadGateway(f"backend {backend.address} closed the connection")
        self.stale_retried = True
        return NEXT


@dataclass(slots=True)
class Reroutes:
    """How often one request was routed again, and when that must stop."""

    left: int = 0  # its backend left the table during the connect
    booting: int = 0  # every backend it tried was booting again

    def backend_left(self) -> ProxyError | None:
        self.left += 1
        if self.left > REROUTES:
            return BadGateway("every backend chosen left the route table")
        return None

    def backends_booting(self) -> ProxyError | None:
        self.booting += 1
        if self.booting > REROUTES_NOT_READY:
            return BadGateway("every backend chosen refused the connection")
        return None
