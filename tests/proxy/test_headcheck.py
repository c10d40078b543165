# Which request-head checks the gateway runs: the compiled twin by default,
# the pure-Python specification when FASTROUTE_NO_EXTENSIONS=1.

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("environment", "compiled"), [
    pytest.param({}, True, id="default"),
    pytest.param({"FASTROUTE_NO_EXTENSIONS": "1"}, False, id="forced_python"),
])
def test_the_gateway_uses_the_compiled_checks_unless_told_not_to(environment: dict[str, str], compiled: bool) -> None:
    if compiled:
        from ..conftest import compiled_head

        compiled_head()  # skips (or fails in CI) when not built
    env = {k: v for k, v in os.environ.items() if k != "FASTROUTE_NO_EXTENSIONS"} | environment
    out = subprocess.run(
        [sys.executable, "-c", "import proxy._headcheck as h, proxy._server as s; "
         "print(h.HEAD_COMPILED, s.check_head is h.check_head)"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout.split()
    assert out == [str(compiled), "True"]
