# Which compiled parts the gateway uses: the request-head checks
# (_head_c.pyx), the wire format of the fast connection (_wire_c.pyx) and
# the native engine's fast lane (_lane_c.pyx), each when built, else its
# pure-Python specification (_head.py, _wire.py, _lane.py), with one warning.
# FASTROUTE_NO_EXTENSIONS=1 forces the Python ones, as it does for the route
# table.

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType
from typing import TYPE_CHECKING

from . import _h2session, _head, _lane, _wire

__all__ = ["H2SESSION_COMPILED", "HEAD_COMPILED", "LANE_COMPILED", "WIRE_COMPILED", "ChunkedDecoder", "H2Session",
           "check_head", "lane_request_head", "lane_response_head", "normalise_path", "parse_response_head",
           "response_framing"]


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
    lane_request_head = _lane.request_head
    lane_response_head = _lane.response_head
    H2Session = _h2session.PyH2Session
    HEAD_COMPILED: bool
    LANE_COMPILED: bool
    WIRE_COMPILED: bool
    H2SESSION_COMPILED: bool
else:
    _h, HEAD_COMPILED = _choose("._head_c", "request-head checks", _head)
    check_head, normalise_path = _h.check_head, _h.normalise_path
    _w, WIRE_COMPILED = _choose("._wire_c", "HTTP/1.1 wire functions", _wire)
    parse_response_head, response_framing, ChunkedDecoder = (
        _w.parse_response_head, _w.response_framing, _w.ChunkedDecoder)
    _l, LANE_COMPILED = _choose("._lane_c", "fast-lane functions", _lane)
    lane_request_head, lane_response_head = _l.request_head, _l.response_head
    # libnghttp2's session is built only where its header was (setup.py): without it HTTP/2 runs on
    # h2's, a build of its own and not a broken one, so no warning here (serve says so at start).
    H2Session, H2SESSION_COMPILED = _h2session.PyH2Session, False
    if os.environ.get("FASTROUTE_NO_EXTENSIONS", "") in ("", "0"):
        try:
            H2Session, H2SESSION_COMPILED = importlib.import_module("._h2session_c", __package__).H2Session, True
        except ImportError:
            pass
