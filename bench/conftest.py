from __future__ import annotations

import pytest

import fastroute


@pytest.fixture(params=["py", "c"])
def table_cls(request: pytest.FixtureRequest) -> type:
    if request.param == "py":
        return fastroute.PyRouteTable
    from fastroute._table import RouteTable

    return RouteTable
