# The cycle's hand-overs on real sockets, where the differential test
# cannot bring them about: SENDING, the backend taking part of the request
# head. (ROUTED, READ and LANE come up in test_differential.py.)

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio

from proxy.engine import _cycle, _stream_shell
from proxy.engine._exchange import NativeClient
from proxy.engine._upstream import Upstream

from ...conftest import chosen_compiled_cycle
from ...helpers import Backend, BackendExchange, Client, Seen, route, start_backend, start_gateway

SMALL = 4096  # bytes: the gateway's backend sockets' send buffer, and the backend's receive buffer
BIG_FIELD = 15_000  # bytes: a field no SMALL buffers take whole (the head's limit is 16 KiB)


async def test_a_request_head_the_backend_takes_in_parts_goes_on_through_resume(
        nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen_compiled_cycle()
    kinds: list[int] = []
    resume = NativeClient.resume

    def recorded(self: NativeClient, kind: int, *args: Any) -> None:
        if kind in (_cycle.ROUTED, _cycle.SENDING, _cycle.READ, _cycle.LANE):  # the exchange's hand-overs
            kinds.append(kind)
        resume(self, kind, *args)

    monkeypatch.setattr(NativeClient, "resume", recorded)
    connect = _stream_shell.connect

    def narrow(backend: Any) -> tuple[Upstream, int]:
        upstream, code = connect(backend)
        upstream.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL)
        return upstream, code

    monkeypatch.setattr(_stream_shell, "connect", narrow)

    # The backend answers the first request, then reads nothing more until `go`: the second request's
    # head waits in the gateway's send buffer and the backend's receive buffer, neither of which holds it.
    go = trio.Event()

    async def answer_then_wait(backend: Backend, seen: Seen, exchange: BackendExchange) -> None:
        await exchange.respond(200, seen.target, [])
        if seen.target == b"/first":
            await go.wait()

    backend = await start_backend(nursery, handler=answer_then_wait)
    backend.listeners[0].socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL)
    gateway = await start_gateway(nursery, [route("/", backend)], io="native")
    client = await Client.connect(gateway)
    try:
        first = await client.request("GET", "/first")
        assert (first.status, first.body) == (200, b"/first")
        assert kinds == [_cycle.ROUTED]  # no pooled connection yet: the general path connected
        # The answer went out whole, and the connection is back in its pool: the cycle serves the next
        # request on it, whose head the backend's socket takes only in part.
        with trio.fail_after(60):  # a bound only a hang reaches (the cycle sent it whole: no SENDING)
            async with trio.open_nursery() as waiting:
                waiting.start_soon(_release_when_sent_in_part, kinds, go)
                second = await client.request("GET", "/second", headers=[("x-big", "a" * BIG_FIELD)])
        assert (second.status, second.body) == (200, b"/second")
    finally:
        await client.aclose()
    assert kinds == [_cycle.ROUTED, _cycle.SENDING]
    assert [seen.target for seen in backend.seen] == [b"/first", b"/second"]
    assert dict(backend.seen[1].headers)[b"x-big"] == b"a" * BIG_FIELD
    assert backend.connections == 1
    assert gateway.engine is not None and gateway.engine.cycled == 0 and gateway.engine.handed_back == 0


async def _release_when_sent_in_part(kinds: list[int], go: trio.Event) -> None:
    while _cycle.SENDING not in kinds:
        await trio.sleep(0.01)
    go.set()
