# The gateway's configuration: frozen dataclasses built from the command
# line and the routes file, and the parsing of both. Pure: no trio, no I/O
# except reading the routes file.

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fastroute import InvalidHost, InvalidPrefix, normalise_host, normalise_prefix

from ._errors import ConfigError

__all__ = [
    "Acme",
    "Address",
    "Config",
    "Discovery",
    "Limits",
    "Route",
    "Timeouts",
    "Tls",
    "TlsPair",
    "check_admin_address",
    "check_listen_overlap",
    "check_no_http2",
    "load_routes_file",
    "merge_routes",
    "parse_address",
    "parse_host",
    "parse_route_flag",
    "tls_from_flags",
]

DEFAULT_LISTEN = "0.0.0.0:8080"


@dataclass(frozen=True, slots=True)
class Address:
    """A TCP address: host (name, IPv4 or IPv6 without brackets) and port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, *, what: str = "address", where: str = "") -> Address:
    """Parse "HOST:PORT" or "[IPv6]:PORT".

    Raises:
        ConfigError: with a one-line message naming `text`.
    """
    what = f"{what} {text!r}{where}"
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text:
        raise ConfigError(f"invalid {what}: expected HOST:PORT")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ConfigError(f"invalid {what}: unclosed '['")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"invalid {what}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ConfigError(f"invalid {what}: write an IPv6 address as [ADDR]:PORT")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"invalid {what}: port must be 1-65535")
    return Address(host, int(port_text))


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """An active health check of a route's backends: GET `path` every `interval` s, answered in `timeout` s.

    A backend that fails it FALL times in a row leaves rotation; RISE passes
    in a row bring it back (routing/_health.py).
    """

    path: str
    interval: float = 5.0
    timeout: float = 2.0


HEALTH_PATH_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/?=&%+:@,;!$*")


CHECK_TIMEOUT = 2.0  # seconds, a health check's timeout unless given (or its interval, if shorter)


def health_check(path: object, interval: object = 5.0, timeout: object = None, *, where: str) -> HealthCheck:
    """A checked HealthCheck; ValueError saying what is wrong, after `where`.

    The path goes into a request line and into HAProxy's configuration: it
    starts with "/" and holds URL characters only (no space, quote or
    backslash). A timeout not given (None) follows the interval: the
    smaller of CHECK_TIMEOUT and the interval, as HAProxy's `timeout check`
    defaults to `inter`; one given must not be longer than the interval.
    """
    if not isinstance(path, str) or not path.startswith("/") or not set(path) <= HEALTH_PATH_CHARACTERS:
        raise ValueError(f"{where}: health check path {path!r} must start with '/' and hold URL characters only")
    values: list[float] = []
    for name, value in (("interval", interval), ("timeout", timeout)):
        if value is None:  # (the timeout, not given)
            values.append(min(CHECK_TIMEOUT, values[0]))
            continue
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = -1.0
        if isinstance(value, bool) or not 0 < number <= 3600:
            raise ValueError(f"{where}: health check {name} {value!r} is not a number of seconds in (0, 3600]")
        values.append(number)
    if values[1] > values[0]:
        raise ValueError(f"{where}: health check timeout {values[1]:g} s is longer than its interval {values[0]:g} s")
    return HealthCheck(path, values[0], values[1])


@dataclass(frozen=True, slots=True)
class Route:
    """One prefix and the backends that serve it."""

    prefix: str
    backends: tuple[Address, ...]
    strip_prefix: bool = False
    source: str = "static"
    # A route whose last container left is held (no backends) until this
    # time.monotonic(): requests wait for a container to join.
    hold_until: float | None = None
    # Stopped containers (ids) that a request may start to serve this route
    # (fastroute.wake=true); only set while no backend serves it.
    wake: tuple[str, ...] = ()
    # No backend is ready yet, but a container of this route is booting:
    # requests wait for it (up to --hold each).
    booting: bool = False
    # The host it serves (normalised: lowercase ASCII, punycode for an
    # internationalised name; "*.example.com" for one level of subdomain);
    # None: every host, after the host-specific routes.
    host: str | None = None
    # Checked actively (fastroute.healthcheck.* labels, health_check in the routes file), or None.
    check: HealthCheck | None = None

    @property
    def key(self) -> tuple[str | None, str]:
        """What identifies the route in a table: (host, prefix)."""
        return (self.host, self.prefix)

    @property
    def containers(self) -> bool:
        """Its backends are containers (Docker's or Swarm's routes): they leave the table by themselves."""
        return self.source.startswith(("docker:", "swarm:"))

    @property
    def name(self) -> str:
        """The route as logs, metrics and the admin name it: "api.example.com/v1", or "/v1" without a host."""
        return self.prefix if self.host is None else self.host + self.prefix


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. Defaults are documented in docs/gateway.md's table."""

    request_head: float = 10.0  # first byte of a request to its complete head (slowloris)
    keepalive: float = 60.0  # idle client connection between requests
    connect: float = 5.0  # opening a backend connection
    response_head: float = 60.0  # request sent to the backend's response head
    body_idle: float = 60.0  # no body bytes moving, either direction
    tunnel_idle: float = 3600.0  # no bytes moving through an upgraded connection
    drain: float = 10.0  # in-flight requests after SIGTERM
    wake: float = 30.0  # a request for a stopped fastroute.wake container: start to ready
    docker_start: float = 5.0  # serve: the first Docker listing, before the gateway opens anyway
    eject: float = 1.0  # a backend out of rotation after its first failure (doubled on each further one)


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 16 * 1024  # the whole request head (431)
    max_headers: int = 100  # header fields in a request (431)
    max_target: int = 8 * 1024  # request target length in bytes (414)
    max_body: int | None = None  # request body bytes (413); None: no limit
    max_connections: int = 10_000  # concurrent client connections
    max_idle_upstream: int = 256  # idle pooled connections per backend (--max-idle-upstream; Traefik keeps 200)
    wake_queue: int = 100  # requests waiting for one route's container to wake (503 past it)


