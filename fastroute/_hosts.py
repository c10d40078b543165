# Host names: what a valid host key of a HostTable is, its one normal form,
# and the host a request names (its Host header, or the authority of an
# absolute-form target), in the form keys are compared in.
#
# Both HostTable implementations use these functions, so they accept,
# reject and normalise alike by construction.
#
# Key rules, in the order they are checked:
# - a key is a str (or None: the routes that serve every host);
# - ASCII only: an internationalised name is given in its ASCII form
#   (punycode, "xn--..."), which is what a client sends (RFC 5890); the
#   gateway converts Unicode names (proxy.routing._hosts) before building;
# - case is folded, one trailing "." dropped ("Api.Example.COM." is
#   "api.example.com"); no port;
# - a name: dot-separated labels of letters, digits, "-" and "_", each 1 to
#   63 bytes, 253 in all; or an IPv6 literal in brackets ("[::1]");
# - "*." followed by a name is a wildcard for one more label: "*.example.com"
#   serves "a.example.com", not "example.com", not "a.b.example.com".
#
# A request's host (request_host): the bytes before the port (the last ":"
# outside brackets), case folded, one trailing "." dropped; None when
# empty. Nothing else is checked: the gateway's head checks have already
# refused a malformed Host, and a host no key spells only fails to match.

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, Union

from ._errors import InvalidHost, InvalidPrefix
from ._keys import normalise_prefix

__all__ = ["MAX_HOST", "HostRoutes", "group_by_host", "normalise_host", "normalise_host_routes", "request_host",
           "wildcard_suffix"]

V = TypeVar("V")
HostRoutes = Union[Mapping[tuple[Union[str, None], str], V], Iterable[tuple[tuple[Union[str, None], str], V]]]

MAX_HOST = 253  # bytes of a name (RFC 1035 section 2.3.4, without the root's dot)
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")
_IPV6 = re.compile(r"\[[0-9a-f:.]+\]\Z")


def normalise_host(host: object) -> str:
    """Return the normal form of one host key.

    Raises:
        TypeError: `host` is not a str.
        InvalidHost: `host` breaks one of the rules above.
    """
    if not isinstance(host, str):
        raise TypeError(f"host must be str, not {type(host).__name__}: {host!r}")
    if not host.isascii():
        raise InvalidHost(host, "is not ASCII (give an internationalised name in its punycode form, xn--...)")
    name = host.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InvalidHost(host, "is empty")
    if name.startswith("["):
        if not _IPV6.match(name):
            raise InvalidHost(host, "is not a bracketed IPv6 address")
        return name
    rest = name[2:] if name.startswith("*.") else name
    if len(rest) > MAX_HOST:
        raise InvalidHost(host, f"is longer than {MAX_HOST} bytes")
    for label in rest.split("."):
        if ":" in label:
            raise InvalidHost(host, "has a port (a host route names the host alone)")
        if label == "*":
            raise InvalidHost(host, "has '*' other than as its whole first label")
        if not _LABEL.match(label):
            raise InvalidHost(host, f"has an invalid label {label!r}")
    return name


def request_host(raw: bytes | str | None) -> bytes | None:
    """The host a request names, as host keys are compared: no port, lowercase, no trailing dot."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    elif not isinstance(raw, bytes):
        raise TypeError(f"host must be bytes, str or None, not {type(raw).__name__}")
    if raw.startswith(b"["):
        end = raw.find(b"]")
        host = raw[: end + 1] if end != -1 else raw
    else:
        colon = raw.rfind(b":")
        host = raw[:colon] if colon != -1 else raw
    host = host.lower()
    if host.endswith(b"."):
        host = host[:-1]
    return host or None


def wildcard_suffix(host: bytes) -> bytes | None:
    """What a wildcard key serving `host` is keyed by: the host less its first label, or None."""
    dot = host.find(b".")
    if dot <= 0 or dot == len(host) - 1 or host.startswith(b"["):
        return None
    return host[dot + 1 :]


def normalise_host_routes(routes: HostRoutes[V]) -> dict[tuple[str | None, str], V]:
    """Validate and normalise every (host, prefix) key of a host route mapping.

    Raises:
        TypeError: a key is not a (host or None, prefix) pair of str.
        InvalidHost, InvalidPrefix: a part is invalid, or two keys normalise alike.
    """
    items: Iterable[tuple[Any, V]]  # Any: the caller's keys, checked below
    items = routes.items() if isinstance(routes, Mapping) else routes
    normalised: dict[tuple[str | None, str], V] = {}
    original: dict[tuple[str | None, str], object] = {}
    for key, value in items:
        if not isinstance(key, tuple) or len(key) != 2:
            raise TypeError(f"a host route key is a (host or None, prefix) pair, not {key!r}")
        host = None if key[0] is None else normalise_host(key[0])
        pair = (host, normalise_prefix(key[1]))
        if pair in normalised:
            raise InvalidPrefix(key[1], f"is the same route as {original[pair]!r} (both are {pair!r})")
        normalised[pair] = value
        original[pair] = key
    return normalised


def group_by_host(routes: dict[tuple[str | None, str], V]) -> tuple[
        dict[bytes, dict[str, V]], dict[bytes, dict[str, V]], dict[str, V]]:
    """Normalised host routes as the tables hold them: by exact host, by wildcard suffix, and host-less."""
    exact: dict[bytes, dict[str, V]] = {}
    wild: dict[bytes, dict[str, V]] = {}
    anywhere: dict[str, V] = {}
    for (host, prefix), value in routes.items():
        if host is None:
            anywhere[prefix] = value
        elif host.startswith("*."):
            wild.setdefault(host[2:].encode("ascii"), {})[prefix] = value
        else:
            exact.setdefault(host.encode("ascii"), {})[prefix] = value
    return exact, wild, anywhere
