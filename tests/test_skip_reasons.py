# Every skip says why (tests/skip_reasons.py), in a run of its own: a skip
# from inside a trio nursery keeps its reason, and a skip with none fails.

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFTEST = "from tests.skip_reasons import pytest_pyfunc_call, pytest_runtest_makereport\n"

TESTS = '''
import pytest
import trio


async def test_skipped_inside_a_nursery():
    async with trio.open_nursery():
        pytest.skip("the reason from inside")


def test_skipped_with_a_reason():
    pytest.skip("a plain reason")


def test_skipped_without_one():
    pytest.skip()
'''


def test_skips_say_why_and_a_silent_one_fails(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_skips.py").write_text(TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", str(tmp_path)],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 failed, 2 skipped" in output
    assert "test_skips.py:8: the reason from inside" in output
    assert "test_skips.py:12: a plain reason" in output
    assert "test_skips.py::test_skipped_without_one skipped without saying why" in output