@dataclass(frozen=True, slots=True)
class Discovery:
    """How Docker containers become routes (the discovery flags)."""

    network: str | None = None  # --network
    own_networks: frozenset[str] = frozenset()  # networks fastroute's own container is on
    exposed_by_default: bool = True  # --exposed-by-default
    route_by: str = "image"  # --route-by image|name
    hold: float = 10.0  # --hold: seconds a route outlives its last container
    resync_interval: float = 60.0  # --resync-interval: seconds between full resyncs
    ready_timeout: float = 60.0  # --ready-timeout: seconds a container may boot before it is routed anyway
    swarm: str = "auto"  # --swarm auto|on|off: follow Swarm services (auto: when the engine is a manager)


@dataclass(frozen=True, slots=True)
class TlsPair:
    """A certificate chain and its private key, both PEM files (--tls-cert, --tls-key)."""

    cert: Path
    key: Path


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True, slots=True)
class Acme:
    """Certificates from an ACME CA for the host names routes name (the --acme flags)."""

    email: str  # --acme-email: the account's contact
    storage: Path  # --acme-storage
    directory: str = LETS_ENCRYPT  # --acme-directory
    ca_bundle: Path | None = None  # --acme-ca: trust this CA for the directory (a test CA)
    challenge: str = "http-01"  # --acme-challenge: http-01 (on the plain listener) or tls-alpn-01
    retry_first: float = 120.0  # seconds after a first failure (doubling); tests shorten it


