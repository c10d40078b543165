# The trio shell's own signals: how one part of a request's handling tells
# another that the exchange cannot go on as planned. None reaches a client
# as such; the connection handler turns each into an action (close, route
# again, retry). The answers a client gets are ProxyErrors (proxy/_errors.py).

from __future__ import annotations

from .._errors import ProxyError
from ..routing._retry import Waiting

__all__ = ["Abort", "BackendLeft", "BackendNotReady", "Resend", "Stale", "Unanswered"]


class Abort(Exception):
    """Close the client connection now; no response can be sent any more."""


class Stale(Exception):
    """A reused upstream connection was dead before it answered."""


class Unanswered(Exception):
    """The backend took the request and failed (reset, closed) before any byte of a response."""

    def __init__(self, error: ProxyError) -> None:
        super().__init__(str(error))
        self.error = error  # the answer if it is not sent again


class Resend(Exception):
    """The request failed on a backend and no other is left: route it again once those tried left the table."""

    def __init__(self, waiting: Waiting) -> None:
        super().__init__(", ".join(str(backend.address) for backend in waiting.tried))
        self.waiting = waiting


class BackendLeft(Exception):
    """The backend was removed from the route table while a connection to it was being opened."""


class BackendNotReady(BackendLeft):
    """Every backend tried refused just after it became ready: booting again, and out of the table."""
