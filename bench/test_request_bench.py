# Per-request overhead of the gateway's HTTP work, in process, no sockets,
# for each --parser side by side: check the client's head (_head.py; h11
# then parses it again, the fast connection takes it as checked), choose the
# route, rewrite the headers, write the upstream request, parse the
# backend's response, rewrite and write it for the client. `make bench`;
# figures in bench/README.md.

from __future__ import annotations

import sys
from pathlib import Path

from typing import Any

import h11
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from routes_data import make_routes  # noqa: E402

from fastroute import HostTable  # noqa: E402
from proxy._config import Address, Limits, Route  # noqa: E402
from proxy.routing._decide import lookup_route  # noqa: E402
from proxy.protocol._head import check_head as check_head_py  # noqa: E402
from proxy.protocol._head import find_head  # noqa: E402
from proxy.protocol._compiled import (  # noqa: E402
    HEAD_COMPILED, LANE_COMPILED, WIRE_COMPILED, check_head, lane_request_head, lane_response_head,
)
from proxy.protocol._fastconn import FastConnection  # noqa: E402
from proxy.gateway._http import PARSERS  # noqa: E402
from proxy.protocol import _events as ev  # noqa: E402
from proxy.routing._pool import Registry  # noqa: E402
from proxy.protocol._rewrite import request_headers, response_headers  # noqa: E402

# A browser-like request, as h11's own benchmarks use "realistic headers".
REQUEST = (
    b"GET /steve/foo/api/items?page=2 HTTP/1.1\r\n"
    b"Host: gateway.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=3f9a7c2e1b; theme=dark\r\n"
    b"\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Server: nginx\r\nDate: Fri, 27 Nov 2026 18:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 19\r\nConnection: keep-alive\r\n\r\n"
    b"hello from backend\n"
)
LIMITS = Limits()
MAX_HEAD = 64 * 1024


def table_of(size: int) -> HostTable:
    routes = [Route(prefix, (Address("10.0.0.1", 8000),)) for prefix in make_routes(size)]
    routes.append(Route("/steve/foo", (Address("10.0.0.2", 8000),)))
    values, _ = Registry().build(routes)
    return HostTable(values)


def routed(table: HostTable, parser: Any) -> tuple[Any, ev.Request, Any]:
    """The client side of one request, checked and routed: (its connection, the request, the backend)."""
    end = find_head(REQUEST, LIMITS)
    head = check_head(REQUEST[:end], LIMITS)
    server, request = parser.for_request(head, b"", max_head=MAX_HEAD)
    server.next_event()  # EndOfMessage
    prefix, pool = lookup_route(table, request.target, b"gateway.test")
    return server, request, pool.backends[0]


def proxy_once(table: HostTable, parser: Any, upstream: Any) -> bytes:
    """One proxied request's HTTP work through `parser` (FastConnection or H11Connection)."""
    server, request, backend = routed(table, parser)
    headers = request_headers(request.headers, client_ip="192.0.2.7", trusted=False, upstream_host=backend.host_header)
    up = upstream.send(ev.Request(request.method, request.target, headers)) + upstream.send(ev.END_OF_MESSAGE)
    upstream.receive_data(RESPONSE)
    response = upstream.next_event()
    body = upstream.next_event()
    upstream.next_event()  # EndOfMessage
    send = server.send
    down = send(ev.Response(response.status_code, response_headers(response.headers), response.reason))
    down += send(ev.Data(body.data)) + send(ev.END_OF_MESSAGE)
    upstream.start_next_cycle()
    return up + down


@pytest.mark.parametrize("parser", ["fast", "h11"])
def test_proxy_one_request(benchmark, parser: str) -> None:  # type: ignore[no-untyped-def]
    """The per-request overhead of each --parser, side by side (group "per request, by parser")."""
    if parser == "fast" and not (HEAD_COMPILED and WIRE_COMPILED):
        pytest.skip("the compiled parts are not built")
    table = table_of(1000)
    cls = PARSERS[parser]
    benchmark.group = "per request, by parser"
    out = benchmark(proxy_once, table, cls, cls.client(max_head=MAX_HEAD))
    assert b"hello from backend" in out and b"x-forwarded-for: 192.0.2.7" in out


def proxy_once_lane(table: HostTable) -> bytes:
    """The same request's HTTP work on the native engine's lane (protocol/_lane.py)."""
    _, request, backend = routed(table, FastConnection)
    up = lane_request_head(request.method, request.target, request.headers, client_ip=b"192.0.2.7",
                           upstream_host=backend.host_header, prefix=None, allow_underscores=False)
    end = RESPONSE.find(b"\r\n\r\n") + 4
    status, length, keep, down = lane_response_head(RESPONSE[:end])
    return up + down + RESPONSE[end:end + length]


@pytest.mark.parametrize("path", ["trio", "native"])
def test_proxy_one_request_by_path(benchmark, path: str) -> None:  # type: ignore[no-untyped-def]
    """The per-request HTTP work of each --io path with the fast parser (group "per request, by path"):
    the trio path's events through two fast connections, the engine's lane."""
    if not (HEAD_COMPILED and WIRE_COMPILED and LANE_COMPILED):
        pytest.skip("the compiled parts are not built")
    table = table_of(1000)
    benchmark.group = "per request, by path"
    assert proxy_once_lane(table) == proxy_once(table, FastConnection, FastConnection.client(max_head=MAX_HEAD))
    if path == "native":
        out = benchmark(proxy_once_lane, table)
    else:
        out = benchmark(proxy_once, table, FastConnection, FastConnection.client(max_head=MAX_HEAD))
    assert b"hello from backend" in out and b"x-forwarded-for: 192.0.2.7" in out


@pytest.mark.parametrize("implementation", ["py", "c"])
def test_head_check_only(benchmark, implementation: str) -> None:  # type: ignore[no-untyped-def]
    if implementation == "c" and not HEAD_COMPILED:
        pytest.skip("the compiled head checks are not built")
    benchmark.group = "head checks"
    benchmark(check_head if implementation == "c" else check_head_py, REQUEST, LIMITS)


def test_decide_only(benchmark) -> None:  # type: ignore[no-untyped-def]
    table = table_of(1000)
    benchmark.group = "per request"
    benchmark(lookup_route, table, b"/steve/foo/api/items?page=2")


def test_rewrite_only(benchmark) -> None:  # type: ignore[no-untyped-def]
    server = h11.Connection(h11.SERVER)
    server.receive_data(REQUEST)
    request = server.next_event()
    headers = list(request.headers)
    benchmark.group = "per request"
    benchmark(request_headers, headers, client_ip="192.0.2.7", trusted=False, upstream_host=b"10.0.0.2:8000")


if __name__ == "__main__":
    # A loop for profilers: py-spy record -- python bench/test_request_bench.py [fast|h11]
    parser = PARSERS[sys.argv[1] if len(sys.argv) > 1 else "fast"]
    table = table_of(1000)
    upstream = parser.client(max_head=MAX_HEAD)
    for _ in range(50_000):
        proxy_once(table, parser, upstream)
