"""fastroute: a longest-prefix route table over URL path segments.

`RouteTable` (and `HostTable`, routes by host name first) is the compiled
(Cython) table when the extension is built, and
the pure-Python twin `PyRouteTable` (`PyHostTable`) otherwise; `COMPILED`
says which.
Set FASTROUTE_NO_EXTENSIONS=1 to force the twin. No I/O, no trio, no docker.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

from ._errors import FastrouteError, InvalidHost, InvalidPrefix
from ._hosts import normalise_host
from ._hosttable_py import PyHostTable
from ._keys import normalise_prefix
from ._table_py import PyRouteTable
from ._version import __version__

__all__ = [
    "COMPILED",
    "FastrouteError",
    "HostTable",
    "InvalidHost",
    "InvalidPrefix",
    "PyHostTable",
    "PyRouteTable",
    "RouteTable",
    "__version__",
    "normalise_host",
    "normalise_prefix",
]


def _extensions_disabled() -> bool:
    return os.environ.get("FASTROUTE_NO_EXTENSIONS", "") not in ("", "0")


if TYPE_CHECKING:
    # Type checkers read the Python twin; the extension has the same API.
    RouteTable = PyRouteTable
    HostTable = PyHostTable
    COMPILED: bool
elif _extensions_disabled():
    RouteTable = PyRouteTable
    HostTable = PyHostTable
    COMPILED = False
else:
    try:
        from ._table import HostTable, RouteTable
    except ImportError as error:
        warnings.warn(
            f"fastroute: the compiled RouteTable is not built ({error}); "
            "using the pure-Python PyRouteTable, which is slower. "
            "Build it with `pip install -e .` or `python setup.py build_ext --inplace`.",
            RuntimeWarning,
            stacklevel=2,
        )
        RouteTable = PyRouteTable
        HostTable = PyHostTable
        COMPILED = False
    else:
        COMPILED = True
