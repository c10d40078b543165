# Whether the engine's compiled cycle (_cycle_c.pyx) is in use: built, and
# not turned off with FASTROUTE_NO_EXTENSIONS=1. The loop, its idle batches
# and the cycle's choice of class ask here; it imports no other module of
# the engine, so none of them imports another for it.

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

__all__ = ["CYCLE_C", "CYCLE_COMPILED", "compiled"]


def compiled(name: str, what: str) -> ModuleType | None:
    """The engine's compiled module `name` (`what` it is, for the warning), or None."""
    if os.environ.get("FASTROUTE_NO_EXTENSIONS", "") not in ("", "0"):
        return None
    try:
        # By name: a type checker does not read compiled modules, and would see none here.
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError as error:
        warnings.warn(f"fastroute: {what} is not built ({error}); using the general path only",
                      RuntimeWarning, stacklevel=2)
        return None


CYCLE_C = compiled("_cycle_c", "the compiled engine cycle")  # the compiled module, or None
CYCLE_COMPILED = CYCLE_C is not None
