# What ACME is asked for, and when: pure decisions over names, expiry dates
# and past failures. The clock is an argument (seconds, any epoch the
# caller keeps to).
#
# Rules:
# - a certificate is asked for every host name a route names, and for
#   nothing else: never a wildcard (HTTP-01 and TLS-ALPN-01 cannot prove
#   one), never an IP address or a single-label name (no public CA issues
#   those), never a name a --tls-cert file already holds. A client cannot
#   make us ask for anything: only routes can;
# - one certificate per name, so one failing name never holds up another;
# - renewal: when less than RENEW_BEFORE (30 days) is left, or a third of
#   the certificate's lifetime for a short-lived one (Caddy's rule; a
#   90-day Let's Encrypt certificate renews 30 days before, either way);
# - after a failure, wait RETRY_FIRST, doubling each time up to RETRY_MAX,
#   or longer if the CA said so (Retry-After on a rate limit): Let's
#   Encrypt allows 5 failed validations per name and hour.

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["RENEW_BEFORE", "RETRY_FIRST", "RETRY_MAX", "Attempts", "renew_at", "retry_after", "wanted_names"]

RENEW_BEFORE = 30 * 86400.0  # seconds before expiry a certificate is renewed
RETRY_FIRST = 120.0  # seconds after a first failure
RETRY_MAX = 86400.0  # seconds between attempts at most


def wanted_names(route_hosts: Iterable[str | None], held: Callable[[str], bool]) -> list[str]:
    """The names to ask ACME for: the routes' host names that qualify (see the rules), sorted.

    Args:
        route_hosts: every route's host, normalised (None: a host-less route).
        held: held(name) when a --tls-cert file holds `name`.
    """
    names = set()
    for host in route_hosts:
        if host is None or host.startswith("*.") or "." not in host or host.startswith("["):
            continue
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            continue
        if not held(host):
            names.add(host)
    return sorted(names)


def renew_at(not_before: float, not_after: float) -> float:
    """When a certificate valid from `not_before` to `not_after` is renewed."""
    return not_after - min(RENEW_BEFORE, (not_after - not_before) / 3)


def retry_after(failures: int, ca_says: float | None = None, first: float = RETRY_FIRST) -> float:
    """Seconds to wait after the `failures`-th failure in a row (1 or more)."""
    wait: float = min(RETRY_MAX, first * 2.0 ** min(failures - 1, 30))
    return max(wait, ca_says or 0.0)


@dataclass
class Attempts:
    """One name's failures in a row, and when it may be tried again."""

    failures: int = 0
    next_try: float = 0.0
    last_error: str = ""
    retry_first: float = RETRY_FIRST

    def failed(self, now: float, error: str, ca_says: float | None = None) -> float:
        """Count a failure; returns the seconds until the next try."""
        self.failures += 1
        self.last_error = error
        wait = retry_after(self.failures, ca_says, self.retry_first)
        self.next_try = now + wait
        return wait

    def succeeded(self) -> None:
        self.failures, self.next_try, self.last_error = 0, 0.0, ""  # (retry_first stays)

    def may_try(self, now: float) -> bool:
        return now >= self.next_try
