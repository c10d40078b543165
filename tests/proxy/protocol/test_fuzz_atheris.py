# The atheris (libFuzzer) harnesses, bounded for the suite: over the
# request-head checks (tests/fuzz/head_atheris.py) and over the fast
# parser's response side against h11 (tests/fuzz/wire_atheris.py) and over
# the engine's fast lane against its twin (tests/fuzz/lane_atheris.py) and
# over the HTTP/2 session on libnghttp2 (tests/fuzz/h2session_atheris.py) and
# over the engine's compiled HTTP/2 stream (tests/fuzz/h2cycle_atheris.py), each
# 200,000 inputs or 60 s, whichever comes first. By hand, longer: see each
# harness. Without atheris this skips, saying why; with
# FASTROUTE_REQUIRE_ATHERIS=1 (CI sets it: the test extra installs atheris)
# it fails instead. Each harness fuzzes a compiled twin against its
# specification: without that twin built this skips too, as every test of
# compiled code does (or fails, under FASTROUTE_REQUIRE_COMPILED=1).

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ...conftest import _compiled

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
RUNS = int(os.environ.get("FASTROUTE_ATHERIS_RUNS", "200000"))


TWINS = {  # each harness: the compiled twin it fuzzes
    "head_atheris.py": ("proxy.protocol._head_c", "the compiled request-head checks"),
    "wire_atheris.py": ("proxy.protocol._wire_c", "the compiled HTTP/1.1 wire functions"),
    "lane_atheris.py": ("proxy.protocol._lane_c", "the compiled fast lane"),
    "h2session_atheris.py": ("proxy.protocol._h2session_c", "the libnghttp2 HTTP/2 session"),
    "h2cycle_atheris.py": ("proxy.engine._h2cycle_c", "the compiled HTTP/2 stream"),
}


@pytest.mark.parametrize("harness", list(TWINS))
def test_survives_coverage_guided_fuzzing(tmp_path: Path, harness: str) -> None:
    _compiled(*TWINS[harness])
    if importlib.util.find_spec("atheris") is None:
        reason = "atheris is not installed (pip install atheris; x86_64 wheels)"
        if os.environ.get("FASTROUTE_REQUIRE_ATHERIS", "") not in ("", "0"):
            pytest.fail(f"FASTROUTE_REQUIRE_ATHERIS=1 but {reason}")
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, str(FUZZ / harness), f"-runs={RUNS}", "-max_total_time=60",
         f"-dict={FUZZ / 'http.dict'}", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[3],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr and list(tmp_path.iterdir()) == []
