# The engine's batches from trio's scheduler (_idle.py), on a real Loop with
# a socket pair: the hook serves the engine's sockets while the loop's task
# only waits, and it never holds trio past trio's own wake-up time, a
# thread's wake-up, a task it made runnable, or the engine's deadlines.
# A peer that is not a trio task (a plain thread) keeps trio itself asleep,
# so only the hook can be serving it.

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest
import trio
import trio.testing

from proxy.engine import _idle, _loop
from proxy.engine._idle import IdleBatches
from proxy.engine._loop import Loop, Timed

FAR = 30.0  # a deadline no test waits for: reaching it means the hook overslept
SOON = 5.0  # what "at once" is allowed to take on a loaded machine


class Echo:
    """A handler that answers every read with the same bytes, and records its deadline's expiry."""

    def __init__(self, loop: Loop, sock: socket.socket, on_read: Callable[[], None] = lambda: None) -> None:
        self.loop = loop
        self.sock = sock
        self.on_read = on_read
        self.timed = Timed()
        self.reads = 0
        self.expired_at: float | None = None
        loop.watch(sock.fileno(), self, select.EPOLLIN)

    def ready(self, fd: int, mask: int) -> None:
        data = self.sock.recv(4096)
        self.reads += 1
        self.sock.send(data)
        self.on_read()

    def expired(self) -> None:
        self.expired_at = time.monotonic()

    def fail(self) -> None:
        self.loop.forget(self.sock.fileno())


@pytest.fixture
async def running() -> AsyncIterator[tuple[Loop, socket.socket, socket.socket]]:
    """A running Loop, the engine's end of a socket pair, and the peer's (blocking) end."""
    loop = Loop()
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    async with trio.open_nursery() as nursery:
        await nursery.start(loop.run)
        yield loop, ours, peer
        nursery.cancel_scope.cancel()
    ours.close()
    peer.close()


def pings(peer: socket.socket, count: int) -> None:
    for n in range(count):
        message = b"ping %d" % n
        peer.sendall(message)
        assert peer.recv(4096) == message


async def test_the_hook_serves_the_engine_while_the_loops_task_only_waits(
        running: tuple[Loop, socket.socket, socket.socket]) -> None:
    loop, ours, peer = running
    echo = Echo(loop, ours)
    thread = threading.Thread(target=pings, args=(peer, 200))
    thread.start()
    await trio.to_thread.run_sync(thread.join)
    assert echo.reads == 200
    assert loop._scope is None  # the task never drove a batch: it waits in IdleBatches.removed


async def test_trio_wakes_on_time_while_the_engine_waits_for_a_far_deadline(
        running: tuple[Loop, socket.socket, socket.socket]) -> None:
    loop, ours, _ = running
    echo = Echo(loop, ours)
    loop.tick()
    loop.at(loop.now + FAR, echo, echo.timed)
    started = time.monotonic()
    await trio.sleep(0.05)
    assert time.monotonic() - started < SOON


async def test_a_threads_wake_up_ends_the_wait(running: tuple[Loop, socket.socket, socket.socket]) -> None:
    loop, ours, _ = running
    echo = Echo(loop, ours)
    loop.tick()
    loop.at(loop.now + FAR, echo, echo.timed)
    started = time.monotonic()
    await trio.to_thread.run_sync(time.sleep, 0.05)
    assert time.monotonic() - started < SOON


async def test_a_task_a_batch_makes_runnable_runs_at_once(running: tuple[Loop, socket.socket, socket.socket]) -> None:
    loop, ours, peer = running
    woken = trio.Event()
    echo = Echo(loop, ours, on_read=woken.set)
    loop.tick()
    loop.at(loop.now + FAR, echo, echo.timed)
    threading.Timer(0.05, peer.send, args=(b"wake",)).start()
    started = time.monotonic()
    await woken.wait()
    assert time.monotonic() - started < SOON


async def test_the_engines_deadline_comes_while_trio_sleeps(running: tuple[Loop, socket.socket, socket.socket]) -> None:
    loop, ours, _ = running
    echo = Echo(loop, ours)
    loop.tick()
    set_at = time.monotonic()
    loop.at(loop.now + 0.05, echo, echo.timed)
    await trio.sleep(FAR / 10)  # trio's own wake-up, long after the engine's
    assert echo.expired_at is not None and echo.expired_at - set_at < FAR / 20


async def test_two_engines_in_one_run_share_the_hook(running: tuple[Loop, socket.socket, socket.socket]) -> None:
    # A hook per loop slept in its own poll while the other loop's sockets waited (found by the
    # first version of the test below).
    loop, ours, peer = running
    echo = Echo(loop, ours)
    loop2 = Loop()
    ours2, peer2 = socket.socketpair()
    ours2.setblocking(False)
    echo2 = Echo(loop2, ours2)
    with ours2, peer2:
        async with trio.open_nursery() as nursery:
            await nursery.start(loop2.run)
            threads = [threading.Thread(target=pings, args=(peer, 50)), threading.Thread(target=pings, args=(peer2, 50))]
            for thread in threads:
                thread.start()
            for thread in threads:
                await trio.to_thread.run_sync(thread.join)
            assert (echo.reads, echo2.reads) == (50, 50)
            assert loop._scope is None and loop2._scope is None
            nursery.cancel_scope.cancel()
    await trio.to_thread.run_sync(pings, peer, 5)  # the first loop's batches still run when the second left
    assert echo.reads == 55 and loop._scope is None


