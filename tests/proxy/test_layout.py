# The folder draws the architecture: the pure packages (and the pure modules
# of the others) import neither trio nor the docker SDK, so a decision there
# is tested with no event loop and no engine. Each module is imported alone,
# in a fresh interpreter, and what it pulled in is looked at.
#
# And the code keeps a shape a newcomer can change safely (issue 39, "the
# engine's house"): no module in proxy/ or fastroute/ over MAX_LINES, no
# function over MAX_FUNCTION_LINES, no import cycle between modules or
# packages (TYPE_CHECKING imports counted). What exceeds a bound today is
# listed with its reason; the lists only shrink: a new excess fails, and so
# does a listed one that is gone (take it off the list).

from __future__ import annotations

import ast
import pkgutil
import re
import subprocess
import sys
from collections.abc import Iterator
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
    # The seam the watcher and the waker are tested through (a fake DockerApi).
    root = Path(proxy.__file__).parent
    importers = sorted(
        str(path.relative_to(root)) for path in root.rglob("*.py")
        if any(line.strip().startswith(("import docker", "from docker"))
               for line in path.read_text().splitlines())
    )
    assert importers == ["discovery/_client.py"]


ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("proxy", "fastroute")
MAX_LINES = 500
MAX_FUNCTION_LINES = 60

LONG_MODULES: dict[str, str] = {}  # a module that must stay longer, with the reason
# The compiled inner loops that stay longer, each one pass over the bytes
# with its offsets in C locals (arrays on the stack): split, each piece
# would take a dozen of them as arguments, or re-scan.
ONE_PASS = "one pass over the head's bytes, its offsets in C locals on the stack"
LONG_FUNCTIONS = {
    "proxy/protocol/_lane_c.pyx:_scan": ONE_PASS,
    "proxy/protocol/_plain_c.pyx:scan_plain": ONE_PASS,
    "proxy/protocol/_wire_c.pyx:next": "the body framing's state machine (length, chunk size, trailers), one step a call",
}
# Each a strongly connected set of modules, or of packages (imports one way
# or another, TYPE_CHECKING ones too).
IMPORT_CYCLES: dict[frozenset[str], str] = {}
PACKAGE_CYCLES: dict[frozenset[str], str] = {}


def sources() -> Iterator[Path]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix in (".py", ".pyx", ".pxd") and "build" not in path.parts:
                yield path


def name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_no_module_is_longer_than_the_bound() -> None:
    long = {name(p) for p in sources() if len(p.read_text().splitlines()) > MAX_LINES}
    assert long - set(LONG_MODULES) == set(), f"over {MAX_LINES} lines"
    assert set(LONG_MODULES) - long == set(), "no longer over the bound: take it off LONG_MODULES"


def functions(path: Path) -> Iterator[tuple[str, int]]:
    """(name, lines) of every function of a module: by its syntax tree, or for Cython by indentation."""
    text = path.read_text()
    if path.suffix == ".py":
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno is not None
                yield node.name, node.end_lineno - node.lineno + 1
        return
    lines = text.splitlines()
    header = re.compile(r"^(\s*)(?:async\s+)?(?:def|cdef|cpdef)\s+(?:[\w.\[\]]+\s+)*?(\w+)\s*\(")
    for start, line in enumerate(lines):
        found = header.match(line)
        if found is None:
            continue
        indent = len(found.group(1))
        end = start + 1
        while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
            end += 1
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        if end - start > 1:  # a declaration alone (a .pxd, a cdef attribute) has no body
            yield found.group(2), end - start


def test_no_function_is_longer_than_the_bound() -> None:
    long = {f"{name(p)}:{function}" for p in sources() if p.suffix != ".pxd"
            for function, count in functions(p) if count > MAX_FUNCTION_LINES}
    assert long - set(LONG_FUNCTIONS) == set(), f"over {MAX_FUNCTION_LINES} lines"
    assert set(LONG_FUNCTIONS) - long == set(), "no longer over the bound: take it off LONG_FUNCTIONS"


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The modules of ours that `path` imports, anywhere in it (under TYPE_CHECKING too)."""
    me = module_of(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    if path.suffix != ".py":
        tree_text = "\n".join(line for line in path.read_text().splitlines()
                              if re.match(r"\s*(from|import)\s", line) and " cimport " not in line)
    else:
        tree_text = path.read_text()
    try:
        tree = ast.parse(tree_text)
    except SyntaxError:
        return found
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != me and target in modules and not me.startswith(target + "."):
                found.add(target)
    return found


def module_graph() -> dict[str, set[str]]:
    paths = {module_of(p): p for p in sources() if p.suffix in (".py", ".pyx")}
    return {m: imports(p, set(paths)) for m, p in paths.items()}


def package_graph() -> dict[str, set[str]]:
    """The same imports between packages (proxy.app -> proxy.acme), a package's own left out."""
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for module, targets in module_graph().items():
        graph.setdefault(package(module), set()).update(package(t) for t in targets if package(t) != package(module))
    return graph


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected sets of `graph` (Tarjan's algorithm) of more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            member = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                member.add(top)
                if top == node:
                    break
            if len(member) > 1:
                found.add(frozenset(member))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_between_modules() -> None:
    found = cycles(module_graph())
    assert found - set(IMPORT_CYCLES) == set(), "import cycles (TYPE_CHECKING imports counted)"
    assert set(IMPORT_CYCLES) - found == set(), "no longer a cycle: take it off IMPORT_CYCLES"


def test_no_import_cycle_between_packages() -> None:
    found = cycles(package_graph())
    assert found - set(PACKAGE_CYCLES) == set(), "import cycles between packages (TYPE_CHECKING imports counted)"
    assert set(PACKAGE_CYCLES) - found == set(), "no longer a cycle: take it off PACKAGE_CYCLES"


# Any says "a type checker cannot be told": it is written in proxy/_json.py
# (decoded JSON) and elsewhere only on a line that says why ("# Any: ...").
ANY_HOME = "proxy/_json.py"


def unexplained_any(path: Path) -> list[int]:
    """The lines of `path` that use Any without saying why (imports and comments aside)."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        if re.search(r"\bAny\b", code) and not code.lstrip().startswith(("from typing import", "import ")) \
                and "# Any: " not in line:
            found.append(number)
    return found


def test_any_only_where_a_type_cannot_be_written_and_says_why() -> None:
    unexplained = [f"{name(path)}:{number}" for path in sources() if path.suffix == ".py" and name(path) != ANY_HOME
                   for number in unexplained_any(path)]
    assert unexplained == [], "Any without '# Any: <why>' (or a type from proxy/_json.py)"


def test_the_checks_can_fail(tmp_path: Path) -> None:
    # The function scanner sees a long Cython function, and the cycle finder a cycle.
    pyx = tmp_path / "long.pyx"
    pyx.write_text("cdef int f(int x) except -1:\n" + "    x += 1\n" * 70 + "\ndef g():\n    pass\n")
    assert dict(functions(pyx)) == {"f": 71, "g": 2}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}
    # And the Any scanner an unexplained one.
    typed = tmp_path / "typed.py"
    typed.write_text("from typing import Any\n\nx: Any = 1  # Any: said\ny: Any = 2  # not said\n# Any in a comment\n")
    assert unexplained_any(typed) == [4]
