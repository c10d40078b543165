# Which implementation `import fastroute` picks, in fresh interpreters.

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import fastroute

from ..conftest import _compiled_required

# Hides fastroute._table from the import system, as if it was never built.
HIDE_EXTENSION = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "fastroute._table":
            raise ImportError("hidden by the test")
sys.meta_path.insert(0, Hide())
"""

REPORT = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import fastroute
    import fastroute  # a second import must not warn again
print(fastroute.COMPILED, fastroute.RouteTable.__name__, fastroute.RouteTable.__module__)
print(fastroute.RouteTable({"/a": 1}).lookup("/a/b"))
for w in caught:
    print("WARNING", w.category.__name__, w.message)
"""


def run(code: str, **env: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FASTROUTE_")}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def test_the_extension_is_in_use_when_ci_requires_it() -> None:
    if not _compiled_required():
        pytest.skip("FASTROUTE_REQUIRE_COMPILED is not set")
    assert fastroute.COMPILED is True
    assert fastroute.RouteTable.__module__ == "fastroute._table"


def test_compiled_by_default_when_built() -> None:
    try:
        import fastroute._table  # noqa: F401
    except ImportError:
        pytest.skip("the extension is not built")
    lines = run(REPORT)

    assert lines[0] == "True RouteTable fastroute._table"
    assert lines[1] == "('/a', 1)"
    assert not [line for line in lines if line.startswith("WARNING")]


@pytest.mark.parametrize("value", ["1", "yes"])
def test_environment_variable_forces_the_twin_without_warning(value: str) -> None:
    lines = run(REPORT, FASTROUTE_NO_EXTENSIONS=value)

    assert lines[0] == "False PyRouteTable fastroute._table_py"
    assert lines[1] == "('/a', 1)"
    assert not [line for line in lines if line.startswith("WARNING")]


def test_missing_extension_falls_back_and_warns_once() -> None:
    lines = run(HIDE_EXTENSION + REPORT)

    assert lines[0] == "False PyRouteTable fastroute._table_py"
    assert lines[1] == "('/a', 1)"
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert len(warnings) == 1
    assert "RuntimeWarning" in warnings[0] and "not built" in warnings[0]


def test_router_library_imports_neither_trio_nor_docker() -> None:
    lines = run(
        "import sys, fastroute, fastroute._table_py\n"
        "print(sorted(m for m in ('trio', 'docker', 'h11', 'proxy') if m in sys.modules))"
    )

    assert lines == ["[]"]