@pytest.mark.parametrize("where", ["one_wait", "poll_pair"])
async def test_a_failing_hook_removes_itself_and_the_tasks_drive(
        running: tuple[Loop, socket.socket, socket.socket], caplog: pytest.LogCaptureFixture, where: str) -> None:
    loop, ours, peer = running
    echo = Echo(loop, ours)
    (hook,) = _idle._hooks.values()
    assert loop.nested == hook._trio_fd  # one loop in the run: trio's set is in its own

    def broken(*args: object) -> int:
        raise RuntimeError("planted")

    if where == "one_wait":
        loop.wait_batch = broken  # type: ignore[method-assign]
    else:
        loop.unnest()  # as with several loops in one run: poll() on the sets
        hook._poll = broken
    with caplog.at_level(logging.ERROR, logger="fastroute"):
        await trio.to_thread.run_sync(pings, peer, 20)
        assert echo.reads == 20
        assert loop._scope is not None  # the task drives
    bugs = [record for record in caplog.records if record.getMessage().startswith("bug:")]
    assert len(bugs) == 1
    assert not _idle._hooks


def test_no_hook_on_a_mock_clock() -> None:
    async def main() -> IdleBatches | None:
        loop = Loop()
        hook = IdleBatches.attach(loop)
        if hook is not None:
            hook.detach(loop)
        return hook

    assert trio.run(main, clock=trio.testing.MockClock()) is None
    assert isinstance(trio.run(main), IdleBatches)


@pytest.mark.parametrize("poll_pair", [_idle._poll_pair, _idle._choose_poll()], ids=["py", "chosen"])
def test_poll_pair_tells_ours_from_trios(poll_pair: Callable[[list[int], int, float], int]) -> None:
    ours, ours_peer = socket.socketpair()
    other, other_peer = socket.socketpair()
    trios, trios_peer = socket.socketpair()
    with ours, ours_peer, other, other_peer, trios, trios_peer:
        fds = [ours.fileno(), other.fileno()]
        assert poll_pair(fds, trios.fileno(), 0.01) == _idle.IDLE
        other_peer.send(b"x")
        assert poll_pair(fds, trios.fileno(), FAR) == _idle.OURS
        other.recv(1)
        ours_peer.send(b"x")
        assert poll_pair(fds, trios.fileno(), FAR) == _idle.OURS
        trios_peer.send(b"x")
        assert poll_pair(fds, trios.fileno(), FAR) == _idle.TRIOS
        ours.recv(1)
        assert poll_pair(fds, trios.fileno(), FAR) == _idle.TRIOS
        trios.recv(1)
        assert poll_pair(fds, trios.fileno(), 0) == _idle.IDLE


@pytest.mark.parametrize("wait_dispatch", [_loop._wait_dispatch, _loop.wait_dispatch], ids=["py", "chosen"])
def test_wait_dispatch_handles_ours_and_tells_trios_apart(wait_dispatch: _loop.WaitDispatch) -> None:
    ours, ours_peer = socket.socketpair()
    trios, trios_peer = socket.socketpair()
    trio_set = select.epoll()  # trio's epoll set, as nested in the engine's
    engine_set = select.epoll()
    with ours, ours_peer, trios, trios_peer, trio_set, engine_set:
        trio_set.register(trios.fileno(), select.EPOLLIN)
        engine_set.register(trio_set.fileno(), select.EPOLLIN)
        engine_set.register(ours.fileno(), select.EPOLLIN)
        seen: list[tuple[int, int]] = []
        ticks: list[int] = []

        class Reader:
            def ready(self, fd: int, mask: int) -> None:
                assert ticks  # the clock is read before any handler runs
                seen.append((fd, mask))
                ours.recv(16)

        handlers: dict[int, object] = {ours.fileno(): Reader()}

        def call(timeout: float) -> int:
            ticks.clear()
            return wait_dispatch(engine_set, handlers, pytest.fail, trio_set.fileno(), timeout,  # type: ignore[arg-type]
                                 lambda: ticks.append(1) or 0.0)

        assert call(0.01) == _idle.IDLE and not seen and ticks == [1]
        ours_peer.send(b"x")
        assert call(FAR) == _idle.OURS and seen == [(ours.fileno(), select.EPOLLIN)]
        trios_peer.send(b"x")
        seen.clear()
        assert call(FAR) == _idle.TRIOS and not seen  # trio's readiness is not a handler's
        ours_peer.send(b"y")
        assert call(FAR) == _idle.TRIOS and seen == [(ours.fileno(), select.EPOLLIN)]
        trios.recv(1)
        seen.clear()
        assert call(0) == _idle.IDLE
