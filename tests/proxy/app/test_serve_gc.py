# What `serve` does with the collector: what the start made is frozen out of
# its passes while the gateway serves, and handed back when it ends.

from __future__ import annotations

import gc

import trio

from proxy.app._serve import serve

from ...helpers import make_config


async def test_the_start_is_frozen_out_of_the_collectors_passes_while_serving() -> None:
    assert gc.get_freeze_count() == 0
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, make_config())
        assert gc.get_freeze_count() > 0
        nursery.cancel_scope.cancel()
    assert gc.get_freeze_count() == 0
