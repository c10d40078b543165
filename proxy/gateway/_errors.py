# The trio shell's own signals: how one part of a request's handling tells
# another that the exchange cannot go on as planned. None reaches a client
# as such; the connection handler turns each into an action (close, route
# again, retry). The answers a client gets are ProxyErrors (proxy/_errors.py).

from __future__ import annotations

__all__ = ["Abort", "BackendLeft", "BackendNotReady", "Stale"]


class Abort(Exception):
    """Close the client connection now; no response can be sent any more."""


class Stale(Exception):
    """A reused upstream connection was dead before it answered."""


class BackendLeft(Exception):
    """The backend was removed from the route table while a connection to it was being opened."""


class BackendNotReady(BackendLeft):
    """Every backend tried refused just after it became ready: booting again, and out of the table."""
