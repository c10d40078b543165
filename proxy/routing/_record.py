# The record of one request as it goes through the gateway: what the access
# log and the metrics report about it, and the few facts the shell steers by
# once the exchange is under way. Pure data; the shell fills it in.

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Exchange"]


@dataclass(slots=True)
class Exchange:
    """One request's record.

    Reported: method, target, status, bytes both ways, the backend and the
    route's prefix, failed connects. Steered by: whether the response
    started (after that, a failure can only close the client connection),
    whether a request body byte was read (no stale retry then), whether the
    client connection may carry another request, and which phase of the
    response a timeout interrupted.
    """

    started: float  # time.monotonic() when the request head was complete
    method: bytes = b"-"
    target: bytes = b"-"
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    backend: str = "-"
    response_started: bool = False
    body_started: bool = False  # a request body byte was read from the client
    keep_client: bool = True
    route: str = ""  # the matched prefix, for metrics
    connect_errors: int = 0  # failed backend connects (refused, reset, unreachable), for metrics
    connect_timeouts: int = 0  # backend connects that timed out, for metrics
    backend_failures: int = 0  # backends that took the request and failed before any response byte
    protocol: str = "HTTP/1.1"  # what the client spoke: HTTP/1.1 (or 1.0), or HTTP/2
    phase: int = 0  # what the response relay waits on (gateway/_relay.py), so a timeout can say what stalled
