# The values whose shape a type checker cannot be told: JSON decoded from
# the Docker API, from the workers' admin answers or for them. Its shape is
# the sender's, and the code that reads it checks what it uses; a recursive
# union would only move those checks into casts. Any is written here, and
# elsewhere only on a line that says why (tests/proxy/test_layout.py).

from __future__ import annotations

from typing import Any

__all__ = ["Json", "JsonObject"]

Json = Any  # a decoded JSON value: str, int, float, bool, None, or a list or object of them
JsonObject = dict[str, Any]  # a decoded JSON object
