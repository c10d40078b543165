# Every skip says why (issue 37): two hooks for tests/conftest.py.
#
# - A skip from inside a trio nursery comes out of it in an exception
#   group; pytest-trio then raises a new skip with no reason (a bare
#   "Skipped") while handling the group. The skip inside the group is
#   raised instead, with its reason.
# - A skip that still gives no reason fails, naming the test.
#
# tests/test_skip_reasons.py runs both in a run of its own.

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["pytest_pyfunc_call", "pytest_runtest_makereport"]


def _only_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    leaves: list[BaseException] = []
    todo: list[BaseException] = [group]
    while todo:
        error = todo.pop()
        if isinstance(error, BaseExceptionGroup):
            todo.extend(error.exceptions)
        else:
            leaves.append(error)
    return leaves[0] if len(leaves) == 1 else None


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    # A skip from inside a trio nursery comes out in an exception group;
    # pytest-trio turns that into a new skip with no reason (a bare
    # "Skipped"), raised while handling the group: the skip inside it says why.
    try:
        return (yield)
    except pytest.skip.Exception as skip:
        group = skip.__context__
        if not skip.msg and isinstance(group, BaseExceptionGroup):
            leaf = _only_leaf(group)
            if isinstance(leaf, pytest.skip.Exception):
                raise leaf from None
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Every skip says why: one that does not fails, naming the test.
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped:").strip()
        if reason in ("", "Skipped"):
            report.outcome = "failed"
            report.longrepr = f"{item.nodeid} skipped without saying why"
    return report
