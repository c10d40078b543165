from __future__ import annotations

import subprocess
import sys

import fastroute


def fastroute_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=30
    )


def test_version() -> None:
    result = fastroute_cli("--version")

    assert result.returncode == 0
    assert result.stdout.strip() == f"fastroute {fastroute.__version__}"


def test_help() -> None:
    result = fastroute_cli("--help")

    assert result.returncode == 0
    assert result.stdout.startswith("usage: fastroute")
    assert "Docker-aware HTTP gateway" in result.stdout


def test_unknown_flag_is_one_line_on_stderr_and_exit_2() -> None:
    result = fastroute_cli("--no-such-flag")

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "fastroute: error: unrecognized arguments: --no-such-flag (see fastroute --help)"
    ]
    assert result.stdout == ""


def test_console_script_is_installed() -> None:
    import shutil
    from pathlib import Path

    script = shutil.which("fastroute", path=str(Path(sys.executable).parent))
    assert script is not None, "the fastroute console script is not installed next to python"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == f"fastroute {fastroute.__version__}"
