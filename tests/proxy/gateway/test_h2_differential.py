# HTTP/2 against HTTP/1.1, the reference: the same request sent over each
# (an h11 client, and an HTTP/2 stream) must reach the backend identically
# (method, target, every field but Via, body) and give the client the same
# status and body, on either --io path (test_io_native.py runs this module
# again on the trio path).

from __future__ import annotations

import json

import pytest
import trio

from ...h2_support import H2Client
from ...helpers import Backend, BackendExchange, Client, Seen, echo, route, start_backend, start_gateway

pytestmark = pytest.mark.usefixtures("clients_closed")

# (method, target, fields after Host, body, chunked): the request both clients send.
CASES = [
    pytest.param("GET", "/a?b=1&c=%41", [], b"", False, id="get_query"),
    pytest.param("GET", "/x", [("accept", "text/html"), ("accept-language", "en, fr;q=0.5")], b"", False, id="fields"),
    pytest.param("GET", "/x", [("cookie", "a=1; b=2; c=3")], b"", False, id="cookies"),
    pytest.param("HEAD", "/x", [], b"", False, id="head"),
    pytest.param("DELETE", "/x/y", [("x-request-id", "42")], b"", False, id="delete"),
    pytest.param("POST", "/form", [("content-type", "application/x-www-form-urlencoded")], b"a=1&b=2", False,
                 id="post_with_length"),
    pytest.param("PUT", "/blob", [], bytes(range(256)) * 300, False, id="put_past_a_window"),
    pytest.param("POST", "/stream", [], b"chunk" * 100, True, id="post_chunked"),
    pytest.param("OPTIONS", "/x", [], b"", False, id="options"),
    pytest.param("GET", "/%7euser/./../x", [], b"", False, id="path_normalised_or_refused"),
    pytest.param("GET", "/" + "a" * 9000, [], b"", False, id="target_too_long"),
    pytest.param("GET", "/x", [("x-forwarded-for", "6.6.6.6"), ("x_under", "1")], b"", False, id="spoofs_dropped"),
    pytest.param("GET", "/x", [("te", "trailers")], b"", False, id="te_trailers"),
]


def answer(status: int, body: bytes) -> tuple[int, object]:
    """The client's answer, the echo backend's Via left out (it names the protocol on purpose). The
    gateway's own answers give the same status; their text may name what each protocol's check saw
    (an HTTP/1.1 request line, an HTTP/2 :path)."""
    try:
        echoed = json.loads(body)
    except ValueError:
        return status, None
    echoed["headers"] = [field for field in echoed["headers"] if field[0] != "via"]
    return status, echoed


async def echo_or_head(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
    if seen.method == b"HEAD":
        await exchange.respond(200)
    else:
        await echo(backend, seen, exchange)


def comparable(seen: Seen) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    return seen.method, seen.target, [(n, v) for n, v in seen.headers if n != b"via"], seen.body


@pytest.mark.parametrize(("method", "target", "fields", "body", "chunked"), CASES)
async def test_a_request_reaches_the_backend_the_same_over_http2_and_http11(
        nursery: trio.Nursery, method: str, target: str, fields: list[tuple[str, str]], body: bytes,
        chunked: bool) -> None:
    backend = await start_backend(nursery, handler=echo_or_head)
    gateway = await start_gateway(nursery, [route("/", backend)])

    http1 = await Client.connect(gateway)
    framing = [("transfer-encoding", "chunked")] if chunked else []
    one = await http1.request(method, target, [*fields, *framing], body=body, host="api.test")
    h2_fields = [(n, v) for n, v in fields if n != "cookie"]
    h2_fields += [("cookie", c) for n, v in fields if n == "cookie" for c in v.split("; ")]  # as HTTP/2 sends them
    if body and not chunked:
        h2_fields.append(("content-length", str(len(body))))
    client = await H2Client.connect(gateway.addresses[0])
    two = await client.request(method, target, h2_fields, body=body, authority="api.test")

    assert answer(two.status, two.body) == answer(one.status, one.body)
    assert [comparable(s) for s in backend.seen[len(backend.seen) // 2:]] == \
        [comparable(s) for s in backend.seen[:len(backend.seen) // 2]]
    assert len(backend.seen) % 2 == 0
    assert [dict(s.headers).get(b"via") for s in backend.seen] == \
        [b"1.1 fastroute"] * (len(backend.seen) // 2) + [b"2 fastroute"] * (len(backend.seen) // 2)