@dataclass(frozen=True, slots=True)
class Tls:
    """HTTPS: where to listen, with which certificates (the TLS flags)."""

    listen: tuple[Address, ...] = ()  # --listen-tls
    pairs: tuple[TlsPair, ...] = ()  # --tls-cert/--tls-key, in order; the first is the default
    redirect_https: bool = False  # --redirect-https: 308 to https for hosts with a certificate
    https_port: int | None = None  # --https-port: the port redirects name (None: the first --listen-tls's)
    hsts: int | None = None  # --hsts SECONDS: Strict-Transport-Security max-age on HTTPS answers
    acme: Acme | None = None


@dataclass(frozen=True, slots=True)
class Config:
    listen: tuple[Address, ...] = (parse_address(DEFAULT_LISTEN),)
    routes: tuple[Route, ...] = ()
    routes_file: Path | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    access_log: str = "text"  # text | json | off
    docker: bool = False
    docker_url: str | None = None  # None: DOCKER_HOST, else the local socket
    docker_tls: Path | None = None  # --docker-tls: ca.pem, cert.pem and key.pem for a TCP engine
    docker_labels: tuple[str, ...] = ()  # only containers with these labels (KEY or KEY=VALUE)
    discovery: Discovery = field(default_factory=Discovery)
    admin: Address | None = None  # --admin: the private status, routes and metrics listener
    workers: int = 1  # --workers: processes sharing the listening addresses (SO_REUSEPORT)
    parser: str = "fast"  # --parser: fast (compiled, the default) or h11 (comparison, fallback)
    io: str = "native"  # --io: native (the engine for the steady state; the default) or trio (the general path)
    allow_underscores: bool = False  # --allow-underscores: forward header names with "_"
    tls: Tls = field(default_factory=Tls)
    no_http2: tuple[Address, ...] = ()  # --no-http2: listeners (--listen or --listen-tls) that speak HTTP/1.1 only


def _overlap(a: Address, b: Address) -> bool:
    """Same port on the same host, or on a wildcard that covers the other."""
    wildcard = {"0.0.0.0", "::", "", "*"}
    return a.port == b.port and a.port != 0 and (a.host == b.host or a.host in wildcard or b.host in wildcard)


def check_admin_address(admin: Address, listen: tuple[Address, ...]) -> None:
    """The admin listener must not share an address with the gateway.

    Raises:
        ConfigError: same port on the same host, or on a wildcard that covers it.
    """
    for address in listen:
        if _overlap(address, admin):
            raise ConfigError(f"--admin {admin} overlaps the gateway's --listen {address}: give it its own port")


def check_no_http2(no_http2: tuple[Address, ...], listen: tuple[Address, ...]) -> None:
    """Each --no-http2 address is one the gateway listens on.

    Raises:
        ConfigError: it names no --listen or --listen-tls address.
    """
    for address in no_http2:
        if address not in listen:
            raise ConfigError(f"--no-http2 {address} is not a --listen or --listen-tls address")


def check_listen_overlap(plain: tuple[Address, ...], tls: tuple[Address, ...]) -> None:
    """A port speaks HTTP or HTTPS, not both (with --workers both would bind it, and share its connections).

    Raises:
        ConfigError: a --listen-tls address overlaps a --listen one.
    """
    for secure in tls:
        for address in plain:
            if _overlap(secure, address):
                raise ConfigError(f"--listen-tls {secure} overlaps --listen {address}: give HTTPS its own port")


def tls_from_flags(listen: tuple[Address, ...], certs: list[Path], keys: list[Path], *,
                   redirect_https: bool = False, https_port: int | None = None, hsts: int | None = None,
                   acme: Acme | None = None) -> Tls:
    """The TLS flags, checked against each other.

    Raises:
        ConfigError: one line: certificates and keys that do not pair up, HTTPS asked for
            without a certificate, or a certificate, --redirect-https or --hsts without --listen-tls.
    """
    if len(certs) != len(keys):
        raise ConfigError(f"{len(certs)} --tls-cert and {len(keys)} --tls-key: give each certificate its key, "
                          "in the same order")
    if listen and not certs and acme is None:
        raise ConfigError("--listen-tls needs a certificate: --tls-cert FILE --tls-key FILE, or --acme-email")
    if not listen:
        for flag, given in (("--tls-cert", certs), ("--redirect-https", redirect_https), ("--hsts", hsts is not None),
                            ("--https-port", https_port is not None), ("--acme-email", acme is not None)):
            if given:
                raise ConfigError(f"{flag} needs --listen-tls HOST:PORT to serve HTTPS on")
    return Tls(listen=listen, pairs=tuple(TlsPair(c, k) for c, k in zip(certs, keys)),
               redirect_https=redirect_https, https_port=https_port, hsts=hsts, acme=acme)


