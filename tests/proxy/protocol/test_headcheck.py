# Which request-head checks and wire functions the gateway runs: the
# compiled twins by default, the pure-Python specifications when
# FASTROUTE_NO_EXTENSIONS=1.

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(("environment", "compiled"), [
    pytest.param({}, True, id="default"),
    pytest.param({"FASTROUTE_NO_EXTENSIONS": "1"}, False, id="forced_python"),
])
def test_the_gateway_uses_the_compiled_parts_unless_told_not_to(environment: dict[str, str], compiled: bool) -> None:
    if compiled:
        from ...conftest import compiled_head, compiled_wire

        compiled_head()  # skips (or fails in CI) when not built
        compiled_wire()
    env = {k: v for k, v in os.environ.items() if k != "FASTROUTE_NO_EXTENSIONS"} | environment
    out = subprocess.run(
        [sys.executable, "-c", "import proxy.protocol._compiled as h, proxy.protocol._reader as s, proxy.protocol._fastconn as f; "
         "print(h.HEAD_COMPILED, s.check_head is h.check_head, h.WIRE_COMPILED, "
         "f.parse_response_head is h.parse_response_head, type(f.ChunkedDecoder()).__module__)"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    ).stdout.split()
    assert out == [str(compiled), "True", str(compiled), "True", "proxy.protocol._wire_c" if compiled else "proxy.protocol._wire"]
