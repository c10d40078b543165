# Pure: routes -> an HAProxy configuration, and the runtime-API commands that
# turn one running set of servers into another. No I/O.
#
# Rules:
# - one frontend; each prefix matches on whole segments: `path` equal to the
#   prefix, or beginning with prefix + "/" ("/steve/foo" matches "/steve/foo",
#   "/steve/foo/x" and "/steve/foo?q", never "/steve/foobar"; HAProxy's
#   `path` stops at "?"); longest prefix first; "/" is the default backend,
#   and without it a request no prefix matches gets fastroute's 404;
# - routes by host (Route.host) come first, as in the gateway: the exact
#   host's, then the wildcard's one level up, then the host-less ones. The
#   request's Host is compared as the gateway compares it (lowercase, no
#   port, no trailing dot: txn.fastroute_host); a wildcard is a regex of one
#   label more;
# - the gateway's path policy as far as HAProxy 2.6 allows without its
#   experimental directives: dot segments (also %2e), %2F, %5C, backslash and
#   %00 are refused with 400, runs of "/" are merged before routing, so the
#   path routed on is the path forwarded; escapes are not decoded (an escaped
#   character matches only a prefix written with the same escape);
# - names: a backend is named after its prefix and a server after its
#   container, through one injective encoding (letters, digits and "-" kept,
#   "/" -> ".", anything else "_XX" per UTF-8 byte), so two routes can never
#   share a name and every name is one HAProxy accepts;
# - every value that came from a label is written single-quoted; regexes are
#   escaped, and "%" is doubled where HAProxy reads a log-format string.

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .._config import Address, HealthCheck, Route
from ..routing._health import FALL, RISE

__all__ = [
    "CHECK",
    "DEFAULT_PREAMBLE",
    "MAX_DISABLED",
    "NO_ROUTE_BACKEND",
    "Plan",
    "Pool",
    "Server",
    "backend_name",
    "bind_line",
    "drain_step",
    "plan_from",
    "quote",
    "render",
    "Running",
    "runtime_step",
    "server_name",
]

# Health check of every server: a TCP connect every 2 s; 3 failures take it
# out, 2 successes bring it back. Written on each server line because
# servers added through the runtime API do not inherit default-server.
CHECK = "check inter 2s fall 3 rise 2"
NO_ROUTE_BACKEND = "fastroute.no-route"
# Servers left in maintenance by runtime changes before a reload is
# preferred, which drops them (churning containers would pile them up).
MAX_DISABLED = 64

DEFAULT_PREAMBLE = """\
global
    log stderr format raw local0 notice

defaults
    mode http
    log global
    option dontlognull
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 60s
    timeout tunnel 1h
"""

# Segments that are "." or ".." written plainly or with %2e; the encoded
# separators and NUL; a raw backslash.
_REFUSED_PATH = r"(^|/)(\.|%2[eE]){1,2}(/|$)|%2[fF]|%5[cC]|%00|\\"
_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True, slots=True)
class Server:
    name: str
    address: Address


@dataclass(frozen=True, slots=True)
class Pool:
    """One prefix: one HAProxy backend."""

    prefix: str
    backend: str
    strip_prefix: bool
    servers: tuple[Server, ...]
    host: str | None = None  # Route.host: served only for this host ("*.example.com": one label more)
    check: HealthCheck | None = None  # Route.check: an HTTP check instead of the TCP one

    @property
    def server_check(self) -> str:
        """The check words of each of its server lines (and of `add server`)."""
        if self.check is None:
            return CHECK
        return f"check inter {_ms(self.check.interval)} fall {FALL} rise {RISE}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What HAProxy should serve: every pool, longest prefix first."""

    pools: tuple[Pool, ...] = ()

    @property
    def structure(self) -> tuple[tuple[str | None, str, str, bool, HealthCheck | None], ...]:
        """What only a reload can change: the hosts and prefixes, their backends and settings."""
        return tuple((p.host, p.prefix, p.backend, p.strip_prefix, p.check) for p in self.pools)


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def _encode(text: str) -> str:
    out = []
    for byte in text.encode("utf-8", "surrogatepass"):
        if byte in _KEEP:
            out.append(chr(byte))
        elif byte == 0x2F:  # "/"
            out.append(".")
        else:
            out.append(f"_{byte:02X}")
    return "".join(out)


