# The engine package's errors: a splice's two ways of ending early. Both
# paths catch them (the trio path around gateway/_splice.py, the engine in
# _exchange.py) and close the client connection.

from __future__ import annotations

__all__ = ["SinkFailed", "SourceFailed"]


class SourceFailed(Exception):
    """A splice's source ended or failed before its count of bytes."""


class SinkFailed(Exception):
    """A splice's sink closed or failed."""
