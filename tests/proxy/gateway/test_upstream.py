# Backend connections through the gateway: pooling and reuse, over real sockets.

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

import pytest
import trio

from ...helpers import Client, route, start_backend, start_gateway

pytestmark = pytest.mark.usefixtures("clients_closed")

HELD = 1100  # descriptors held open: every socket the gateway opens after them is numbered past 1023


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = HELD + 1024
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.fail(f"RLIMIT_NOFILE's hard limit {hard} is under {wanted}: raise it to run this test")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(HELD)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_pooled_connections_are_reused_past_descriptor_1023(
    nursery: trio.Nursery, many_descriptors: None
) -> None:
    # The check before reuse used select(), which raises for a descriptor
    # numbered 1024 or more; that was taken for "dead", so under load every
    # pooled connection was thrown away and a new one opened.
    backend = await start_backend(nursery, "b1")
    gateway = await start_gateway(nursery, [route("/", backend)])
    client = await Client.connect(gateway)
    assert client.stream.socket.fileno() >= 1024

    for _ in range(20):
        assert (await client.request("GET", "/x")).status == 200

    assert backend.connections == 1
