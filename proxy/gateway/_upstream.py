# Backend connections: open, pool, reuse, close. The trio half of _pool.py.

from __future__ import annotations

import errno
import select
import time

import trio

from .._config import Limits, Timeouts
from .._errors import UpstreamConnectError, UpstreamConnectTimeout
from ._errors import BackendLeft
from ._http import PARSERS, HttpStream
from ..routing._pool import IDLE_UPSTREAM_MAX_AGE, UPSTREAM_MAX_INCOMPLETE_EVENT, BackendState

__all__ = ["acquire", "close_idle", "release"]




def _looks_alive(conn: HttpStream) -> bool:
    # An idle keep-alive connection has nothing to read. If it has, the
    # backend closed it (EOF) or sent something unasked: either way, do not
    # send a request on it. One poll() of one descriptor, no waiting; poll,
    # not select, which refuses descriptors numbered 1024 or more.
    try:
        poller = select.poll()
        poller.register(conn.stream.socket.fileno(), select.POLLIN)  # type: ignore[attr-defined]
        return not poller.poll(0)
    except (OSError, ValueError, AttributeError):
        return False


async def acquire(backend: BackendState, timeouts: Timeouts, parser: str = "fast") -> tuple[HttpStream, bool]:
    """A connection to `backend`: a pooled one if a live one is idle, else a new one.

    Returns:
        (connection, reused)

    Raises:
        UpstreamConnectError: the backend refused, was unreachable, or did not
            accept within the connect timeout. Nothing was sent.
        BackendLeft: the backend left the route table meanwhile. Nothing was sent.
    """
    now = time.monotonic()
    while backend.idle:
        conn, since = backend.idle.pop()
        if now - since < IDLE_UPSTREAM_MAX_AGE and _looks_alive(conn):
            return conn, True
        await conn.aclose()
    address = backend.address
    # If the backend leaves the table while this connect waits (its container
    # died or left the network: the SYN may never be answered), stop waiting:
    # the request can go where the new table says, nothing having been sent.
    with trio.CancelScope() as left:
        backend.on_retire.add(left.cancel)
        try:
            with trio.fail_after(timeouts.connect):
                stream = await trio.open_tcp_stream(address.host, address.port)
        except trio.TooSlowError:
            raise UpstreamConnectTimeout(f"connecting to {address} timed out") from None
        except OSError as error:
            raise UpstreamConnectError(f"cannot connect to {address}: {error.strerror or error}",
                                       refused=_refused(error)) from error
        finally:
            backend.on_retire.discard(left.cancel)
    if left.cancelled_caught:
        raise BackendLeft(f"{address} left the route table while connecting")
    return HttpStream(stream, PARSERS[parser].client(max_head=UPSTREAM_MAX_INCOMPLETE_EVENT)), False


def _refused(error: OSError) -> bool:
    # trio.open_tcp_stream raises an OSError whose cause (or, for several
    # addresses, whose group) holds the connect errors.
    seen: list[BaseException] = [error]
    while seen:
        current = seen.pop()
        if isinstance(current, OSError) and current.errno == errno.ECONNREFUSED:
            return True
        if isinstance(current, BaseExceptionGroup):
            seen.extend(current.exceptions)
        if current.__cause__ is not None:
            seen.append(current.__cause__)
    return False


async def release(backend: BackendState, conn: HttpStream, limits: Limits) -> None:
    """Pool `conn` if its exchange ended cleanly and there is room; else close it."""
    # Bytes the backend sent past the end of its response (a body longer than
    # its Content-Length, say) would be read as the answer to the next
    # request on this connection: such a connection is never reused.
    if (
        conn.reusable()
        and not conn.conn.trailing_data[0]
        and not backend.retired
        and len(backend.idle) < limits.max_idle_upstream
    ):
        conn.conn.start_next_cycle()
        conn.bytes_received = 0
        backend.idle.append((conn, time.monotonic()))
    else:
        await conn.aclose()


async def close_idle(backend: BackendState) -> None:
    while backend.idle:
        conn, _ = backend.idle.pop()
        await conn.aclose()
