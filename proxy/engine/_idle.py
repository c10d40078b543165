# The engine's batches, run from trio's scheduler: a trio instrument whose
# before_io_wait hook runs the loop's batch between trio's rounds of tasks,
# and waits for the engine's sockets itself while trio sleeps.
#
# Why: a wake-up through trio (its epoll_wait, a scheduler round, the
# loop's task resumed from wait_readable and parked again, and an
# epoll_ctl to re-arm its EPOLLONESHOT) cost more than the exchange it
# carried on a quiet gateway: two per request on a lone keep-alive
# connection, which made the engine's added latency 2-3x HAProxy's.
# before_io_wait is called after every round of trio's tasks, with the time
# trio is about to sleep (0 when it has more to run): nothing but a socket
# or a deadline can need the thread before then. So the hook runs one batch
# when trio is busy, and when trio would sleep it waits for the engine's
# epoll set and trio's together (one poll() on the two descriptors) and runs
# a batch for each readiness of the engine's, with no trio round between.
#
# Rules:
# - the loop's task only holds the engine's lifetime while the hook runs
#   (it waits on nothing else, so trio's epoll set never reports the
#   engine's readiness and the two are told apart); one hook per trio run
#   serves every loop of that run (two would each sleep in its own poll);
# - a wait never runs past trio's wake-up time or the engine's earliest
#   deadline (the batch expires the engine's handlers itself), and only on
#   trio's own clock with no task waiting for "all tasks blocked"
#   (trio.testing); otherwise one batch without waiting;
# - trio's own readiness ends the wait at once: trio sleeps in its
#   epoll_wait, which returns at once, and runs its tasks (signals and
#   threads' wake-ups arrive that way too); so does a task made runnable
#   by a batch (a connection handed back), and a bounded number of batches
#   in a row (BATCHES_IN_A_ROW). Then, because trio sleeps for the timeout
#   it computed before the hook ran, the hook wakes it (trio's
#   force_wakeup: a byte on its wake-up socket);
# - the engine's set is never in trio's (every readiness of ours would be
#   trio's too); trio's is in the engine's while the run has one loop (the
#   usual case): then one epoll_wait waits for both and returns the
#   engine's ready sockets with it, where poll() on the two and then the
#   batch's epoll_wait cost two system calls per wake-up. With several
#   loops in one run, poll() watches them all and trio's. A loop leaves
#   trio's set out (unnest) before its task waits through trio: the kernel
#   refuses epoll sets that hold each other;
# - the hook never raises (trio would drop it): a batch's handlers are
#   guarded as in the loop's task, and anything else is logged once, the
#   hook removes itself and the loop's task drives the engine as before.

from __future__ import annotations

import logging
import math
import select
import weakref
from collections.abc import Callable
from typing import Protocol

import trio

from ._native import CYCLE_COMPILED
from ._trio_run import run_state


class Loop(Protocol):
    """What the batches use of an engine's loop (_loop.Loop)."""

    fileno: int  # its epoll set
    now: float  # trio's clock at its last tick or batch
    nested: int  # trio's epoll descriptor while it is in this set, else -1
    unhooked: trio.Event  # set when trio's scheduler stops running its batches

    def nest(self, trio_fd: int) -> None: ...

    def unnest(self) -> None: ...

    def tick(self) -> float: ...

    def batch(self) -> None: ...

    def wait_batch(self, timeout: float) -> int: ...

    def next_deadline(self) -> float: ...

__all__ = ["BATCHES_IN_A_ROW", "IDLE", "OURS", "TRIOS", "IdleBatches"]

log = logging.getLogger("fastroute")

BATCHES_IN_A_ROW = 1024  # the engine's batches in one sleep of trio's, at most

# What poll_pair saw: nothing within the timeout (or a signal), the engine's
# set alone ready, trio's ready (with or without the engine's).
IDLE, OURS, TRIOS = 0, 1, 2


