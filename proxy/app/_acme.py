# ACME in the trio shell: asks the CA for a certificate for every name the
# routes name (routing/_sources.py keeps the list; _plan.py decides what is
# due), one name at a time, in a worker thread (_client.py blocks), and
# hands what it obtains to the store, which every worker's certificates
# watch (tls/_certs.py).
#
# Rules:
# - one process talks to the CA: the one holding the store's lock (a
#   --workers worker, or one of several gateways sharing the storage);
#   the others serve challenges and certificates from the store, and take
#   the lock over if its holder dies (the kernel releases it);
# - a stored certificate that is not due is used as it is: a restart does
#   not contact the CA;
# - a failure waits (_plan.retry_after) and never holds up another name.

from __future__ import annotations

import datetime
import fcntl
import logging
import os
import time
from collections.abc import Callable

import trio

from .._config import Acme
from ..routing._sources import RouteSources
from ..tls._certs import Certificates
from ..acme._plan import Attempts, renew_at
from ..acme._store import Store

__all__ = ["AcmeManager"]

log = logging.getLogger("fastroute")

LOCK_RETRY = 10.0  # seconds between tries to take the store's lock
LOOK_AT_MOST = 3600.0  # seconds between looks at what is due, at most


class AcmeManager:
    def __init__(self, acme: Acme, store: Store, sources: RouteSources, certificates: Certificates,
                 changed: Callable[[], trio.Event]) -> None:
        self.acme = acme
        self.store = store
        self.sources = sources
        self.certificates = certificates
        self._changed = changed  # the routes' change event now (the gateway replaces it on each swap)
        self.attempts: dict[str, Attempts] = {}
        self.issued = 0  # certificates obtained (tests and the log)
        self.leader = False  # holds the store's lock

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        lock = os.open(self.store.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await trio.sleep(LOCK_RETRY)
            self.leader = True
            await self._follow()
        finally:
            os.close(lock)  # (releases the lock)

    async def _follow(self) -> None:
        from ..acme._client import AcmeFailed, Issuer  # (the one import of the ACME client)

        issuer = Issuer(self.store, self.acme.directory, self.acme.email,
                        str(self.acme.ca_bundle) if self.acme.ca_bundle is not None else None, self.acme.challenge)
        while True:
            changed = self._changed()
            now = time.time()
            wake = now + LOOK_AT_MOST
            for name in list(self.sources.names):
                attempts = self.attempts.setdefault(name, Attempts(retry_first=self.acme.retry_first))
                stored = self.certificates.validity(self.store.pair(name))  # (as loaded: no file read)
                due = renew_at(*stored) if stored is not None else 0.0
                if now < due or not attempts.may_try(now):
                    wake = min(wake, max(due, attempts.next_try))
                    continue
                why = "renewing" if stored is not None else "obtaining"
                log.info("ACME: %s a certificate for %s from %s", why, name, self.acme.directory)
                try:
                    issued = await trio.to_thread.run_sync(issuer.issue, name, abandon_on_cancel=True)
                except AcmeFailed as error:
                    wait = attempts.failed(time.time(), str(error), error.wait)
                    log.warning("ACME: no certificate for %s: %s; trying again in %s", name, error,
                                datetime.timedelta(seconds=round(wait)))
                    wake = min(wake, attempts.next_try)
                    continue
                await trio.to_thread.run_sync(self.store.save, name, issued.chain_pem, issued.key_pem)
                attempts.succeeded()
                self.issued += 1
                self.certificates.reload(f"ACME: a certificate for {name}")
                stored = self.certificates.validity(self.store.pair(name))
                if stored is not None:
                    wake = min(wake, renew_at(*stored))
            with trio.move_on_after(max(1.0, wake - time.time())):
                await changed.wait()
