# The native engine's event loop: one epoll set for every socket the engine
# serves, one trio task that waits on that set's descriptor and the next
# deadline, then handles everything ready without a task switch (trio's own
# streams cost a scheduler round and an epoll_ctl per blocking operation;
# this costs one wake-up per batch of ready sockets).
#
# A batch (dispatch) is compiled beside the engine's cycle (_dispatch_c.pyx):
# there a client connection's readiness goes to the cycle as a C call (and
# to NativeClient.resume only for a hand-over); _dispatch below is its twin.
#
# Rules:
# - a handler runs to completion and never awaits: it reads and writes
#   non-blocking sockets, calls the pure decisions, and registers interest;
# - a handler that raises is a bug in one connection: it is logged once and
#   that connection alone is closed (Handler.fail), never the loop;
# - a write many handlers of one batch add to (an HTTP/2 connection's, which
#   each of its streams' responses adds frames to) is deferred to the
#   batch's end (defer()), then made once: one system call for the batch,
#   not one per stream;
# - a handler has one deadline at a time (Timed.deadline); moving it later
#   costs nothing here (the entry in the heap is pushed again when it comes
#   due), so the heap holds about one entry per handler, not one per phase
#   of every request (which grew it by millions at keep-alive timeouts, and
#   the garbage collector's passes over them showed as 40 ms stalls);
# - a deadline cancelled (a stream's, which ends long before its timeout)
#   leaves its entry until it comes due or the heap doubles since it was
#   last swept, whichever is first: the sweep keeps the entries that still
#   count, so the heap holds about twice the deadlines set, never one per
#   request of the last timeout's worth (an HTTP/2 stream's Timed is its
#   own: 60 s of 20,000 streams a second was 1.2 million entries).

from __future__ import annotations

import heapq
import itertools
import logging
import math
import select
from collections.abc import Callable
from typing import Protocol

import trio

from ._native import CYCLE_COMPILED
from ._idle import IdleBatches

__all__ = ["EPOLL_AVAILABLE", "Deferred", "Handler", "Loop", "Timed"]

log = logging.getLogger("fastroute")

EPOLL_AVAILABLE = hasattr(select, "epoll")
MAX_EVENTS = 512  # ready sockets handled per wake-up, at most
SWEEP_FLOOR = 4096  # heap entries below which no sweep runs


class Handler(Protocol):
    def ready(self, fd: int, mask: int) -> None:
        """`fd` is ready for `mask` (select.EPOLL* bits)."""
        ...

    def expired(self) -> None:
        """Its deadline passed."""
        ...

    def fail(self) -> None:
        """Close at once: a handler call raised (a bug, already logged)."""
        ...


class Deferred(Protocol):
    def deferred(self) -> None:
        """The batch that deferred it (Loop.defer) is over."""
        ...

    def fail(self) -> None:
        """Close at once: deferred() raised (a bug, already logged)."""
        ...


class Timed:
    """A handler's deadline (trio.current_time()), as the loop keeps it.

    The heap holds this, and this the handler only while a deadline is
    set: a closed connection is not kept alive by an entry that comes due
    a keep-alive timeout later.
    """

    __slots__ = ("deadline", "queued", "handler")

    def __init__(self) -> None:
        self.deadline: float | None = None  # None: no deadline
        self.queued: float | None = None  # the time of its earliest entry in the heap
        self.handler: Handler | None = None


