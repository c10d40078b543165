# Pure: active health checks (routing/_health.py and the check's settings
# in _config.py): what passes, when a backend leaves and returns, and how a
# check is written in labels and in the routes file.

from __future__ import annotations

import math
from pathlib import Path

import pytest

from proxy._config import Address, Discovery, HealthCheck, Route, health_check, load_routes_file
from proxy._errors import ConfigError
from proxy.discovery._container import parse_container
from proxy.routing._health import FALL, RISE, checks, passes, record, request, status_of
from proxy.routing._pool import BackendState, Registry
from proxy.routing._retry import Attempts

A = Address("10.0.0.1", 8000)


@pytest.mark.parametrize(("data", "status"), [
    pytest.param(b"HTTP/1.1 200 OK\r\n", 200, id="ok"),
    pytest.param(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\n", 503, id="down"),
    pytest.param(b"HTTP/1.1 204\r\n", 204, id="no_reason"),
    pytest.param(b"HTTP/1.1 20", None, id="not_whole_yet"),
    pytest.param(b"SSH-2.0-OpenSSH\r\n", 0, id="not_http"),
    pytest.param(b"HTTP/1.1 2000 x\r\n", 0, id="bad_code"),
])
def test_status_of(data: bytes, status: int | None) -> None:
    assert status_of(data) == status


@pytest.mark.parametrize(("status", "ok"), [(200, True), (204, True), (302, True), (399, True), (404, False),
                                            (500, False), (0, False), (None, False)])
def test_2xx_and_3xx_pass(status: int | None, ok: bool) -> None:
    assert passes(status) is ok


def test_fall_failures_take_a_backend_out_and_rise_passes_bring_it_back() -> None:
    state = BackendState(A)
    for _ in range(FALL - 1):
        assert record(state, False, 1.0) is False and state.is_up(1.0)
    assert record(state, False, 2.0) is True
    assert (state.check_down, state.status(2.0), state.is_up(1e9), state.down_since) == (True, "unhealthy", False, 2.0)
    # A request that began before it went out ends well: it stays out.
    state.mark_ok()
    assert not state.is_up(3.0)
    # A pass, a failure, then RISE passes in a row: back.
    record(state, True, 4.0)
    record(state, False, 5.0)
    for _ in range(RISE - 1):
        assert record(state, True, 6.0) is False
    assert record(state, True, 7.0) is True
    assert (state.check_down, state.status(7.0), state.is_up(7.0), state.last_check) == (False, "up", True, 7.0)


def test_a_backend_out_by_its_check_gets_a_503_with_a_finite_retry_after() -> None:
    state = BackendState(A)
    for _ in range(FALL):
        record(state, False, 1.0)
    assert state.down_until == math.inf
    state.mark_failed(2.0)  # passive ejection does not shorten it
    assert state.down_until == math.inf
    answer = Attempts("/a", b"GET").none_left((state,), 3.0)
    assert getattr(answer, "retry_after", None) == 5 and "health check" in str(answer)


def test_checks_are_what_the_routes_ask_for() -> None:
    check = HealthCheck("/healthz", 1.0, 0.5)
    registry = Registry()
    pools, _ = registry.build([Route("/a", (A,), check=check), Route("/b", (Address("10.0.0.2", 8000),))])
    assert list(checks(pools.values())) == [(A, check)]
    assert request(check, A).startswith(b"GET /healthz HTTP/1.1\r\nHost: 10.0.0.1:8000\r\n")


@pytest.mark.parametrize(("labels", "expected"), [
    pytest.param({}, None, id="none"),
    pytest.param({"fastroute.healthcheck.path": "/healthz"}, HealthCheck("/healthz", 5.0, 2.0), id="defaults"),
    pytest.param({"fastroute.healthcheck.path": "/up?full=1", "fastroute.healthcheck.interval": "0.5",
                  "fastroute.healthcheck.timeout": "0.2"}, HealthCheck("/up?full=1", 0.5, 0.2), id="all"),
])
def test_labels_give_the_check(labels: dict[str, str], expected: HealthCheck | None) -> None:
    summary = {"Id": "c1", "Names": ["/web"], "Image": "team/web", "Labels": labels, "State": "running",
               "Status": "Up", "NetworkSettings": {"Networks": {"net": {"IPAddress": "10.0.0.1"}}}}
    container = parse_container(summary, Discovery())
    assert container is not None and container.skip is None and container.check == expected


@pytest.mark.parametrize(("labels", "words"), [
    pytest.param({"fastroute.healthcheck.path": "healthz"}, "must start with '/'", id="relative"),
    pytest.param({"fastroute.healthcheck.path": "/a b"}, "URL characters", id="space"),
    pytest.param({"fastroute.healthcheck.path": "/x'y"}, "URL characters", id="quote"),
    pytest.param({"fastroute.healthcheck.path": "/h", "fastroute.healthcheck.interval": "soon"}, "interval",
                 id="interval"),
    pytest.param({"fastroute.healthcheck.path": "/h", "fastroute.healthcheck.timeout": "9"},
                 "longer than its interval", id="timeout_past_interval"),
    pytest.param({"fastroute.healthcheck.interval": "1"}, "needs fastroute.healthcheck.path", id="no_path"),
])
def test_a_bad_check_label_routes_the_container_unchecked_saying_why(labels: dict[str, str], words: str) -> None:
    summary = {"Id": "c1", "Names": ["/web"], "Image": "team/web", "Labels": labels, "State": "running",
               "Status": "Up", "NetworkSettings": {"Networks": {"net": {"IPAddress": "10.0.0.1"}}}}
    container = parse_container(summary, Discovery())
    assert container is not None and container.skip is None and container.check is None
    assert words in container.ignored[0]


def test_the_routes_file_gives_the_check(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text('[[routes]]\nprefix = "/a"\nbackends = ["10.0.0.1:8000"]\n'
                    'health_check = {path = "/healthz", interval = 1, timeout = 0.5}\n'
                    '[[routes]]\nprefix = "/b"\nbackends = ["10.0.0.2:8000"]\n')
    a, b = load_routes_file(path)
    assert (a.check, b.check) == (HealthCheck("/healthz", 1.0, 0.5), None)
    path.write_text('[[routes]]\nprefix = "/a"\nbackends = ["10.0.0.1:8000"]\nhealth_check = {interval = 1}\n')
    with pytest.raises(ConfigError, match="'health_check' must be a table with 'path'"):
        load_routes_file(path)
    path.write_text('[[routes]]\nprefix = "/a"\nbackends = ["10.0.0.1:8000"]\nhealth_check = {path = "/h", '
                    'interval = true}\n')
    with pytest.raises(ConfigError, match="interval True"):
        load_routes_file(path)


@pytest.mark.parametrize(("interval", "timeout", "expected"), [
    pytest.param("1", None, 1.0, id="interval_shorter_than_the_default"),
    pytest.param("5", None, 2.0, id="default"),
    pytest.param("5", "4", 4.0, id="given"),
])
def test_the_timeout_follows_the_interval_unless_given(interval: str, timeout: str | None, expected: float) -> None:
    labels = {"fastroute.healthcheck.path": "/h", "fastroute.healthcheck.interval": interval}
    if timeout is not None:
        labels["fastroute.healthcheck.timeout"] = timeout
    summary = {"Id": "c1", "Names": ["/web"], "Image": "team/web", "Labels": labels, "State": "running",
               "Status": "Up", "NetworkSettings": {"Networks": {"net": {"IPAddress": "10.0.0.1"}}}}
    container = parse_container(summary, Discovery())
    assert container is not None and container.ignored == ()
    assert container.check == HealthCheck("/h", float(interval), expected)


def test_health_check_validates_its_numbers() -> None:
    assert health_check("/h", "2", 1, where="x") == HealthCheck("/h", 2.0, 1.0)
    assert health_check("/h", 0.5, where="x") == HealthCheck("/h", 0.5, 0.5)
    with pytest.raises(ValueError, match="x: health check interval 0"):
        health_check("/h", 0, where="x")


def test_a_backend_no_check_watches_any_more_is_in_rotation_again() -> None:
    from proxy.routing._health import forget

    state = BackendState(A)
    for _ in range(FALL):
        record(state, False, 1.0)
    forget(state)
    assert state.is_up(2.0) and state.status(2.0) == "up"
