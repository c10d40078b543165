# The engine loop's deadlines, without sockets: one entry per handler in the
# heap however often its deadline moves, an earlier deadline fires first, a
# cancelled one never does, and cancelled ones are swept out of the heap.

from __future__ import annotations

import weakref

from proxy.engine._loop import SWEEP_FLOOR, Loop, Timed


class Recorder:
    def __init__(self) -> None:
        self.timed = Timed()
        self.fired = 0

    def ready(self, fd: int, mask: int) -> None:
        raise AssertionError("no sockets here")

    def expired(self) -> None:
        self.fired += 1

    def fail(self) -> None:
        raise AssertionError("nothing fails here")


def test_a_deadline_moved_later_again_and_again_keeps_one_entry_and_fires_once() -> None:
    loop = Loop()
    handler = Recorder()
    for step in range(10_000):
        loop.at(10.0 + step * 0.001, handler, handler.timed)
    assert len(loop._timers) == 1
    loop._expire(10.5)
    assert handler.fired == 0 and len(loop._timers) == 1  # pushed again, at its real deadline
    loop._expire(20.0)
    assert handler.fired == 1 and loop._timers == []


def test_an_earlier_deadline_fires_at_its_time() -> None:
    loop = Loop()
    handler = Recorder()
    loop.at(60.0, handler, handler.timed)
    loop.at(5.0, handler, handler.timed)
    loop._expire(5.0)
    assert handler.fired == 1
    loop._expire(61.0)
    assert handler.fired == 1  # the later entry was stale


def test_a_cancelled_deadline_never_fires() -> None:
    loop = Loop()
    handler = Recorder()
    loop.at(1.0, handler, handler.timed)
    loop.cancel(handler.timed)
    loop._expire(2.0)
    assert handler.fired == 0


def test_a_cancelled_deadline_does_not_keep_its_handler_alive() -> None:
    # A connection closes long before its keep-alive deadline comes due:
    # the heap's entry must not hold the connection (and all it holds) until then.
    loop = Loop()
    handler = Recorder()
    loop.at(60.0, handler, handler.timed)
    loop.cancel(handler.timed)
    gone = weakref.ref(handler)
    del handler
    assert gone() is None
    assert len(loop._timers) == 1  # the entry waits for its time, holding nothing that matters


def test_cancelled_deadlines_of_many_handlers_are_swept_and_the_live_ones_still_fire() -> None:
    # An HTTP/2 stream has a Timed of its own and ends long before its timeout:
    # a million streams must not leave a million entries in the heap.
    loop = Loop()
    live = [Recorder() for _ in range(100)]
    for index, handler in enumerate(live):
        loop.at(30.0 + index, handler, handler.timed)
    rearmed = Recorder()
    loop.at(5.0, rearmed, rearmed.timed)
    loop.cancel(rearmed.timed)
    for _ in range(50_000):
        stream = Recorder()
        loop.at(60.0, stream, stream.timed)
        loop.cancel(stream.timed)
        assert len(loop._timers) <= max(SWEEP_FLOOR, 2 * 101)
    loop.at(7.0, rearmed, rearmed.timed)  # its first entry was swept: a new one
    loop._expire(8.0)
    assert rearmed.fired == 1
    loop._expire(200.0)
    assert [handler.fired for handler in live] == [1] * 100
    assert loop._timers == []


def test_a_handler_that_raises_is_failed_not_the_loop() -> None:
    loop = Loop()
    failed: list[bool] = []

    class Broken(Recorder):
        def expired(self) -> None:
            raise RuntimeError("a bug")

        def fail(self) -> None:
            failed.append(True)

    broken, fine = Broken(), Recorder()
    loop.at(1.0, broken, broken.timed)
    loop.at(1.0, fine, fine.timed)
    loop._expire(1.0)
    assert failed == [True] and fine.fired == 1
