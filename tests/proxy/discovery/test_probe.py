# Readiness probes (proxy/discovery/_probe.py) over real loopback sockets, and their
# timing rules under trio's virtual clock.

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from proxy._config import Address, Discovery
from proxy.discovery._model import ContainerSet
from proxy.discovery._probe import PROBE_FAST_TRIES, PROBE_FIRST, PROBE_MAX, Prober, accepts

from ...helpers import LOOPBACK, unused_port
from .test_docker_model import summary


def one_container(port: int) -> tuple[ContainerSet, str]:
    containers = ContainerSet(Discovery())
    container = summary("app", labels={"fastroute.port": str(port)}, networks={"net": {"IPAddress": LOOPBACK}})
    containers.replace_all([container])
    return containers, container["Id"]


async def test_accepts_says_whether_a_port_accepts() -> None:
    listener = trio.socket.socket()
    await listener.bind((LOOPBACK, 0))
    listener.listen(1)
    try:
        assert await accepts(Address(LOOPBACK, listener.getsockname()[1]))
    finally:
        listener.close()
    assert not await accepts(Address(LOOPBACK, unused_port()))


async def test_a_port_that_starts_listening_later_is_found_in_the_background(nursery: trio.Nursery) -> None:
    port = unused_port()
    containers, cid = one_container(port)
    changed = trio.Event()
    prober = Prober(lambda: containers, changed.set, ready_timeout=30.0)
    await nursery.start(prober.run)

    assert not await prober.try_now()  # nothing listens yet
    prober.schedule()
    assert prober.probing == {(cid, Address(LOOPBACK, port))}
    await trio.sleep(0.2)
    listener = trio.socket.socket()
    await listener.bind((LOOPBACK, port))
    listener.listen(1)
    try:
        with trio.fail_after(5):
            await changed.wait()
    finally:
        listener.close()
    assert containers.advance(0.0)[0][0].backends == (Address(LOOPBACK, port),)
    await trio.sleep(0)
    assert prober.probing == set()


async def test_try_now_marks_what_listens_already(nursery: trio.Nursery) -> None:
    listener = trio.socket.socket()
    await listener.bind((LOOPBACK, 0))
    listener.listen(1)
    try:
        containers, _ = one_container(listener.getsockname()[1])
        assert await Prober(lambda: containers, lambda: None, ready_timeout=30.0).try_now()
    finally:
        listener.close()
    assert containers.advance(0.0)[0][0].backends


async def test_tries_back_off_to_the_cap_and_the_ready_timeout_routes_it_anyway(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    containers, cid = one_container(8000)
    tries: list[float] = []

    async def never(address: Address) -> bool:
        tries.append(trio.current_time())
        return False

    changed = trio.Event()
    prober = Prober(lambda: containers, changed.set, ready_timeout=5.0, check=never)
    await nursery.start(prober.run)
    prober.schedule()
    with trio.fail_after(60):  # virtual seconds
        await changed.wait()

    pauses = [round(b - a, 6) for a, b in zip(tries, tries[1:])]
    assert pauses[:PROBE_FAST_TRIES - 1] == [PROBE_FIRST] * (PROBE_FAST_TRIES - 1)
    assert pauses[PROBE_FAST_TRIES - 1:PROBE_FAST_TRIES + 2] == [2 * PROBE_FIRST, 4 * PROBE_FIRST, 8 * PROBE_FIRST]
    assert pauses == sorted(pauses) and max(pauses) == pytest.approx(PROBE_MAX)
    assert 5.0 <= tries[-1] - tries[0] + PROBE_FIRST <= 5.0 + PROBE_MAX
    assert containers.advance(0.0)[0][0].backends  # routed anyway,
    assert containers.refused(Address("10.0.0.2", 8000), 0.0) is False  # and never young
    assert any("routing it anyway" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def test_a_probe_ends_when_its_container_leaves(nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    containers, cid = one_container(8000)
    tries = 0

    async def never(address: Address) -> bool:
        nonlocal tries
        tries += 1
        return False

    prober = Prober(lambda: containers, lambda: None, ready_timeout=60.0, check=never)
    await nursery.start(prober.run)
    prober.schedule()
    await trio.sleep(1.0)
    containers.leave(cid)
    await trio.sleep(PROBE_MAX * 2)
    assert prober.probing == set()
    before = tries
    await trio.sleep(10.0)
    assert tries == before
