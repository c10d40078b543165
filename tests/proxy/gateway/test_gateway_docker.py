# The gateway in front of real containers (the busybox backend image).

from __future__ import annotations

import pytest
import trio

from proxy._config import Address, Route

from ...docker_support import DockerLab
from ...helpers import fetch, start_gateway

pytestmark = pytest.mark.usefixtures("clients_closed")


async def test_proxies_to_a_container_by_its_private_ip(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    backend = await trio.to_thread.run_sync(docker_lab.start_backend)
    gateway = await start_gateway(nursery, [Route("/steve/foo", (Address(backend.ip, backend.port),))])

    reply = await fetch(gateway, "GET", "/steve/foo/", host="front.test")

    assert reply.status == 200
    lines = reply.body.decode().splitlines()
    assert lines[0] == f"host={backend.name}"
    assert "uri=/steve/foo/" in lines
    assert "HTTP_X_FORWARDED_FOR=127.0.0.1" in lines and "HTTP_HOST=front.test" in lines


async def test_a_pool_of_replicas_shares_the_load(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    replicas = [await trio.to_thread.run_sync(docker_lab.start_backend) for _ in range(2)]
    gateway = await start_gateway(
        nursery, [Route("/app", tuple(Address(r.ip, r.port) for r in replicas), strip_prefix=True)]
    )

    hosts = set()
    for _ in range(6):
        reply = await fetch(gateway, "GET", "/app/")
        assert reply.status == 200
        hosts.add(reply.body.decode().splitlines()[0])

    assert hosts == {f"host={r.name}" for r in replicas}


async def test_a_stopped_container_is_502_then_out_of_rotation(
    nursery: trio.Nursery, docker_lab: DockerLab
) -> None:
    backend = await trio.to_thread.run_sync(docker_lab.start_backend)
    gateway = await start_gateway(nursery, [Route("/", (Address(backend.ip, backend.port),))],
                                  timeouts={"connect": 1.0, "eject": 600.0})  # still out at the third request
    assert (await fetch(gateway, "GET", "/")).status == 200

    await trio.to_thread.run_sync(lambda: docker_lab.client.containers.get(backend.id).stop(timeout=0))

    assert (await fetch(gateway, "GET", "/")).status in (502, 504)
    assert (await fetch(gateway, "GET", "/")).status == 503
