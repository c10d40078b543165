# The HAProxy mode's errors: HAProxy said no, or did not answer.

from __future__ import annotations

__all__ = ["HAProxyError", "MasterUnreachable"]


class HAProxyError(Exception):
    """HAProxy refused a configuration, a reload or a runtime command."""


class MasterUnreachable(HAProxyError):
    """The master CLI socket did not answer a command."""
