# Active health checks from container labels (fastroute.healthcheck.*),
# against the real engine: containers whose check path is missing are out of
# rotation (503), the one whose check starts to pass takes every request,
# and one that fails again leaves.

from __future__ import annotations

import trio

from proxy._config import Address

from ...docker_support import DockerLab
from ...helpers import fetch
from .test_docker_discovery import docker, eventually, host_of, run, start_discovery

CHECK_LABELS = {"fastroute.route": "/hc/app", "fastroute.healthcheck.path": "/ok",
                "fastroute.healthcheck.interval": "0.1", "fastroute.healthcheck.timeout": "0.1"}


async def test_labels_check_containers_and_only_those_that_pass_serve(nursery: trio.Nursery,
                                                                      docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab)
    first = await run(docker_lab, labels=CHECK_LABELS)
    second = await run(docker_lab, labels=CHECK_LABELS)

    def down(*addresses: Address) -> bool:
        states = gateway.registry.states
        return all(a in states and states[a].check_down for a in addresses)

    a, b = Address(first.ip, first.port), Address(second.ip, second.port)

    async def both_down() -> bool:
        return down(a, b)

    await eventually(both_down, "both out: /ok is missing (404)")
    assert (await fetch(gateway, "GET", "/hc/app/")).status == 503

    # /ok appears in the first container: its check passes, and it alone serves.
    await docker(docker_lab, lambda c: c.exec_run(["/bin/busybox", "touch", "/www/ok"]), first)

    async def first_back() -> bool:
        return not down(a)

    await eventually(first_back, "the first back in rotation")
    hosts = {host_of(await fetch(gateway, "GET", "/hc/app/")) for _ in range(10)}
    assert hosts == {first.name}

    # It fails again: out, and the route answers 503 with no backend that passes.
    await docker(docker_lab, lambda c: c.exec_run(["/bin/busybox", "rm", "/www/ok"]), first)

    async def first_out() -> bool:
        return down(a)

    await eventually(first_out, "the first out again")
    assert (await fetch(gateway, "GET", "/hc/app/")).status == 503


async def test_a_container_with_only_an_interval_of_1_s_is_routed_and_checked(nursery: trio.Nursery,
                                                                              docker_lab: DockerLab) -> None:
    # No timeout given: it follows the interval (1 s, not the 2 s default that
    # would be longer than the interval and once took the container off line).
    gateway, _ = await start_discovery(nursery, docker_lab)
    backend = await run(docker_lab, labels={"fastroute.route": "/hc/one", "fastroute.healthcheck.path": "/ok",
                                            "fastroute.healthcheck.interval": "1"})
    address = Address(backend.ip, backend.port)

    async def routed() -> bool:
        found = gateway.table.lookup(None, b"/hc/one/")
        return found is not None and address in [s.address for s in found[1].backends]

    await eventually(routed, "routed")
    check = gateway.table.lookup(None, b"/hc/one/")[1].route.check  # type: ignore[index]
    assert check is not None and (check.interval, check.timeout) == (1.0, 1.0)

    async def checked_out() -> bool:  # /ok is missing: its check fails, twice
        state = gateway.registry.states.get(address)
        return state is not None and state.check_down

    await eventually(checked_out, "checked, and out of rotation", limit=60)
