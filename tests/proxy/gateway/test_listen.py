# The listening side: a burst of queued connections is taken in one turn of
# the accept loop, not one trio scheduling round each.

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

import pytest
import trio

from proxy._config import Address
from proxy.gateway import _listen
from proxy.gateway._server import Gateway
from proxy.gateway._listen import ACCEPT_BURST, FDS_RESERVED, Backlog, connection_slots, open_listeners

from ...helpers import LOOPBACK, fetch, route, start_backend, start_gateway


async def test_the_backlog_hands_over_what_is_queued_then_none() -> None:
    [listener] = await open_listeners(Address(LOOPBACK, 0))
    port = listener.socket.getsockname()[1]
    clients = [socket.create_connection((LOOPBACK, port)) for _ in range(3)]
    backlog = Backlog(listener)
    streams: list[trio.SocketStream | None] = []
    try:
        with trio.fail_after(5):
            streams.append(await listener.accept())
        streams += [backlog.take(), backlog.take()]
        assert backlog.take() is None
        for client in clients:
            client.sendall(b"x")
        for stream in streams:  # each is a working connection
            assert stream is not None
            with trio.fail_after(5):
                assert await stream.receive_some(1) == b"x"
    finally:
        backlog.close()
        for stream in streams:
            if stream is not None:
                await stream.aclose()
        for client in clients:
            client.close()
        await listener.aclose()


async def test_a_burst_of_connections_is_accepted_in_one_turn(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = 0
    take = Backlog.take

    def counted(self: Backlog) -> trio.SocketStream | None:
        nonlocal taken
        stream = take(self)
        taken += stream is not None
        return stream

    monkeypatch.setattr(_listen.Backlog, "take", counted)
    turns = 0
    take_more = Gateway._take_more

    def turn(self: Gateway, *args: Any) -> None:
        nonlocal turns
        turns += 1
        take_more(self, *args)

    monkeypatch.setattr(Gateway, "_take_more", turn)
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    host, port = gateway.addresses[0]
    # Connected without a trio checkpoint: all queued in the kernel before
    # the accept loop runs again, which then takes them in one turn.
    n = ACCEPT_BURST // 2
    clients = [socket.create_connection((host, port)) for _ in range(n)]
    try:
        with trio.fail_after(5):
            while taken < n:
                await trio.sleep(0.01)
        assert (taken, turns) == (n, 1)  # all from the backlog, in one turn of the accept loop
        assert (await fetch(gateway, "GET", "/")).status == 200
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize(("max_connections", "nofile", "slots"), [
    pytest.param(10_000, 1 << 20, 10_000, id="room_for_all"),
    pytest.param(10_000, 1024, (1024 - FDS_RESERVED) // 2, id="ulimit_1024"),
    pytest.param(100, 64, 16, id="ulimit_64"),
    pytest.param(100, 10, 1, id="at_least_one"),
])
def test_connection_slots_leave_each_client_a_backend_descriptor(max_connections: int, nofile: int,
                                                                 slots: int) -> None:
    assert connection_slots(max_connections, nofile) == slots


async def test_accept_out_of_descriptors_is_logged_and_retried(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failed = []
    take = Backlog.take

    def out_of_descriptors_once(self: Backlog) -> trio.SocketStream | None:
        if not failed:
            failed.append(True)
            raise OSError(errno.EMFILE, "Too many open files")
        return take(self)

    monkeypatch.setattr(_listen.Backlog, "take", out_of_descriptors_once)
    backend = await start_backend(nursery)
    gateway = await start_gateway(nursery, [route("/", backend)])
    with caplog.at_level(logging.ERROR, logger="fastroute"):
        with trio.fail_after(5):
            assert (await fetch(gateway, "GET", "/")).status == 200
    assert failed
    assert "accept failed (Too many open files); retrying every" in caplog.text
