# The certificates in force, in the trio shell: loaded whole, then replaced
# whole (one assignment) when their files change, on SIGHUP, and every
# TICKET_KEY_LIFETIME (new contexts, so new session-ticket keys).
#
# Rules:
# - a handshake takes the contexts in force when it starts and keeps them;
#   open connections are never touched by a reload;
# - a reload that fails (a key that no longer matches its certificate while
#   a renewal is half-written, a missing file) keeps the certificates in
#   force and says why once; it is tried again when the files change again.

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Sequence

import trio

from .._config import TlsPair
from .._errors import ConfigError
from ..acme._store import Store
from ._context import Loaded, fallback_pair, load
from ._names import NameIndex

__all__ = ["CHECK_INTERVAL", "TICKET_KEY_LIFETIME", "Certificates"]

log = logging.getLogger("fastroute")

CHECK_INTERVAL = 1.0  # seconds between looks at the files' stat
TICKET_KEY_LIFETIME = 12 * 3600.0  # seconds a session-ticket key is used (nginx rotates daily at most)

Stamp = tuple[tuple[int, int, int] | None, ...]


def _stamp(pairs: Sequence[TlsPair]) -> Stamp:
    """What changes when a file is rewritten or replaced (a renewal's rename, a symlink moved)."""
    stamps: list[tuple[int, int, int] | None] = []
    for pair in pairs:
        for path in (pair.cert, pair.key):
            try:
                st = os.stat(path)
            except OSError:
                stamps.append(None)
            else:
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stamps)


class Certificates:
    """The certificates of --tls-cert/--tls-key, and their reloads."""

    def __init__(self, pairs: Sequence[TlsPair], managed: Store | None = None) -> None:
        """Load every pair now (and ACME's, from `managed`).

        Raises:
            ConfigError: one of `pairs` cannot be loaded.
        """
        self.pairs = tuple(pairs)
        self.managed = managed
        self._stamp = _stamp(self._all())
        self.index, self.loaded = self._load()
        self._files = self._files_index()
        self.loads = 1  # successful loads, the first included (tests and the admin read it)
        self._failed: Stamp | None = None
        self._built = 0.0  # trio time of the contexts in force (watch() starts the clock)

    def files_cover(self, name: str) -> bool:
        """Whether a --tls-cert file (not ACME) holds `name`: ACME is not asked for it."""
        return self._files is not None and self._files.covers(name)

    def _files_index(self) -> NameIndex[Loaded] | None:
        files = [(one.names, one) for one in self.loaded if one.pair in self.pairs]
        return NameIndex(files) if files else None

    def validity(self, pair: TlsPair) -> tuple[float, float] | None:
        """(notBefore, notAfter) as Unix times of the certificate in force from `pair`, or None
        (not stored, or left out as unloadable)."""
        for one in self.loaded:
            if one.pair == pair:
                return one.not_before.timestamp(), one.not_after.timestamp()
        return None

    @property
    def context(self) -> ssl.SSLContext:
        """The context a new handshake starts with (its SNI callback picks the others)."""
        return self.index.default.context

    def context_for(self, *, http2: bool) -> ssl.SSLContext:
        """The context a handshake on a listener starts with: offering h2 unless --no-http2 named it."""
        default = self.index.default
        return default.context if http2 else default.context_http1

    def _all(self) -> tuple[TlsPair, ...]:
        """The files' pairs first (they win a name), then ACME's."""
        return self.pairs + (tuple(self.managed.pairs()) if self.managed is not None else ())

    def _load(self) -> tuple[NameIndex[Loaded], list[Loaded]]:
        """Every pair, loaded. An ACME pair that fails is left out (one name never blocks the
        others); a --tls-cert pair that fails fails the whole load.

        Raises:
            ConfigError: a --tls-cert pair cannot be loaded.
        """
        managed = list(self.managed.pairs()) if self.managed is not None else []
        good = []
        for pair in managed:
            try:
                load([pair])
            except ConfigError as error:
                log.warning("ACME certificate left out: %s", error)
            else:
                good.append(pair)
        pairs = list(self.pairs) + good
        if not pairs:
            assert self.managed is not None  # (no --tls-cert means ACME)
            pairs = [fallback_pair(self.managed.root)]
        return load(pairs)

    def reload(self, why: str) -> bool:
        """Load the files again and swap them in; on error keep what is in force. Returns success."""
        stamp = _stamp(self._all())
        try:
            index, loaded = self._load()
        except ConfigError as error:
            if stamp != self._failed:
                log.error("%s: TLS certificates not reloaded, keeping those in force: %s", why, error)
            self._failed = stamp
            self._stamp = stamp
            return False
        self.index, self.loaded = index, loaded
        self._files = self._files_index()
        self._stamp = stamp
        self._failed = None
        self.loads += 1
        self._built = trio.current_time()
        log.info("%s: TLS certificates reloaded (%s)", why, ", ".join(n for one in loaded for n in one.names))
        return True

    async def watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reload when the files change, and when the ticket keys are due; runs until cancelled."""
        self._built = trio.current_time()
        task_status.started()
        while True:
            await trio.sleep(CHECK_INTERVAL)
            if _stamp(self._all()) != self._stamp:
                self.reload("certificate files changed")
            elif trio.current_time() - self._built >= TICKET_KEY_LIFETIME:
                if not self.reload("session ticket keys due"):
                    self._built = trio.current_time()  # try again at the next lifetime, not every second
