# Which request-head checks the gateway uses: the compiled ones
# (proxy/_head_c.pyx) when built, else the pure-Python specification
# (proxy/_head.py), with one warning. FASTROUTE_NO_EXTENSIONS=1 forces the
# Python ones, as it does for the route table.

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

from . import _head

__all__ = ["HEAD_COMPILED", "check_head", "normalise_path"]

if TYPE_CHECKING:
    check_head = _head.check_head
    normalise_path = _head.normalise_path
    HEAD_COMPILED: bool
elif os.environ.get("FASTROUTE_NO_EXTENSIONS", "") not in ("", "0"):
    check_head, normalise_path, HEAD_COMPILED = _head.check_head, _head.normalise_path, False
else:
    try:
        from ._head_c import check_head, normalise_path
    except ImportError as error:
        warnings.warn(
            f"fastroute: the compiled request-head checks are not built ({error}); using the pure-Python ones",
            RuntimeWarning,
            stacklevel=2,
        )
        check_head, normalise_path, HEAD_COMPILED = _head.check_head, _head.normalise_path, False
    else:
        HEAD_COMPILED = True
