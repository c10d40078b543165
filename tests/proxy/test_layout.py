# The folder draws the architecture: the pure packages (and the pure modules
# of the others) import neither trio nor the docker SDK, so a decision there
# is tested with no event loop and no engine. Each module is imported alone,
# in a fresh interpreter, and what it pulled in is looked at.

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import proxy

PURE_PACKAGES = ["protocol", "routing"]
PURE_MODULES = ["proxy._config", "proxy._errors", "proxy.discovery._model", "proxy.discovery._container",
                "proxy.discovery._errors", "proxy.haproxy._config", "proxy.admin._merge", "proxy.tls._names",
                "proxy.tls._redirect", "proxy.tls._context", "proxy.tls._hello", "proxy.acme._plan", "proxy.acme._store",
                "proxy.acme._tls_alpn"]


def pure_modules() -> list[str]:
    found = list(PURE_MODULES)
    root = Path(proxy.__file__).parent
    for package in PURE_PACKAGES:
        for info in pkgutil.iter_modules([str(root / package)]):
            found.append(f"proxy.{package}.{info.name}")
    return found


def test_every_pure_package_is_listed() -> None:
    # A module added to protocol/ or routing/ is checked without a word here.
    assert "proxy.protocol._head" in pure_modules() and "proxy.routing._decide" in pure_modules()


@pytest.mark.parametrize("module", pure_modules())
def test_a_pure_module_imports_neither_trio_nor_docker(module: str) -> None:
    probe = (f"import sys, {module}; "
             "print(' '.join(m for m in ('trio', 'docker') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} imports {result.stdout.strip()}"


def test_only_the_discovery_client_imports_the_docker_sdk() -> None:
    # The seam the watcher and the waker are tested through (a fake Engine).
    root = Path(proxy.__file__).parent
    importers = sorted(
        str(path.relative_to(root)) for path in root.rglob("*.py")
        if any(line.strip().startswith(("import docker", "from docker"))
               for line in path.read_text().splitlines())
    )
    assert importers == ["discovery/_client.py"]
