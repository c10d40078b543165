"""Exceptions shared by the compiled table and its pure-Python twin."""

from __future__ import annotations

__all__ = ["FastrouteError", "InvalidHost", "InvalidPrefix"]


class FastrouteError(Exception):
    """Base class of every error the fastroute router raises."""


class InvalidPrefix(FastrouteError, ValueError):
    """A route prefix cannot be used as a key of a route table.

    Attributes:
        prefix: the key as the caller gave it.
        reason: what is wrong with it, as a short phrase.
    """

    def __init__(self, prefix: object, reason: str) -> None:
        self.prefix = prefix
        self.reason = reason
        super().__init__(f"invalid route prefix {prefix!r}: {reason}")


class InvalidHost(FastrouteError, ValueError):
    """A host name cannot be used as a key of a host table.

    Attributes:
        host: the key as the caller gave it.
        reason: what is wrong with it, as a short phrase.
    """

    def __init__(self, host: object, reason: str) -> None:
        self.host = host
        self.reason = reason
        super().__init__(f"invalid route host {host!r}: {reason}")
