# Pure: merging the workers' admin documents (proxy/admin/_merge.py).

from __future__ import annotations

from typing import Any

import pytest

from prometheus_client.parser import text_string_to_metric_families

from proxy.admin._merge import merge_health, merge_metrics, merge_routes
from proxy._config import Address
from proxy.admin._metrics import render
from proxy.routing._stats import Stats
from proxy.gateway._server import Gateway

from ...helpers import make_config, route


def worker_metrics(observations: list[tuple[str, int, float]], connections: int) -> str:
    gateway = Gateway(make_config())
    gateway.set_routes([route("/a", Address("10.0.0.1", 8000))])
    gateway.stats = Stats()
    for prefix, status, seconds in observations:
        gateway.stats.observe(prefix, status, seconds)
    gateway._connections = set(range(connections))  # type: ignore[arg-type]
    return render(gateway)[0].decode()


def samples(text: str | bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    if isinstance(text, bytes):
        text = text.decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_one_worker_comes_back_unchanged() -> None:
    text = worker_metrics([("/a", 200, 0.002), ("/a", 404, 0.3), ("", 404, 0.001)], connections=3)
    assert merge_metrics([text]).decode() == text


def test_workers_add_up() -> None:
    one = worker_metrics([("/a", 200, 0.002), ("/a", 200, 0.003)], connections=3)
    two = worker_metrics([("/a", 200, 0.2), ("/a", 502, 0.004)], connections=4)
    merged = samples(merge_metrics([one, two]))
    assert merged[("fastroute_requests_total", (("route", "/a"), ("status_class", "2xx")))] == 3
    assert merged[("fastroute_requests_total", (("route", "/a"), ("status_class", "5xx")))] == 1
    assert merged[("fastroute_request_duration_seconds_count", (("route", "/a"),))] == 4
    assert merged[("fastroute_request_duration_seconds_bucket", (("le", "0.005"), ("route", "/a")))] == 3
    assert merged[("fastroute_request_duration_seconds_bucket", (("le", "+Inf"), ("route", "/a")))] == 4
    assert abs(merged[("fastroute_request_duration_seconds_sum", (("route", "/a"),))] - 0.209) < 1e-9
    assert merged[("fastroute_client_connections", ())] == 7
    assert merged[("fastroute_table_swaps_total", ())] == 2


def routes_doc(requests: int, backend: dict[str, Any] | None, unrouted: int = 0) -> dict[str, Any]:
    return {"routes": [{"prefix": "/a", "source": "--route", "strip_prefix": False, "requests": requests,
                        "held_for": None, "booting": backend is None, "wake": [],
                        "backends": [backend] if backend is not None else []}],
            "unrouted_requests": unrouted, "swaps": 1}


def backend(address: str, state: str = "up", in_flight: int = 0, idle: int = 0, failures: int = 0) -> dict[str, Any]:
    return {"address": address, "container": None, "state": state, "in_flight": in_flight,
            "in_flight_all_routes": in_flight, "idle_connections": idle, "failures": failures}


def test_warnings_are_listed_once_whichever_worker_has_them() -> None:
    one, two = routes_doc(1, None), routes_doc(1, None)
    one["warnings"] = ["container a (1): label x ignored", "container b (2) skipped: y"]
    two["warnings"] = ["container b (2) skipped: y", "container c (3) skipped: z"]
    assert merge_routes([one, two])["warnings"] == ["container a (1): label x ignored", "container b (2) skipped: y",
                                                    "container c (3) skipped: z"]


def test_routes_add_up_by_prefix_and_backend() -> None:
    merged = merge_routes([
        routes_doc(3, backend("10.0.0.1:8000", in_flight=1, idle=2), unrouted=1),
        routes_doc(4, backend("10.0.0.1:8000", state="ejected", in_flight=2, idle=1, failures=3), unrouted=2),
    ])
    assert merged["workers"] == 2 and merged["unrouted_requests"] == 3 and merged["swaps"] == 2
    (only,) = merged["routes"]
    assert only["requests"] == 7
    assert only["backends"] == [backend("10.0.0.1:8000", state="ejected", in_flight=3, idle=3, failures=3)]


def test_answers_latency_bytes_and_histories_add_up_slot_by_slot() -> None:
    from proxy.routing._stats import BUCKETS

    def answered(end: int, requests: list[int], buckets: list[int], connections: int) -> dict[str, Any]:
        document = routes_doc(sum(requests), backend("10.0.0.1:8000"))
        document["routes"][0].update(status={"2xx": sum(requests)}, bytes_in=1, bytes_out=10,
                                     latency_buckets=buckets, history={"requests": requests, "errors": [0] * 4})
        document.update(history_end=end, history_slot=5.0,
                        gateway={"version": "x", "started": 100.0 + end, "uptime": 10.0 - end,
                                 "connections": connections, "listen": [], "timeouts": {}, "io": "native"})
        return document

    fast = [4] + [0] * len(BUCKETS)  # 4 answers under 5 ms
    slow = [0] * 6 + [4] + [0] * (len(BUCKETS) - 6)  # 4 between 0.25 and 0.5 s
    # The second worker answered a moment earlier, in the slot before: its points are one slot older.
    merged = merge_routes([answered(9, [1, 2, 3, 4], fast, 2), answered(8, [5, 6, 7, 8], slow, 3)])
    (route,) = merged["routes"]
    assert route["history"]["requests"] == [1 + 6, 2 + 7, 3 + 8, 4 + 0] and merged["history_end"] == 9
    assert route["status"] == {"2xx": 36} and (route["bytes_in"], route["bytes_out"]) == (2, 20)
    assert route["p50"] == pytest.approx(0.005) and 0.25 < route["p99"] <= 0.5  # from the summed buckets
    assert merged["gateway"]["connections"] == 5 and merged["gateway"]["uptime"] == 2.0


@pytest.mark.parametrize("order", [1, -1], ids=["ejected_first", "ejected_last"])
def test_a_backends_state_is_the_worst_any_worker_has(order: int) -> None:
    states = [("up", None), ("ejected", 4.0), ("ejected", 2.5), ("retrying", None), ("up", None)][::order]
    merged = merge_routes([routes_doc(1, {**backend("10.0.0.1:8000", state=state), "retry_in": retry_in})
                           for state, retry_in in states])
    ((only,),) = [route["backends"] for route in merged["routes"]]
    assert only["state"] == "ejected" and only["retry_in"] == 4.0
    calmer = merge_routes([routes_doc(1, {**backend("10.0.0.1:8000", state=state), "retry_in": None})
                           for state in ("up", "retrying", "up")])
    assert calmer["routes"][0]["backends"][0]["state"] == "retrying"


def test_a_route_is_booting_only_while_no_worker_has_a_backend_ready() -> None:
    assert merge_routes([routes_doc(0, None), routes_doc(0, None)])["routes"][0]["booting"] is True
    (route,) = merge_routes([routes_doc(0, None), routes_doc(0, backend("10.0.0.1:8000"))])["routes"]
    assert route["booting"] is False and len(route["backends"]) == 1


def test_a_backend_only_one_worker_knows_is_listed() -> None:
    merged = merge_routes([routes_doc(1, backend("10.0.0.1:8000")), routes_doc(1, backend("10.0.0.2:8000"))])
    assert [b["address"] for b in merged["routes"][0]["backends"]] == ["10.0.0.1:8000", "10.0.0.2:8000"]


def test_health_is_200_only_when_every_worker_serves() -> None:
    serving = (200, {"status": "serving", "routes": 2, "docker": None})
    draining = (503, {"status": "draining", "routes": 2, "docker": None})
    assert merge_health([serving, serving]) == (
        200, {"status": "serving", "routes": 2, "docker": None, "workers": {"serving": 2, "total": 2}})
    assert merge_health([serving, None])[0] == 503
    assert merge_health([serving, None])[1]["status"] == "degraded"
    assert merge_health([serving, draining])[1]["status"] == "draining"
    assert merge_health([None, None])[1] == {"status": "degraded", "routes": 0, "docker": None,
                                             "workers": {"serving": 0, "total": 2}}


def test_requests_by_protocol_add_up_across_workers() -> None:
    one, two = routes_doc(1, None), routes_doc(1, None)
    one["protocols"] = {"HTTP/1.1": 3, "HTTP/2": 1}
    two["protocols"] = {"HTTP/2": 4, "HTTP/1.0": 1}
    assert merge_routes([one, two])["protocols"] == {"HTTP/1.0": 1, "HTTP/1.1": 3, "HTTP/2": 5}