class Loop:
    """The epoll set, its handlers, and their deadlines (trio.current_time())."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self.fileno = self._epoll.fileno()
        self._scope: trio.CancelScope | None = None  # the task's, while it drives the batches
        self.unhooked = trio.Event()  # trio's scheduler stopped running the batches (_idle.py)
        self._handlers: dict[int, Handler] = {}
        self._masks: dict[int, int] = {}  # fd -> the mask the kernel has
        self._timers: list[tuple[float, int, Timed]] = []
        self._order = itertools.count()  # ties in the heap never compare handlers
        self._sweep_at = SWEEP_FLOOR  # the heap's size at which stale entries are swept out
        # trio.current_time() as of this batch of ready sockets: a deadline
        # is set from it (four times a request; reading the clock each time
        # cost more than the rest of the deadline). Off by at most the time
        # one batch takes; code that runs outside a batch calls tick() first.
        self.now = 0.0
        self.nested = -1  # trio's epoll descriptor while it is in this set (nest()), else -1
        self.batching = False  # the handlers of a batch run (a write may be deferred to its end)
        self._deferred: list[Deferred] = []

    # --- interest ------------------------------------------------------------

    def watch(self, fd: int, handler: Handler, mask: int) -> None:
        """Start (or change) watching `fd` for `mask` on behalf of `handler`.

        No system call when the kernel has that mask already (a connection's
        interest changes several times per request, mostly to what it was).
        """
        known = self._masks.get(fd)
        if known is None:
            self._epoll.register(fd, mask)
        elif known != mask:
            self._epoll.modify(fd, mask)
        self._masks[fd] = mask
        self._handlers[fd] = handler

    def forget(self, fd: int) -> None:
        """Stop watching `fd` (before it is closed or handed back)."""
        self._masks.pop(fd, None)
        if self._handlers.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass  # closed already: the kernel dropped it from the set

    def nest(self, trio_fd: int) -> None:
        """Put trio's epoll descriptor in this set, so that wait_batch() also ends when trio has work.

        Only while trio's set does not hold this one (the kernel refuses a
        loop of epoll sets): unnest() before this loop's task waits on it.
        """
        self._epoll.register(trio_fd, select.EPOLLIN)
        self.nested = trio_fd

    def unnest(self) -> None:
        if self.nested >= 0:
            try:
                self._epoll.unregister(self.nested)
            except (OSError, ValueError):
                pass  # either set is closed already
            self.nested = -1

    # --- deadlines -----------------------------------------------------------

    def at(self, deadline: float, handler: Handler, timed: Timed) -> None:
        """Call handler.expired() at `deadline` (instead of any deadline it had)."""
        timed.deadline = deadline
        timed.handler = handler
        if timed.queued is None or deadline < timed.queued:
            timed.queued = deadline
            timers = self._timers
            heapq.heappush(timers, (deadline, next(self._order), timed))
            if len(timers) >= self._sweep_at:
                self._sweep()

    def _sweep(self) -> None:
        """The heap without the entries that can no longer fire: each Timed's earliest entry is kept
        while it has a deadline (a later one of the same Timed is stale already)."""
        kept = []
        for entry in self._timers:
            when, _, timed = entry
            if timed.queued == when:
                if timed.deadline is None:
                    timed.queued = None  # cancelled: its entry goes
                else:
                    kept.append(entry)
        heapq.heapify(kept)
        self._timers = kept
        self._sweep_at = max(SWEEP_FLOOR, 2 * len(kept))

    def defer(self, handler: Deferred) -> None:
        """Call handler.deferred() once the handlers of this batch ran (only while `batching`)."""
        self._deferred.append(handler)

    def cancel(self, timed: Timed) -> None:
        timed.deadline = None
        timed.handler = None

    def tick(self) -> float:
        """Read the clock into `now` (before handler code runs outside a batch)."""
        self.now = now = trio.current_time()
        return now

    # --- the task ------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Handle ready sockets and deadlines until cancelled."""
        task_status.started()
        fd = self.fileno
        # trio's scheduler runs the batches (_idle.py: between its rounds of
        # tasks, and in one poll() while it would sleep); this task drives
        # them itself only where that cannot be had.
        idle = IdleBatches.attach(self)
        try:
            if idle is not None:
                await self.unhooked.wait()
            while True:
                # One cancel scope for many waits, its deadline the earliest of
                # ours, set only when that changed: a scope per wait cost as much
                # as the wait itself (8 us each on this machine, two per request
                # on a lone connection). The deadline ends the scope; the next
                # one starts with the expired handlers called.
                #
                # After a batch, trio runs the rest of its tasks while this one
                # waits again: the wait returns at once when more is ready, and
                # costs one trio round either way (a checkpoint, then a wait
                # when nothing was left, cost two, and two more system calls,
                # on every wake-up of a quiet gateway).
                with trio.CancelScope() as scope:
                    self._scope = scope
                    while True:
                        self.batch()
                        await trio.lowlevel.wait_readable(fd)
        finally:
            self._scope = None
            if idle is not None:
                idle.detach(self)
            self._epoll.close()

    def batch(self) -> None:
        """Handle what is ready and what expired, now; then the task's wait ends at the next deadline."""
        self.now = now = trio.current_time()
        self.batching = True
        try:
            dispatch(self._epoll, self._handlers, self._failed)
        finally:
            self.batching = False
        self._settle(now)

    def wait_batch(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for this set, then handle what is ready and what expired.

        One system call for the wait and the batch (the hook's poll() of
        this set and trio's, then the batch's epoll_wait, cost two). Returns
        what the wait saw, as _idle.poll_pair: TRIOS when trio's descriptor
        (nest()) was ready, OURS when only ours were, IDLE when nothing was.
        """
        self.batching = True
        try:
            seen = wait_dispatch(self._epoll, self._handlers, self._failed, self.nested, timeout, self.tick)
        finally:
            self.batching = False
        self._settle(self.now)
        return seen

    def _settle(self, now: float) -> None:
        deferred = self._deferred
        while deferred:
            handler = deferred.pop()
            self._call(handler, handler.deferred)
        self._expire(now)
        scope = self._scope
        if scope is not None:
            deadline = self.next_deadline()
            if deadline != scope.deadline:
                scope.deadline = deadline

    def next_deadline(self) -> float:
        """The earliest deadline in the heap (trio.current_time()), or math.inf."""
        timers = self._timers
        return timers[0][0] if timers else math.inf

    def _expire(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, timed = heapq.heappop(timers)
            if timed.queued != when:
                continue  # an earlier entry of the same handler came first
            timed.queued = None
            deadline, handler = timed.deadline, timed.handler
            if deadline is None or handler is None:
                continue
            if deadline > now:  # it moved later: wait again
                timed.queued = deadline
                heapq.heappush(timers, (deadline, next(self._order), timed))
                continue
            timed.deadline = timed.handler = None
            self._call(handler, handler.expired)

    def _call(self, handler: Handler | Deferred, method: object, *args: int) -> None:
        try:
            method(*args)  # type: ignore[operator]
        except Exception:
            self._failed(handler)

    @staticmethod
    def _failed(handler: Handler | Deferred) -> None:
        """A call of `handler` raised (the exception being handled): log it once, close that connection."""
        log.exception("bug: unexpected error in the native engine; closing that connection")
        try:
            handler.fail()
        except Exception:
            log.exception("bug: closing a failed connection failed too")


def _dispatch(epoll: select.epoll, handlers: dict[int, Handler], failed: Callable[[Handler], None]) -> int:
    """Handle what is ready in `epoll` now, without waiting: each ready descriptor's handler once.

    Returns how many descriptors were ready. A handler that raises is passed
    to `failed` (inside the except block) and the others go on. The compiled
    engine has the same function (_dispatch_c.dispatch), which gives a client
    connection's readiness to the compiled cycle without a Python call.
    """
    events = epoll.poll(0, MAX_EVENTS)
    _handle(events, handlers, failed, -1)
    return len(events)


def _wait_dispatch(epoll: select.epoll, handlers: dict[int, Handler], failed: Callable[[Handler], None],
                   trio_fd: int, timeout: float, tick: Callable[[], float]) -> int:
    """Wait up to `timeout` seconds for `epoll`, call `tick` (the clock, before any handler runs), then
    handle each ready descriptor's handler as _dispatch does, except `trio_fd`: trio's epoll set, nested.

    Returns 2 (_idle.TRIOS) when `trio_fd` was ready, 1 (OURS) when others alone were, 0 (IDLE) when
    none was or a signal ended the wait. The compiled engine has the same (_dispatch_c.wait_dispatch),
    which waits without the GIL.
    """
    try:
        events = epoll.poll(max(0, math.ceil(min(timeout, 86400.0) * 1000)) / 1000, MAX_EVENTS)
    finally:
        tick()
    if not events:
        return 0
    return 2 if _handle(events, handlers, failed, trio_fd) else 1


def _handle(events: list[tuple[int, int]], handlers: dict[int, Handler], failed: Callable[[Handler], None],
            trio_fd: int) -> bool:
    """Each ready descriptor's handler once (not `trio_fd`'s); true when `trio_fd` was among them."""
    trios = False
    for ready_fd, mask in events:
        if ready_fd == trio_fd:
            trios = True
            continue
        handler = handlers.get(ready_fd)
        if handler is None:
            continue
        try:
            handler.ready(ready_fd, mask)
        except Exception:
            failed(handler)
    return trios


Dispatch = Callable[[select.epoll, dict[int, Handler], Callable[[Handler], None]], int]
WaitDispatch = Callable[[select.epoll, dict[int, Handler], Callable[[Handler], None], int, float,
                         Callable[[], float]], int]


def _choose_dispatch() -> tuple[Dispatch, WaitDispatch]:
    if CYCLE_COMPILED:
        from ._dispatch_c import dispatch, wait_dispatch  # type: ignore[import-not-found]

        return dispatch, wait_dispatch
    return _dispatch, _wait_dispatch


dispatch, wait_dispatch = _choose_dispatch()
