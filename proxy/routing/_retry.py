# The retry and failover rules of one request, as pure functions of what was
# tried. The relay asks after each failure what to do next and only carries
# the answer out: NEXT (pick again: another backend, or a new connection to
# the same one), REROUTE (route the request again on the table in force),
# WAIT (only for a route of containers: wait, at most --hold, the time a
# request may wait for a container, for the backends tried to leave the
# table; route it again if they did, else answer the error it had), or a
# ProxyError (answer the client with it).
#
# A request "may be sent again" when its method is idempotent (RFC 9110
# section 9.2.2) or it carries Idempotency-Key (draft-ietf-httpapi-
# idempotency-key-header), no byte of its body was read from the client
# (bodies are streamed, never kept: a request with a body is sent again
# only if the failure came before its body began), and no byte of a response
# came (a client never sees two beginnings).
#
# Rules:
# - nothing reached a backend (the connect failed): try another backend of
#   the pool, at most two failed connects per request; none left: the last
#   error (502), or 503 if none was up to begin with;
# - a refused connect to a container that became ready moments ago is not a
#   failure (the watcher takes it out of the table to be probed again): try
#   another backend, or, when none is left, route again, where the request
#   may wait for one;
# - a pooled connection turned out dead before any response byte and the
#   request may be sent again: retry once on a new connection (the backend
#   closed an idle keep-alive, a normal race; not a failure); if none can be
#   had (its container is going), WAIT as below; otherwise 502;
# - a failed connect with no backend left to try, when backends are
#   containers: WAIT, for any method (nothing was sent): its container is
#   usually stopping, seen a moment later; likewise when every backend is
#   out of rotation for failures (not for a failed health check): WAIT,
#   until they left or the first is back in (then routed again);
# - a backend that took the request and failed before any response byte
#   (it reset or closed: it crashed, or its container is stopping and its
#   server exits at once) counts towards its ejection (_pool.ERROR_LIMIT);
#   a request that may be sent again is sent once more: to another backend
#   of the pool, or, when none is left and it is a container, after WAIT
#   (its stop is usually seen a moment after the reset: then the route holds
#   the request until a container is ready); at most once per request, WAIT
#   included; otherwise 502;
# - a backend that left the table while we connected (nothing was sent):
#   route again, at most REROUTES times; one that was booting again, at most
#   REROUTES_NOT_READY times (each time a probe found one ready in between).

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal

from .._errors import BadGateway, NoBackendAvailable, ProxyError, UpstreamConnectError
from ._pool import BackendState

__all__ = ["IDEMPOTENT", "MAX_FAILED_CONNECTS", "NEXT", "REROUTE", "REROUTES", "REROUTES_NOT_READY", "WAIT",
           "Attempts", "Reroutes", "Step", "Waiting", "keyed"]

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
MAX_FAILED_CONNECTS = 2  # per request, over the backends of its pool
REROUTES = 2
REROUTES_NOT_READY = 8
NO_BACKEND_RETRY_AFTER = 5  # seconds, in the 503 of a pool with no backend at all

NEXT: Final = "next"
REROUTE: Final = "reroute"
WAIT: Final = "wait"
Step = Literal["next", "reroute", "wait"] | ProxyError


def keyed(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request carries Idempotency-Key: its sender says it may be sent twice."""
    return any(name == b"idempotency-key" for name, _ in headers)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A request that failed on the backends `tried` with no other left (WAIT): it may go again once
    they left the table, waiting at most --hold or until `back_at` (time.monotonic())."""

    tried: tuple[BackendState, ...]
    error: ProxyError | None  # its answer if nothing changed meanwhile
    back_at: float = math.inf  # when the first of them is back in rotation (inf: not known)


@dataclass(slots=True)
class Attempts:
    """What one request tried on one pool so far, and the rules for what comes next."""

    prefix: str
    method: bytes
    keyed: bool = False  # it carries Idempotency-Key (keyed())
    leaving: bool = False  # its route's backends are containers (Route.source docker:...): they leave by themselves
    waited: bool = False  # it failed on a backend once already and waited (WAIT): never sent again
    tried: list[BackendState] = field(default_factory=list)
    failed: int = 0  # connects that failed (booting ones are not counted)
    unready: bool = False  # a backend tried was booting again
    stale_retried: bool = False
    resent: bool = False  # it failed on a backend after it was sent, and goes again
    back_at: float = math.inf  # WAIT with every backend out of rotation: when the first is back in
    last_error: ProxyError | None = None

    def waiting(self) -> Waiting:
        """What a request that took WAIT carries while it waits (to the trio path's wait, from either path)."""
        return Waiting(tuple(self.tried), self.last_error, self.back_at)

    @property
    def idempotent(self) -> bool:
        return self.keyed or self.method in IDEMPOTENT

    def none_left(self, backends: tuple[BackendState, ...], now: float) -> Step:
        """The pool has no backend left to try: route again, or the answer."""
        if self.unready:
            return REROUTE
        if self.leaving and not self.waited and (self.resent or self.stale_retried or self.failed):
            return WAIT
        if self.last_error is not None:
            return self.last_error
        if not backends:
            return NoBackendAvailable(f"no backend serves {self.prefix!r} now", retry_after=NO_BACKEND_RETRY_AFTER)
        back_at = min(b.down_until for b in backends)
        if not math.isfinite(back_at):  # every one failed its health check: no time to say
            return NoBackendAvailable(f"every backend of {self.prefix!r} fails its health check",
                                      retry_after=NO_BACKEND_RETRY_AFTER)
        if self.leaving and not self.waited:
            # Ejected for failures a moment ago: their containers are likely going.
            self.tried.extend(backends)
            self.back_at = back_at
            return WAIT
        back_in = back_at - now
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
        if self.stale_retried or not self.idempotent:
            return BadGateway(f"backend {backend.address} closed the connection")
        self.stale_retried = True
        return NEXT

    def failed_after_send(self, backend: BackendState, error: ProxyError, *, body_read: bool, now: float) -> Step:
        """`backend` took the request and failed before any response byte (`error`: the 502 to give).

        body_read: a byte of the request's body was read from the client.
        """
        backend.mark_error(now)
        self.tried.append(backend)
        self.last_error = error
        if body_read or not self.idempotent or self.resent or self.waited:
            return error
        self.resent = True
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
