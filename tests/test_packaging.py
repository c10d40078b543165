# The distribution as a user gets it: `python -m build` makes the sdist and,
# from the sdist alone, the wheel (the Cython extensions compiled from their
# .pyx, with Cython from the build requirements); the wheel, installed in a
# fresh venv that has no Cython, runs `fastroute --version` and proxies a
# request with every compiled part loaded; installed without the gateway's
# extra, it is the router library alone, with no dependencies. Built from the committed files
# and run from outside the checkout, so nothing comes from the checkout's
# own state.

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastroute import __version__

from .proxy.app.test_serve_cli import Gateway, backends  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[1]
COMPILED_PARTS = ("fastroute.COMPILED", "proxy.protocol._compiled.HEAD_COMPILED",
                  "proxy.protocol._compiled.WIRE_COMPILED", "proxy.protocol._compiled.LANE_COMPILED",
                  "proxy.engine._cycle.CYCLE_COMPILED")


def _clean_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items()
            if name not in ("PYTHONPATH", "FASTROUTE_NO_EXTENSIONS", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # From the committed files only: a checkout's own build state (its
    # egg-info's file list, generated C) must not fill in for what the
    # packaging declares.
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                           capture_output=True, text=True, timeout=1200, env=_clean_env())
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def _venv_with(where: Path, requirement: str) -> Path:
    """A fresh venv at `where` with `requirement` installed (and its dependencies), nothing else."""
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    installed = subprocess.run([str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", requirement],
                               capture_output=True, text=True, timeout=900, cwd=where, env=_clean_env())
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return where


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel with the gateway's extra, as `pip install 'fastroute[gateway]'` gives it."""
    yield _venv_with(tmp_path_factory.mktemp("venv"), f"{next(dist.glob('fastroute-*.whl'))}[gateway]")


@pytest.fixture(scope="module")
def library_venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel alone, as `pip install fastroute` gives it: the router library."""
    yield _venv_with(tmp_path_factory.mktemp("library"), str(next(dist.glob("fastroute-*.whl"))))


def test_the_sdist_holds_the_sources_and_no_generated_code(dist: Path) -> None:
    (sdist,) = dist.glob("fastroute-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    for source in ("fastroute/_table.pyx", "proxy/engine/_cycle_c.pyx", "proxy/engine/_sys.pxd",
                   "proxy/protocol/_bytes.h", "proxy/protocol/_bytes.pxd", "proxy/protocol/_plain_c.pxd",
                   "fastroute/py.typed", "setup.py", "pyproject.toml", "README.md", "ARCHITECTURE.md",
                   "docs/gateway.md"):
        assert source in names
    assert not [name for name in names if name.endswith((".c", ".so"))]
    (wheel,) = dist.glob("fastroute-*.whl")
    assert wheel.name.startswith(f"fastroute-{__version__}-cp3")  # built from that sdist, compiled


def test_the_wheel_runs_with_its_compiled_parts_and_without_cython(venv: Path, tmp_path: Path) -> None:
    python = str(venv / "bin" / "python")
    run = {"capture_output": True, "text": True, "timeout": 120, "cwd": tmp_path, "env": _clean_env()}
    assert subprocess.run([python, "-c", "import Cython"], **run).returncode != 0  # type: ignore[call-overload]
    version = subprocess.run([str(venv / "bin" / "fastroute"), "--version"], **run)  # type: ignore[call-overload]
    assert version.returncode == 0 and version.stdout == f"fastroute {__version__}\n"
    probe = ("import fastroute, proxy, proxy.protocol._compiled, proxy.engine._cycle; "
             f"print(proxy.__file__, {', '.join(COMPILED_PARTS)})")
    loaded = subprocess.run([python, "-W", "error", "-c", probe], **run)  # type: ignore[call-overload]
    assert loaded.returncode == 0, loaded.stderr
    where, *flags = loaded.stdout.split()
    assert where.startswith(str(venv)) and flags == ["True"] * len(COMPILED_PARTS)


def test_the_installed_command_proxies_a_request(venv: Path, backends: list[int], tmp_path: Path) -> None:  # noqa: F811
    gateway = Gateway("--route", f"/=127.0.0.1:{backends[0]}", command=[str(venv / "bin" / "fastroute")], cwd=tmp_path)
    try:
        assert gateway.get("/x") == (200, b"one /x")
    finally:
        code, err = gateway.stop()
    assert code == 0, err


def test_the_wheel_alone_is_the_router_library_with_no_dependencies(library_venv: Path, tmp_path: Path) -> None:
    python = str(library_venv / "bin" / "python")
    run = {"capture_output": True, "text": True, "timeout": 120, "cwd": tmp_path, "env": _clean_env()}
    listed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], **run)  # type: ignore[call-overload]
    installed = {line.split("==")[0] for line in listed.stdout.split()}
    assert installed - {"pip", "setuptools"} == {"fastroute"}  # (what a venv of this Python starts with)
    probe = ("import importlib.util, pickle, fastroute\n"
             "table = fastroute.RouteTable({'/steve/foo': 'a', '/': 'b'})\n"
             "assert table.lookup(b'/steve/foo/x?q') == ('/steve/foo', 'a'), table.lookup(b'/steve/foo/x')\n"
             "assert pickle.loads(pickle.dumps(table)).lookup('/steve/foobar') == ('/', 'b')\n"
             "gone = [m for m in ('trio', 'h11', 'docker') if importlib.util.find_spec(m) is not None]\n"
             "print(fastroute.COMPILED, type(table).__module__, gone)\n")
    used = subprocess.run([python, "-W", "error", "-c", probe], **run)  # type: ignore[call-overload]
    assert used.returncode == 0, used.stderr
    assert used.stdout.split() == ["True", "fastroute._table", "[]"]
    command = str(library_venv / "bin" / "fastroute")
    refused = subprocess.run([command, "serve"], **run)  # type: ignore[call-overload]
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "pip install 'fastroute[gateway]'" in refused.stderr
    version = subprocess.run([command, "--version"], **run)  # type: ignore[call-overload]
    assert version.returncode == 0 and version.stdout == f"fastroute {__version__}\n"
