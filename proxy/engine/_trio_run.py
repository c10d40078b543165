# The one place that reads trio's private run state: what the engine's
# scheduler hook (_idle.py) needs to know of the running trio and cannot get
# from its public API. Everything else of the engine uses trio's public API.
#
# Rules:
# - run_state() returns None, never raises, where trio is not as this module
#   expects (another version's internals, a test's clock, trio as a guest
#   of another loop); the engine then waits through trio's public waits;
# - KNOWN_TRIO names the trio releases whose internals this was read
#   against; pyproject.toml pins trio to them, and a test
#   (tests/proxy/engine/test_trio_run.py) fails on a trio it does not name,
#   so that a new release is read before it is used.

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

__all__ = ["KNOWN_TRIO", "RunState", "known", "run_state"]

KNOWN_TRIO = ("0.35",)  # major.minor releases whose internals run_state() reads


@dataclass(frozen=True, slots=True)
class RunState:
    """What the engine's hook knows of the trio run it is called from."""

    key: object  # the run itself: one hook per run
    epoll_fd: int  # trio's own epoll descriptor (its I/O manager's)
    busy: Callable[[], object]  # true while trio has a task to run, or one waits for all tasks blocked
    wake: Callable[[], None]  # ends trio's next sleep at once


def run_state() -> tuple[RunState | None, str | None]:
    """The running trio's state, or (None, why not) where it cannot be read (why None: nothing to say,
    a test's clock or a guest run)."""
    try:
        runner: Any = trio._core._run.GLOBAL_RUN_CONTEXT.runner  # Any: trio's private Runner, no type to name
        if type(runner.clock) is not trio._core._run.SystemClock or runner.is_guest:
            return None, None
        runq, waiting_for_idle = runner.runq, runner.waiting_for_idle
        io_manager = runner.io_manager
        return RunState(runner, io_manager._epoll.fileno(), lambda: runq or waiting_for_idle,
                        io_manager.force_wakeup), None
    except (AttributeError, TypeError) as error:
        return None, f"trio's run state is not as expected: {error}"


def known(version: str = trio.__version__) -> bool:
    """Whether `version` of trio is one whose internals were read (KNOWN_TRIO)."""
    return ".".join(version.split(".")[:2]) in KNOWN_TRIO