class IdleBatches(trio.abc.Instrument):
    """Runs the batches of every engine loop of one trio run from its scheduler (one per run)."""

    def __init__(self, trio_fd: int, busy: Callable[[], object], wake: Callable[[], None]) -> None:
        self._loops: list[Loop] = []
        self._fds: list[int] = []  # theirs, in the same order
        self._trio_fd = trio_fd
        self._busy = busy  # true when trio has a task to run, or one waits for all tasks blocked
        self._wake = wake  # ends trio's next sleep at once
        self._poll = _choose_poll()

    @classmethod
    def attach(cls, loop: Loop) -> IdleBatches | None:
        """Run `loop`'s batches from the running trio's scheduler, until detach(); None where trio is
        not as this module expects it (then the loop's task drives it through trio's waits; logged)."""
        state, why = run_state()
        if state is None:
            if why is not None:  # (a test's clock, or trio inside another event loop: no log line)
                log.info("native engine: its batches wait through trio (%s)", why)
            return None
        hook = _hooks.get(state.key)
        if hook is None:
            hook = cls(state.epoll_fd, state.busy, state.wake)
            trio.lowlevel.add_instrument(hook)
            _hooks[state.key] = hook
        if not hook._loops:
            try:
                loop.nest(hook._trio_fd)  # the one loop of this run waits for both sets in one call
            except OSError as error:
                log.info("native engine: its batches poll trio's set beside its own (%s)", error)
        hook._loops.append(loop)
        hook._fds.append(loop.fileno)
        return hook

    def detach(self, loop: Loop) -> None:
        """Stop running `loop`'s batches (its task is ending, or it drives them itself)."""
        if loop in self._loops:
            index = self._loops.index(loop)
            del self._loops[index], self._fds[index]
        loop.unnest()
        if not self._loops:
            self._remove()

    def _remove(self) -> None:
        for runner, hook in list(_hooks.items()):
            if hook is self:
                del _hooks[runner]
                try:
                    trio.lowlevel.remove_instrument(self)
                except KeyError:
                    pass  # trio removed it
        for loop in self._loops:
            loop.unnest()  # before its task waits on it through trio's set
            loop.unhooked.set()  # its task drives it from now on
        self._loops, self._fds = [], []

    def before_io_wait(self, timeout: float) -> None:
        try:
            if timeout <= 0 or self._busy():
                for loop in self._loops:
                    loop.batch()  # trio has more to do: one batch each, no wait
            else:
                self._batches(timeout)
        except Exception:
            log.exception("bug: the native engine's batches in trio's scheduler failed; "
                          "its loop's task drives it from now on")
            self._remove()
            self._wake()

    def _batches(self, timeout: float) -> None:
        loops = self._loops
        if len(loops) == 1 and loops[0].nested == self._trio_fd:
            self._one_loop(loops[0], timeout)
            return
        fds = self._fds
        trio_fd = self._trio_fd
        poll = self._poll
        busy = self._busy
        now = trio.current_time()
        wake_up = now + timeout  # trio's: it sleeps until then
        for _ in range(BATCHES_IN_A_ROW):
            until = wake_up
            for loop in loops:
                deadline = loop.next_deadline()
                if deadline < until:
                    until = deadline
            if until > now:
                seen = poll(fds, trio_fd, until - now)
                if seen == TRIOS:
                    return  # trio's epoll_wait returns at once
                if seen == IDLE and trio.current_time() >= wake_up:
                    break  # trio's time
            elif until >= wake_up:
                break
            for loop in loops:
                loop.batch()  # what is ready, and the engine's deadlines that came
            if busy():
                break
            now = trio.current_time()
        self._wake()

    def _one_loop(self, loop: Loop, timeout: float) -> None:
        """_batches for one loop with trio's set nested in its own: one epoll_wait per batch."""
        busy = self._busy
        now = loop.tick()
        wake_up = now + timeout  # trio's: it sleeps until then
        for _ in range(BATCHES_IN_A_ROW):
            until = loop.next_deadline()
            if wake_up < until:
                until = wake_up
            if until > now:
                seen = loop.wait_batch(until - now)
                if seen == TRIOS:
                    return  # trio's epoll_wait returns at once
                now = loop.now
                if seen == IDLE and now >= wake_up:
                    break  # trio's time
            elif until >= wake_up:
                break
            else:
                loop.batch()  # a deadline came
                now = loop.now
            if busy():
                break
        self._wake()


# The hook of each trio run that has one (a run's engines share it: a hook
# each would sleep in its own poll while another's sockets wait).
_hooks: weakref.WeakKeyDictionary[object, IdleBatches] = weakref.WeakKeyDictionary()


def _poll_pair(fds: list[int], trio_fd: int, timeout: float) -> int:
    """Wait up to `timeout` seconds for one of `fds` or `trio_fd` to be readable: TRIOS when `trio_fd`
    is, OURS when one of `fds` alone is, IDLE when none (or a signal came). _dispatch_c.poll_pair is the
    same without the GIL."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    poller.register(trio_fd, select.POLLIN)
    ready = {ready_fd for ready_fd, _ in poller.poll(max(0, math.ceil(timeout * 1000)))}
    if trio_fd in ready:
        return TRIOS
    return OURS if ready else IDLE


def _choose_poll() -> Callable[[list[int], int, float], int]:
    if CYCLE_COMPILED:
        from ._dispatch_c import poll_pair  # type: ignore[import-not-found]

        return poll_pair  # type: ignore[no-any-return]
    return _poll_pair