def parse_host(name: object, where: str) -> str:
    """A route's host name in its normal form (fastroute.normalise_host), an internationalised one
    converted to its ASCII form (IDNA 2008 with UTS 46 mapping, as browsers send it).

    Raises:
        ConfigError: one line naming `where`.
    """
    if isinstance(name, str) and not name.isascii():
        import idna

        wildcard = name.startswith("*.")
        try:
            name = ("*." if wildcard else "") + idna.encode(name[2:] if wildcard else name, uts46=True).decode("ascii")
        except idna.IDNAError as error:
            raise ConfigError(f"{where}: invalid host {name!r}: {error}") from None
    try:
        return normalise_host(name)
    except (InvalidHost, TypeError) as error:
        raise ConfigError(f"{where}: {error}") from None


def parse_route_flag(text: str) -> tuple[str | None, str, Address]:
    """Parse one --route [HOST]PREFIX=HOST:PORT: (host or None, prefix, backend).

    A prefix starts with "/", so whatever comes before the first "/" is the
    route's host: "api.example.com/v1=10.0.0.5:8000".
    """
    key, sep, backend = text.partition("=")
    if not sep:
        raise ConfigError(f"invalid --route {text!r}: expected [HOST]PREFIX=HOST:PORT")
    where = f"--route {text!r}"
    host = None
    if not key.startswith("/"):
        slash = key.find("/")
        if slash <= 0:
            raise ConfigError(f"invalid {where}: expected [HOST]PREFIX=HOST:PORT (a prefix starts with '/')")
        host, key = parse_host(key[:slash], where), key[slash:]
    return host, _checked_prefix(key, where), parse_address(backend, what="backend", where=f" in {where}")


def _checked_prefix(prefix: object, where: str) -> str:
    try:
        return normalise_prefix(prefix)
    except (InvalidPrefix, TypeError) as error:
        raise ConfigError(f"{where}: {error}") from None


def routes_from_flags(flags: Iterable[str], checks: Iterable[str] = (), interval: float = 5.0,
                      timeout: float | None = None) -> tuple[Route, ...]:
    """--route flags, in order; repeating a host and prefix adds backends to its pool.

    checks: --health-check [HOST]PREFIX=PATH flags, each for the --route of
    that host and prefix, checked every `interval` s within `timeout` s.

    Raises:
        ConfigError: a bad flag, or a check for no --route.
    """
    pools: dict[tuple[str | None, str], list[Address]] = {}
    for flag in flags:
        host, prefix, backend = parse_route_flag(flag)
        pool = pools.setdefault((host, prefix), [])
        if backend not in pool:
            pool.append(backend)
    wanted: dict[tuple[str | None, str], HealthCheck] = {}
    for flag in checks:
        target, equals, path = flag.partition("=")
        where = f"--health-check {flag!r}"
        if not equals:
            raise ConfigError(f"{where}: expected [HOST]PREFIX=PATH")
        host, prefix, _ = parse_route_flag(f"{target}=127.0.0.1:1")
        if (host, prefix) not in pools:
            raise ConfigError(f"{where}: no --route serves {target!r}")
        try:
            wanted[(host, prefix)] = health_check(path, interval, timeout, where=where)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    return tuple(Route(prefix, tuple(backends), source="--route", host=host, check=wanted.get((host, prefix)))
                 for (host, prefix), backends in pools.items())


