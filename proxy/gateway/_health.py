# The trio shell of active health checks: one task per (backend, check)
# that the table in force asks for (routing/_health.py decides everything:
# what to check, what an answer means, when a backend leaves or returns).
# The tasks follow the table: started and stopped on every swap.

from __future__ import annotations

import logging
import time
from typing import Protocol

import trio

from fastroute import HostTable

from .._config import Address, HealthCheck
from ..routing._health import checks, forget, passes, record, request, status_of
from ..routing._pool import BackendState, Pool

__all__ = ["Checked", "follow_checks", "probe"]

log = logging.getLogger("fastroute.health")
MAX_ANSWER = 4096  # bytes read for a status line, at most


class Checked(Protocol):
    """What the checks read of the gateway (_server.Gateway): its table, and when it changes."""

    @property
    def table(self) -> HostTable[Pool]: ...

    @property
    def table_changed(self) -> trio.Event: ...


async def probe(address: Address, check: HealthCheck) -> int | None:
    """One check: the answer's status code; None if none came in time; 0 if it was not HTTP."""
    with trio.move_on_after(check.timeout):
        try:
            stream = await trio.open_tcp_stream(address.host, address.port)
        except OSError:
            return None
        try:
            await stream.send_all(request(check, address))
            data = b""
            while len(data) < MAX_ANSWER:
                chunk = await stream.receive_some(MAX_ANSWER)
                if not chunk:
                    break
                data += chunk
                status = status_of(data)
                if status is not None:
                    return status
            return status_of(data + b"\r\n") if data else None
        except (OSError, trio.BrokenResourceError):
            return None
        finally:
            await trio.aclose_forcefully(stream)
    return None


async def _check_forever(address: Address, check: HealthCheck, state: BackendState) -> None:
    while True:
        status = await probe(address, check)
        if record(state, passes(status), time.monotonic()):
            if state.check_down:
                log.warning("%s fails its health check (GET %s: %s): out of rotation", address, check.path,
                            "no answer" if status is None else status)
            else:
                log.info("%s passes its health check again: back in rotation", address)
        await trio.sleep(check.interval)


async def follow_checks(gateway: Checked) -> None:
    """Check every backend the table's routes ask for, until cancelled."""
    running: dict[tuple[Address, HealthCheck], tuple[trio.CancelScope, BackendState]] = {}

    async def one(key: tuple[Address, HealthCheck], state: BackendState, scope: trio.CancelScope) -> None:
        with scope:
            await _check_forever(key[0], key[1], state)

    async with trio.open_nursery() as nursery:
        while True:
            changed = gateway.table_changed
            wanted = checks(gateway.table.routes().values())
            watched = {id(state) for state in wanted.values()}
            for key, (scope, state) in list(running.items()):
                if wanted.get(key) is not state:  # gone, or a new state for the same address
                    scope.cancel()
                    del running[key]
                    if id(state) not in watched:
                        forget(state)
            for key, state in wanted.items():
                if key not in running:
                    scope = trio.CancelScope()
                    running[key] = (scope, state)
                    nursery.start_soon(one, key, state, scope)
            await changed.wait()
