# --redirect-https, decided: which plain-HTTP requests get a 308 to their
# https:// address. Pure: the caller says which hosts a certificate holds.
#
# Rules:
# - only a host a certificate holds (never the default certificate by
#   fallback: a name it does not hold would fail the client's check);
# - never an ACME HTTP-01 challenge (RFC 8555 section 8.3: the CA fetches
#   it over plain HTTP, and may not follow a redirect to a port it did not
#   ask for);
# - the location keeps the path and query as checked (origin-form), and
#   names the HTTPS port unless it is 443. 308 keeps the method and body
#   (RFC 9110 section 15.4.9), as Caddy's and Traefik's redirects do.

from __future__ import annotations

from collections.abc import Callable

from fastroute._hosts import request_host

__all__ = ["ACME_CHALLENGE_PREFIX", "https_location"]

ACME_CHALLENGE_PREFIX = b"/.well-known/acme-challenge/"


def https_location(host: bytes | None, target: bytes, port: int, covers: Callable[[str], bool]) -> bytes | None:
    """The https:// URL to redirect a plain request to, or None to serve it as it is.

    Args:
        host: the request's Host as sent; target: its checked origin-form target;
        port: the HTTPS port clients reach; covers(name): a certificate holds `name`.
    """
    if target.startswith(ACME_CHALLENGE_PREFIX) or not target.startswith(b"/"):
        return None
    name = request_host(host)
    if name is None or name.startswith(b"[") or not covers(name.decode("ascii", "replace")):
        return None
    authority = name if port == 443 else b"%s:%d" % (name, port)
    return b"https://" + authority + target