def backend_name(name: str) -> str:
    """The backend for a route's name (Route.name): "/steve/foo" -> "route.steve.foo", "/" -> "route.",
    "api.example.com/v1" -> "routeapi_2Eexample_2Ecom.v1"."""
    return "route" + _encode(name)


def server_name(text: str) -> str:
    """A server name from a container name or an address; distinct texts, distinct names."""
    return "s-" + _encode(text)


def quote(word: str) -> str:
    """One HAProxy configuration word holding `word` literally (single quotes)."""
    return "'" + word.replace("'", "'\\''") + "'"


def _logformat(text: str) -> str:
    return text.replace("%", "%%")


def plan_from(routes: Iterable[Route], names: Mapping[Address, str] | None = None) -> Plan:
    """The plan for these routes.

    Args:
        routes: the merged route set (static and Docker), one per prefix.
        names: a container name for each address that belongs to one; other
            servers are named after their address.
    """
    names = names or {}
    pools = []
    for route in routes:
        texts: list[str] = []
        for address in route.backends:
            text = names.get(address) or str(address)
            texts.append(f"{text}@{address}" if text in texts else text)  # two addresses, one name: both kept
        servers = tuple(Server(server_name(text), address) for text, address in zip(texts, route.backends))
        pools.append(Pool(route.prefix, backend_name(route.name), route.strip_prefix, servers, route.host,
                          route.check))
    # Exact hosts, then wildcards, then host-less routes; within each, the
    # longest prefix first, so that no shorter prefix shadows a longer one;
    # the host and prefix break ties for a stable file.
    pools.sort(key=lambda p: (_host_rank(p.host), -len(p.prefix.encode("utf-8", "surrogatepass")), p.host or "",
                              p.prefix))
    return Plan(tuple(pools))


# The request's Host as the gateway compares it (fastroute._hosts.request_host).
_REQUEST_HOST = "req.hdr(host),lower,regsub(':[0-9]*$',),regsub('[.]$',)"


def _host_rank(host: str | None) -> int:
    return 2 if host is None else 1 if host.startswith("*.") else 0


def _host_condition(host: str) -> str:
    if host.startswith("*."):
        return f"{{ var(txn.fastroute_host) -m reg {quote('^[^.]+' + re.escape(host[1:]) + '$')} }}"
    return f"{{ var(txn.fastroute_host) -m str {quote(host)} }}"


def bind_line(spec: str) -> str:
    """A frontend's bind line for `spec`: a TLS bind ("ssl") offers HTTP/2 then HTTP/1.1 by ALPN,
    as the gateway's TLS listeners do, unless the spec names its own ALPN list."""
    words = spec.split()
    if "ssl" in words and "alpn" not in words:
        spec += " alpn h2,http/1.1"
    return f"    bind {spec}"


