# The CI benchmark pass judges ratios within one run, never absolute times.

from __future__ import annotations

from bench.ci import FLOORS, broken_floors, medians


def figures(ratio: float) -> dict[str, float]:
    found = {}
    for _, fast, slow, _ in FLOORS:
        found[fast] = 1e-6
        found[slow] = 1e-6 * ratio
    return found


def test_ratios_above_every_floor_pass_whatever_the_absolute_times() -> None:
    assert broken_floors(figures(10.0)) == []
    slow_machine = {name: value * 1000 for name, value in figures(10.0).items()}
    assert broken_floors(slow_machine) == []


def test_a_ratio_below_its_floor_fails_and_says_which() -> None:
    broken = broken_floors(figures(1.2))
    assert len(broken) == len(FLOORS) and "below the floor" in broken[0]


def test_a_benchmark_that_did_not_run_fails() -> None:
    found = figures(10.0)
    del found[FLOORS[0][1]]
    assert broken_floors(found) == [f"bench: {FLOORS[0][0]}: {FLOORS[0][1]} or {FLOORS[0][2]} did not run"]


def test_a_figure_a_benchmark_measured_itself_is_read_from_its_extra_info() -> None:
    report = {"benchmarks": [
        {"name": "test_x[native]", "stats": {"median": 2.0}, "extra_info": {"cpu": 30.0, "note": "text"}},
        {"name": "test_x[trio]", "stats": {"median": 2.0}},
    ]}
    assert medians(report) == {"test_x[native]": 2.0, "test_x[native]:cpu": 30.0, "test_x[trio]": 2.0}
