# The engine's states and moves in one table (engine/_states.py): the
# general path enters a state only through it, the compiled cycle makes
# only the moves it lists as the cycle's, and ARCHITECTURE.md's diagram is
# the table's.

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from proxy.engine import _states
from proxy.engine._exchange import NativeClient
from proxy.engine._states import ALLOWED, CLOSED, HEAD, MOVES, NAMES, SPLICE, START

ENGINE = Path(_states.__file__).parent
ROOT = ENGINE.parents[1]


def targets(source: str, pattern: str) -> set[int]:
    by_name = {name: state for state, name in NAMES.items()}
    return {by_name[name] for name in re.findall(pattern, source)}


def test_every_move_is_listed_once_between_known_states() -> None:
    pairs = [(move.source, move.target) for move in MOVES]
    assert len(pairs) == len(set(pairs)) == len(ALLOWED)
    assert {state for pair in pairs for state in pair} == set(NAMES)


def test_every_state_is_reached_from_the_start_and_can_close() -> None:
    reached = {START}
    while True:
        more = {move.target for move in MOVES if move.source in reached} - reached
        if not more:
            break
        reached |= more
    assert reached == set(NAMES)
    assert all((state, CLOSED) in ALLOWED for state in NAMES if state != CLOSED)


def test_the_general_path_enters_states_only_through_the_table() -> None:
    general = {path.name: path.read_text() for path in ENGINE.glob("*.py") if path.name != "_states.py"}
    assignments = {name: re.findall(r"\.state = (\w+)", source) for name, source in general.items()}
    # where a connection (or an HTTP/2 stream) begins, and enter(): nowhere else
    assert {name: found for name, found in assignments.items() if found} == {
        "_exchange.py": ["START", "moved"], "_h2leg.py": ["START", "moved"]}
    entered = set().union(*(targets(source, r"(?:self|client)\.enter\(([A-Z]+)\)") for source in general.values()))
    assert entered == {move.target for move in MOVES if not move.cycle}


def test_the_compiled_cycle_makes_only_its_own_moves() -> None:
    made = targets((ENGINE / "_cycle_c.pyx").read_text(), r"\bc\.state = ([A-Z]+)")
    assert made == {move.target for move in MOVES if move.cycle}


def test_a_move_the_table_does_not_list_is_refused() -> None:
    connection = SimpleNamespace(state=HEAD)
    with pytest.raises(AssertionError, match="no move from HEAD to SPLICE"):
        NativeClient.enter(connection, SPLICE)  # type: ignore[arg-type]
    assert connection.state == HEAD
    NativeClient.enter(connection, CLOSED)  # type: ignore[arg-type]
    assert connection.state == CLOSED


def test_the_architecture_diagram_is_the_table() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    shown = re.search(r"```mermaid\n(stateDiagram-v2\n.*?)```", text, re.S)
    assert shown is not None, "ARCHITECTURE.md has no state diagram"
    assert shown.group(1) == _states.diagram(), "run: python -m proxy.engine._states"
