# The protocol package's errors: who broke HTTP/1.1 (h11's split). A request
# the gateway answers itself is a ProxyError (proxy/_errors.py); these are
# what the parsers raise, and the shell translates them once, at its edge.

from __future__ import annotations

__all__ = ["LocalProtocolError", "Refused", "RemoteProtocolError"]


class RemoteProtocolError(Exception):
    """The peer broke HTTP/1.1; `status_hint` is the status to answer a client with."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class LocalProtocolError(Exception):
    """We tried to send something the exchange's state or framing does not allow."""


class Refused(Exception):
    """Not HTTP at all (a TLS ClientHello): close without an answer."""
