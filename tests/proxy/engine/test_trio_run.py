# trio's private run state, read in one place (engine/_trio_run.py): the
# trio installed is one whose internals were read, the pin says so, and the
# state is read from a real run.

from __future__ import annotations

import os
import re
from pathlib import Path

import trio

from proxy.engine._trio_run import KNOWN_TRIO, known, run_state

ROOT = Path(__file__).resolve().parents[3]


def test_the_installed_trio_is_one_whose_internals_were_read() -> None:
    assert known(), (f"trio {trio.__version__} is not in KNOWN_TRIO {KNOWN_TRIO}: read its run state "
                     "(engine/_trio_run.py) before adding it, and the pin in pyproject.toml")
    assert not known("0.24.0") and not known("1.0.0")


def test_the_pin_names_exactly_the_known_releases() -> None:
    pin = re.search(r'"trio(>=[^"]*)"', (ROOT / "pyproject.toml").read_text())
    assert pin is not None
    low, high = min(KNOWN_TRIO, key=_release), max(KNOWN_TRIO, key=_release)
    major, minor = _release(high)
    assert pin.group(1) == f">={low},<{major}.{minor + 1}"


def _release(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


async def test_the_run_state_is_read_from_a_real_run() -> None:
    state, why = run_state()
    assert why is None and state is not None
    assert os.readlink(f"/proc/self/fd/{state.epoll_fd}") == "anon_inode:[eventpoll]"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0)
        assert state.busy()  # a task is scheduled and has not run yet
    state.wake()  # a byte on trio's wake-up socket: the run goes on
    await trio.sleep(0)
