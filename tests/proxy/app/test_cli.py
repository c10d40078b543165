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


def test_health_check_flags_check_a_route_and_bad_ones_are_one_line() -> None:
    from proxy._config import HealthCheck
    from proxy.app._cli import build_parser, config_from_args

    args = build_parser().parse_args(["serve", "--route", "/a=127.0.0.1:9", "--route", "/b=127.0.0.1:9",
                                      "--health-check", "/a=/healthz", "--health-check-interval", "0.5",
                                      "--health-check-timeout", "0.25"])
    routes = {r.prefix: r.check for r in config_from_args(args).routes}
    assert routes == {"/a": HealthCheck("/healthz", 0.5, 0.25), "/b": None}
    for flags, words in ((["--health-check", "/c=/h"], "no --route serves '/c'"),
                         (["--health-check", "/a"], "expected [HOST]PREFIX=PATH"),
                         (["--health-check", "/a=/h", "--health-check-timeout", "9"], "longer than its interval")):
        result = fastroute_cli("serve", "--no-docker", "--route", "/a=127.0.0.1:9", *flags)
        assert result.returncode == 1 and result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