def render(plan: Plan, *, binds: Sequence[str], preamble: str = DEFAULT_PREAMBLE) -> str:
    """The whole configuration file.

    Args:
        plan: what to serve.
        binds: the text after "bind" for each frontend bind line (e.g. ":8080"; bind_line() adds ALPN).
        preamble: the global and defaults sections, used verbatim.
    """
    lines = [preamble.rstrip("\n"), "", "# Generated by fastroute: edits below this line are overwritten.", ""]
    lines += ["frontend fastroute", "    mode http"]
    lines += [bind_line(bind) for bind in binds]
    lines += [
        f"    http-request deny deny_status 400 if {{ path_reg -- {quote(_REFUSED_PATH)} }}",
        "    http-request set-path %[path,regsub('/+','/',g)] if { path_sub // }",
        "    http-request set-header X-Forwarded-For %[src]",
        "    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }",
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "    http-request set-header X-Forwarded-Host %[req.hdr(host)] if { req.hdr(host) -m found }",
        "    http-request del-header X-Forwarded-Prefix",
    ]
    if any(pool.host is not None for pool in plan.pools):
        lines.append(f"    http-request set-var(txn.fastroute_host) {_REQUEST_HOST}")
    default = NO_ROUTE_BACKEND
    for pool in plan.pools:
        host = "" if pool.host is None else _host_condition(pool.host) + " "
        if pool.prefix == "/":
            if pool.host is None:
                default = pool.backend
            else:
                lines.append(f"    use_backend {pool.backend} if {host.strip()}")
            continue
        exact = quote(pool.prefix)
        below = quote(pool.prefix + "/")
        lines.append(f"    use_backend {pool.backend} if {host}{{ path -m str {exact} }} || "
                     f"{host}{{ path -m beg {below} }}")
    lines += [f"    default_backend {default}", ""]
    for pool in plan.pools:
        lines += [f"# {pool.prefix!r}" if pool.host is None else f"# {pool.host!r} {pool.prefix!r}",
                  f"backend {pool.backend}", "    mode http", "    balance leastconn",
                  "    retries 3", "    option redispatch"]
        if pool.strip_prefix and pool.prefix != "/":
            pattern = "^" + re.escape(pool.prefix) + "/?(.*)$"
            lines.append(f"    http-request replace-path {quote(pattern)} '/\\1'")
            lines.append(f"    http-request set-header X-Forwarded-Prefix {quote(_logformat(pool.prefix))}")
        if pool.check is not None:
            # The route's active health check (fastroute.healthcheck.*), as the gateway makes it.
            # (The path holds URL characters only: _config.health_check.)
            lines += [f"    option httpchk GET {pool.check.path}", "    http-check expect status 200-399",
                      f"    timeout check {_ms(pool.check.timeout)}"]
        lines += [f"    server {server.name} {server.address} {pool.server_check}" for server in pool.servers]
        lines.append("")
    lines += [
        f"backend {NO_ROUTE_BACKEND}",
        "    mode http",
        "    http-request return status 404 content-type text/plain string \"no route for this path\\n\"",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Running:
    """What a running HAProxy holds: every server it knows, and those in maintenance."""

    plan: Plan = Plan()
    disabled: frozenset[str] = frozenset()  # "backend/server"

    @classmethod
    def loaded(cls, plan: Plan) -> Running:
        """Just after HAProxy loaded the configuration rendered from `plan`."""
        return cls(plan)


def runtime_step(running: Running, desired: Plan) -> tuple[list[str], Running] | None:
    """Runtime-API commands that make HAProxy serve `desired`, and what it then holds.

    None when only a reload can (a prefix, backend or strip setting changed).
    A server no longer wanted is put in maintenance (no new requests; those
    it is serving finish) rather than deleted, so a container that comes back
    under its name is only made ready again. A new server is added, then its
    health checks and traffic enabled; a moved one changes address in place.
    """
    if running.plan.structure != desired.structure:
        return None
    commands: list[str] = []
    disabled = set(running.disabled)
    pools = []
    for old, new in zip(running.plan.pools, desired.pools):
        held = {s.name: s for s in old.servers}
        wanted = {s.name for s in new.servers}
        for server in new.servers:
            target = f"{new.backend}/{server.name}"
            if server.name not in held:
                commands += [f"add server {target} {server.address} {new.server_check}",
                             f"enable health {target}", f"enable server {target}"]
            else:
                if held[server.name].address != server.address:
                    commands.append(
                        f"set server {target} addr {server.address.host} port {server.address.port}"
                    )
                if target in disabled:
                    commands.append(f"set server {target} state ready")
                    disabled.discard(target)
            held[server.name] = server
        for name in held:
            target = f"{new.backend}/{name}"
            if name not in wanted and target not in disabled:
                commands.append(f"set server {target} state maint")
                disabled.add(target)
        pools.append(Pool(new.prefix, new.backend, new.strip_prefix, tuple(held.values()), new.host, new.check))
    if len(disabled) > MAX_DISABLED:
        return None
    return commands, Running(Plan(tuple(pools)), frozenset(disabled))


def drain_step(running: Running, desired: Plan) -> tuple[list[str], Running]:
    """Maintenance for every running server no longer wanted, while a reload waits.

    Containers that stop leave at once even when the rest of the change
    needs a reload (which may be held back by the reload interval), also
    when their whole pool is going.
    """
    wanted = {(p.backend, s.name) for p in desired.pools for s in p.servers}
    disabled = set(running.disabled)
    commands = []
    for pool in running.plan.pools:
        for server in pool.servers:
            target = f"{pool.backend}/{server.name}"
            if (pool.backend, server.name) not in wanted and target not in disabled:
                commands.append(f"set server {target} state maint")
                disabled.add(target)
    return commands, Running(running.plan, frozenset(disabled))