def load_routes_file(path: Path) -> tuple[Route, ...]:
    """Read a TOML routes file.

    The file holds an array of tables named `routes`, each with `prefix`
    (str), `backends` (a list of "HOST:PORT"), and optional `host` (str:
    the host name it serves, "*.example.com" for one level of subdomain;
    without it, every host), `strip_prefix` (bool) and `health_check` (a
    table: `path`, optional `interval` and `timeout` in seconds)::

        [[routes]]
        prefix = "/steve/foo"
        backends = ["10.0.0.5:8000", "10.0.0.6:8000"]
        strip_prefix = true
        health_check = {path = "/healthz", interval = 5, timeout = 2}

    Raises:
        ConfigError: unreadable, not TOML, or not of that shape; one line.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read routes file {str(path)!r}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"routes file {str(path)!r} is not valid TOML: {error}") from None
    unknown = set(data) - {"routes"}
    if unknown:
        raise ConfigError(f"routes file {str(path)!r}: unknown key {sorted(unknown)[0]!r} (expected [[routes]])")
    entries = data.get("routes", [])
    if not isinstance(entries, list):
        raise ConfigError(f"routes file {str(path)!r}: 'routes' must be an array of tables ([[routes]])")
    routes: dict[tuple[str | None, str], Route] = {}
    for number, entry in enumerate(entries, 1):
        route = _file_route(entry, path, f"routes file {str(path)!r}, route {number}")
        if route.key in routes:
            raise ConfigError(f"routes file {str(path)!r}, route {number}: {route.name!r} is already routed by "
                              "an earlier entry")
        routes[route.key] = route
    return tuple(routes.values())


def _file_route(entry: object, path: Path, where: str) -> Route:
    """One [[routes]] entry of the routes file at `path` (see load_routes_file)."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table")
    extra = set(entry) - {"prefix", "backends", "strip_prefix", "host", "health_check"}
    if extra:
        raise ConfigError(f"{where}: unknown key {sorted(extra)[0]!r}")
    if "prefix" not in entry:
        raise ConfigError(f"{where}: 'prefix' is missing")
    prefix = _checked_prefix(entry["prefix"], where)
    backends = entry.get("backends")
    if not isinstance(backends, list) or not backends or not all(isinstance(b, str) for b in backends):
        raise ConfigError(f"{where}: 'backends' must be a non-empty list of \"HOST:PORT\" strings")
    strip = entry.get("strip_prefix", False)
    if not isinstance(strip, bool):
        raise ConfigError(f"{where}: 'strip_prefix' must be true or false")
    host = parse_host(entry["host"], where) if "host" in entry else None
    addresses = tuple(dict.fromkeys(parse_address(b, what="backend", where=f" in {where}") for b in backends))
    check = _file_health_check(entry["health_check"], where) if "health_check" in entry else None
    return Route(prefix, addresses, strip, source=f"file:{path}", host=host, check=check)


def _file_health_check(given: object, where: str) -> HealthCheck:
    if not isinstance(given, dict) or set(given) - {"path", "interval", "timeout"} or "path" not in given:
        raise ConfigError(f"{where}: 'health_check' must be a table with 'path' and optional "
                          "'interval' and 'timeout' (seconds)")
    try:
        return health_check(given["path"], given.get("interval", 5.0), given.get("timeout"), where=where)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def merge_routes(*groups: Iterable[Route]) -> tuple[Route, ...]:
    """Routes from several sources; one host and prefix may come from one source only."""
    merged: dict[tuple[str | None, str], Route] = {}
    for group in groups:
        for route in group:
            earlier = merged.get(route.key)
            if earlier is not None:
                raise ConfigError(
                    f"{route.name!r} is routed twice: by {earlier.source} and by {route.source}"
                )
            merged[route.key] = route
    return tuple(merged.values())
