# Discovery's errors. The engine failing in any other way is whatever the
# SDK raised: the watcher and the waker treat every exception from an engine
# call as "the engine is unreachable now" (they retry; they never crash).

from __future__ import annotations

__all__ = ["EngineError", "EngineStalled", "WakeFailed"]


class EngineError(Exception):
    """The engine refused a call (docker start of a container it cannot start)."""


class EngineStalled(Exception):
    """The engine stopped answering while the events stream looked open."""


class WakeFailed(Exception):
    """A fastroute.wake container could not be started, or did not get ready."""
