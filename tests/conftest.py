from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import fastroute

from . import docker_support
from .docker_support import DockerLab
from .haproxy_support import HAProxy
from .leak_check import pytest_sessionfinish, pytest_sessionstart, pytest_terminal_summary  # noqa: F401 - hooks
from .skip_reasons import pytest_pyfunc_call, pytest_runtest_makereport  # noqa: F401 - hooks


def _compiled_required() -> bool:
    return os.environ.get("FASTROUTE_REQUIRE_COMPILED", "") not in ("", "0")


def _compiled(module: str, what: str) -> Any:
    """A compiled extension module; skips, or fails under FASTROUTE_REQUIRE_COMPILED=1, when not built."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        reason = f"{what} is not built ({error})"
        if _compiled_required():
            pytest.fail(f"FASTROUTE_REQUIRE_COMPILED=1 but {reason}")
        pytest.skip(reason)


def _compiled_table() -> type:
    return _compiled("fastroute._table", "the compiled RouteTable").RouteTable  # type: ignore[no-any-return]


def compiled_cycle() -> Any:
    """proxy.engine._cycle_c, the compiled engine cycle."""
    return _compiled("proxy.engine._cycle_c", "the compiled engine cycle")


def chosen_compiled_cycle() -> None:
    """Skip unless the engine runs the compiled cycle: built, and not set aside by FASTROUTE_NO_EXTENSIONS."""
    compiled_cycle()
    from proxy.engine._cycle import CYCLE_COMPILED

    if not CYCLE_COMPILED:
        pytest.skip("FASTROUTE_NO_EXTENSIONS is set: the engine runs the pure-Python cycle")


def compiled_head() -> Any:
    """proxy.protocol._head_c, the compiled request-head checks."""
    return _compiled("proxy.protocol._head_c", "the compiled request-head checks")


def compiled_wire() -> Any:
    """proxy.protocol._wire_c, the compiled wire functions of the fast parser."""
    return _compiled("proxy.protocol._wire_c", "the compiled HTTP/1.1 wire functions")


@pytest.fixture(params=["py", "c"])
def wire(request: pytest.FixtureRequest) -> Any:
    """Each implementation of the wire functions: proxy/protocol/_wire.py and its compiled twin."""
    if request.param == "py":
        import proxy.protocol._wire

        return proxy.protocol._wire
    return compiled_wire()


@pytest.fixture(params=["py", "c"])
def table_cls(request: pytest.FixtureRequest) -> type:
    """Each route table implementation: the pure-Python twin and the compiled one."""
    if request.param == "py":
        return fastroute.PyRouteTable
    return _compiled_table()


@pytest.fixture
async def clients_closed() -> AsyncIterator[None]:
    """Closes every helpers.Client and h2_support.H2Client a test opened (used by the proxy tests)."""
    from .h2_support import H2Client
    from .helpers import Client

    yield
    await Client.close_all()
    await H2Client.close_all()


# --- Docker -----------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of a Docker engine that answers.

    Without one, Docker tests skip with the reason; with
    FASTROUTE_REQUIRE_DOCKER=1 (CI), they fail instead.
    """
    try:
        client = docker_support.connect()
    except Exception as error:  # noqa: BLE001 - any failure means "no engine"
        from proxy.discovery._client import engine_address

        reason = (f"no Docker engine answers at {engine_address(None)} ({type(error).__name__}: {error}); "
                  "start one (sudo dockerd), or run make test as root, which does")
        if docker_support.docker_required():
            pytest.fail(f"FASTROUTE_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)
    try:
        yield client
    finally:
        client.close()  # what the run left is found, named and removed by tests/leak_check.py


@pytest.fixture(scope="session")
def backend_image(docker_client: Any) -> str:
    """Tag of the test backend image (busybox httpd FROM scratch, port 8000)."""
    return docker_support.build_backend_image(docker_client)


@pytest.fixture(scope="session")
def docker_network(docker_client: Any) -> Iterator[str]:
    """A bridge network of this test run's own; test containers join it."""
    network = docker_client.networks.create(
        f"{docker_support.NAME_PREFIX}-net", labels={docker_support.RUN_LABEL: docker_support.RUN_ID}
    )
    try:
        yield str(network.name)
    finally:
        for container in docker_client.containers.list(
            all=True, filters={"network": network.id}
        ):
            container.remove(force=True)
        network.remove()


@pytest.fixture
def docker_lab(docker_client: Any, backend_image: str, docker_network: str) -> Iterator[DockerLab]:
    """Starts backend containers for one test; removes them afterwards, pass or fail."""
    with docker_support.lab(docker_client, backend_image, docker_network) as the_lab:
        yield the_lab


# --- HAProxy ------------------------------------------------------------------


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[HAProxy]:
    """A real HAProxy (not started: write its config, then call start()); stopped afterwards."""
    proc = HAProxy(tmp_path)
    try:
        yield proc
    finally:
        proc.stop()
