# Which compiled parts the gateway uses: the request-head checks
# (proxy/_head_c.pyx) and the wire format of the fast connection
# (proxy/_wire_c.pyx), each when built, else its pure-Python specification
# (proxy/_head.py, proxy/_wire.py), with one warning.
# FASTROUTE_NO_EXTENSIONS=1 forces the Python ones, as it does for the route
# table.

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType
from typing import TYPE_CHECKING

from . import _head, _wire

__all__ = ["HEAD_COMPILED", "WIRE_COMPILED", "ChunkedDecoder", "check_head", "normalise_path",
           "parse_response_head", "response_framing"]


def _choose(name: str, what: str, fallback: ModuleType) -> tuple[ModuleType, bool]:
    if os.environ.get("FASTROUTE_NO_EXTENSIONS", "") not in ("", "0"):
        return fallback, False
    try:
        return importlib.import_module(name, __package__), True
    except ImportError as error:
        warnings.warn(f"fastroute: the compiled {what} are not built ({error}); using the pure-Python ones",
                      RuntimeWarning, stacklevel=3)
        return fallback, False


if TYPE_CHECKING:
    check_head = _head.check_head
    normalise_path = _head.normalise_path
    parse_response_head = _wire.parse_response_head
    response_framing = _wire.response_framing
    ChunkedDecoder = _wire.ChunkedDecoder
    HEAD_COMPILED: bool
    WIRE_COMPILED: bool
else:
    _h, HEAD_COMPILED = _choose("._head_c", "request-head checks", _head)
    check_head, normalise_path = _h.check_head, _h.normalise_path
    _w, WIRE_COMPILED = _choose("._wire_c", "HTTP/1.1 wire functions", _wire)
    parse_response_head, response_framing, ChunkedDecoder = (
        _w.parse_response_head, _w.response_framing, _w.ChunkedDecoder)
