# Command line: parse arguments into a Config, then run. Every error is one
# line on stderr: usage errors (argparse) exit 2, anything that stops the
# gateway from starting (a bad route, routes file or address) exits 1.

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from fastroute import __version__

from .._config import (
    DEFAULT_LISTEN,
    LETS_ENCRYPT,
    Acme,
    Config,
    Discovery,
    Limits,
    Timeouts,
    check_admin_address,
    check_listen_overlap,
    check_no_http2,
    parse_address,
    routes_from_flags,
    tls_from_flags,
)
from .._errors import ConfigError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"fastroute: error: {message} (see {self.prog} --help)\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive whole number")
    return int(text)


def _count_or_zero(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} must be a port number (1-65535)")
    return int(text)


def _bytes(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    number, unit = (text[:-1], units[text[-1].lower()]) if text and text[-1].lower() in units else (text, 1)
    if not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive size in bytes (suffix k, m or g allowed)")
    return int(number) * unit


def _networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_serve(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = commands.add_parser(
        "serve", help="run the gateway",
        description="Run the gateway. Timeouts are in seconds; sizes in bytes (k, m, g suffixes allowed).",
    )
    serve.add_argument("--listen", action="append", metavar="HOST:PORT",
                       help=f"address to listen on; may repeat (default {DEFAULT_LISTEN})")
    serve.add_argument("--no-http2", action="append", default=[], metavar="HOST:PORT",
                       help="a --listen or --listen-tls address that speaks HTTP/1.1 only (no ALPN h2, no "
                       "HTTP/2 preface); may repeat. HTTP/2 is on everywhere else")
    serve.add_argument("--route", action="append", default=[], metavar="PREFIX=HOST:PORT",
                       help="a static route; repeating a prefix makes a pool")
    _add_health_check_flags(serve)
    serve.add_argument("--routes-file", type=Path, metavar="FILE",
                       help="TOML file of [[routes]] (prefix, backends, strip_prefix); re-read on SIGHUP")
    serve.add_argument("--no-docker", action="store_true", help="serve static routes only; do not watch Docker")
    _add_discovery(serve)
    serve.add_argument("--trusted-proxies", type=_networks, action="append", default=[], metavar="CIDR[,CIDR]",
                       help="clients whose X-Forwarded-* headers are kept and appended to")
    serve.add_argument("--allow-underscores", action="store_true",
                       help="forward request header names that contain '_' (dropped by default: CGI and WSGI "
                       "servers read X_Forwarded_For as X-Forwarded-For); the spellings of forwarded headers "
                       "stay dropped")
    serve.add_argument("--workers", type=_count, default=1, metavar="N",
                       help="worker processes sharing the listening addresses (SO_REUSEPORT), each with its "
                       "own event loop, route table and Docker watcher (default 1)")
    serve.add_argument("--parser", choices=["fast", "h11"], default="fast",
                       help="HTTP/1.1 parser: fast (compiled, the default) or h11 (the reference, for "
                       "comparison or as a fallback)")
    serve.add_argument("--io", choices=["trio", "native"], default="native",
                       help="how connections are served: native (the default: the epoll engine for the "
                       "steady-state exchange; everything else goes through trio) or trio (the general "
                       "path for everything)")
    serve.add_argument("--admin", metavar="HOST:PORT", default=os.environ.get("FASTROUTE_ADMIN") or None,
                       help="serve the status page, /routes, /healthz and /metrics here (default: "
                       "$FASTROUTE_ADMIN, which the container image sets to 127.0.0.1:9090 for its health "
                       "check; else off); keep it private")
    serve.add_argument("--access-log", choices=["text", "json", "off"], default="text",
                       help="one line per request on stderr (default text)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    _add_https(serve.add_argument_group("HTTPS"))
    _add_timeouts(serve.add_argument_group("timeouts"), Timeouts())
    _add_limits(serve.add_argument_group("limits"), Limits())


def _add_https(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--listen-tls", action="append", default=[], metavar="HOST:PORT",
                   help="address to serve HTTPS on; may repeat (needs a certificate)")
    g.add_argument("--tls-cert", action="append", default=[], type=Path, metavar="FILE",
                   help="a PEM certificate chain, chosen by SNI from the names it holds; may repeat, each "
                   "with its --tls-key in the same order; the first is the default for clients without SNI; "
                   "re-read on SIGHUP and when the files change")
    g.add_argument("--tls-key", action="append", default=[], type=Path, metavar="FILE",
                   help="the PEM private key of the --tls-cert in the same position")
    g.add_argument("--redirect-https", action="store_true",
                   help="answer plain-HTTP requests for host names a certificate holds with 308 to https")
    g.add_argument("--acme-email", metavar="ADDRESS",
                   help="obtain and renew certificates from an ACME CA for every host name a route names "
                   "(HTTP-01, on the plain listener), with this contact address")
    g.add_argument("--acme-directory", default=LETS_ENCRYPT, metavar="URL",
                   help=f"the ACME directory (default Let's Encrypt's production one, {LETS_ENCRYPT})")
    g.add_argument("--acme-storage", type=Path, default=None, metavar="DIR",
                   help="where the account and certificates are kept (0700; default "
                   "$XDG_DATA_HOME/fastroute/acme, else ~/.local/share/fastroute/acme)")
    g.add_argument("--acme-ca", type=Path, default=None, metavar="FILE",
                   help="trust this CA certificate for the ACME directory's HTTPS (a private or test CA)")
    g.add_argument("--acme-challenge", choices=["http-01", "tls-alpn-01"], default="http-01",
                   help="how the CA checks a name: http-01 on the plain listener (port 80 to the CA; the "
                   "default) or tls-alpn-01 on the TLS listener (port 443 to the CA)")
    g.add_argument("--https-port", type=_port, default=None, metavar="PORT",
                   help="the HTTPS port --redirect-https sends clients to, when it is not the --listen-tls "
                   "port (a container's published port, say)")
    g.add_argument("--hsts", type=_count_or_zero, default=None, metavar="SECONDS",
                   help="send Strict-Transport-Security: max-age=SECONDS on HTTPS responses (off by default)")


def _add_timeouts(g: argparse._ArgumentGroup, t: Timeouts) -> None:
    g.add_argument("--request-head-timeout", type=_seconds, default=t.request_head,
                   help=f"first byte to complete request head (default {t.request_head:g})")
    g.add_argument("--keepalive-timeout", type=_seconds, default=t.keepalive,
                   help=f"idle client connection between requests (default {t.keepalive:g})")
    g.add_argument("--connect-timeout", type=_seconds, default=t.connect,
                   help=f"opening a backend connection (default {t.connect:g})")
    g.add_argument("--response-timeout", type=_seconds, default=t.response_head,
                   help=f"request sent to backend response head (default {t.response_head:g})")
    g.add_argument("--body-timeout", type=_seconds, default=t.body_idle,
                   help=f"no body bytes moving, either way (default {t.body_idle:g})")
    g.add_argument("--tunnel-timeout", type=_seconds, default=t.tunnel_idle,
                   help=f"no bytes moving through an upgraded connection (default {t.tunnel_idle:g})")
    g.add_argument("--drain-timeout", type=_seconds, default=t.drain,
                   help=f"in-flight requests after SIGTERM/SIGINT (default {t.drain:g})")
    g.add_argument("--wake-timeout", type=_seconds, default=t.wake,
                   help=f"a request waking a fastroute.wake container, until it serves (default {t.wake:g})")
    g.add_argument("--docker-start-timeout", type=_seconds_or_zero, default=t.docker_start,
                   help="at start, the first Docker listing; the gateway opens when it is in, or "
                   f"after this long without it (default {t.docker_start:g})")
    g.add_argument("--eject-time", type=_seconds, default=t.eject,
                   help="a backend that refused a connection is out of rotation this long, doubled on each "
                   f"further failure up to 30 s or this, if longer (default {t.eject:g})")


def _add_limits(g: argparse._ArgumentGroup, lim: Limits) -> None:
    g.add_argument("--max-header-bytes", type=_bytes, default=lim.max_header_bytes,
                   help=f"request header fields, in bytes (default {lim.max_header_bytes})")
    g.add_argument("--max-headers", type=_count, default=lim.max_headers,
                   help=f"request header fields, in number (default {lim.max_headers})")
    g.add_argument("--max-target", type=_bytes, default=lim.max_target,
                   help=f"request target length (default {lim.max_target})")
    g.add_argument("--max-body", type=_bytes, default=None, help="request body size (default: no limit)")
    g.add_argument("--max-connections", type=_count, default=lim.max_connections,
                   help=f"concurrent client connections (default {lim.max_connections})")
    g.add_argument("--max-idle-upstream", type=_count_or_zero, default=lim.max_idle_upstream,
                   help="idle keep-alive connections kept per backend for the next request; 0: none "
                   f"(default {lim.max_idle_upstream})")
    g.add_argument("--wake-queue", type=_count, default=lim.wake_queue,
                   help=f"requests waiting for one route's container to wake; 503 past it (default {lim.wake_queue})")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not true or false")


def _add_health_check_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--health-check", action="append", default=[], metavar="PREFIX=PATH",
                        help="check the backends of that --route actively: GET PATH; may repeat "
                        "(Docker: label fastroute.healthcheck.path; routes file: health_check)")
    parser.add_argument("--health-check-interval", type=_seconds, default=5.0, metavar="SECONDS",
                        help="seconds between --health-check requests (default 5)")
    parser.add_argument("--health-check-timeout", type=_seconds, default=None, metavar="SECONDS",
                        help="seconds a --health-check answer may take (default 2, or the interval if shorter)")


def _add_discovery(parser: argparse.ArgumentParser) -> None:
    d = Discovery()
    g = parser.add_argument_group("Docker discovery")
    g.add_argument("--docker", metavar="URL", default=None,
                   help="Docker engine, e.g. unix:///var/run/docker.sock or tcp://host:2375 "
                   "(default: DOCKER_HOST, else the local socket)")
    g.add_argument("--docker-tls", metavar="DIR", type=_tls_dir, default=None,
                   help="talk TLS to a TCP --docker: verify it with DIR/ca.pem, show DIR/cert.pem and "
                   "DIR/key.pem (the docker CLI's DOCKER_CERT_PATH layout)")
    g.add_argument("--swarm", choices=["auto", "on", "off"], default=d.swarm,
                   help="follow Swarm services; auto (the default) does when the engine is a Swarm manager. "
                   "Only managers answer: on a worker, point --docker at a manager")
    g.add_argument("--network", metavar="NAME", default=None,
                   help="reach containers by their IP on this network")
    g.add_argument("--exposed-by-default", type=_bool, default=d.exposed_by_default, metavar="true|false",
                   help="route every container unless labelled fastroute.enable=false (default true)")
    g.add_argument("--route-by", choices=["image", "name"], default=d.route_by,
                   help="prefix from the image's repository path or the container name (default image)")
    g.add_argument("--hold", type=_seconds_or_zero, default=d.hold,
                   help=f"seconds a route outlives its last container, holding requests (default {d.hold:g})")
    g.add_argument("--resync-interval", type=_seconds, default=d.resync_interval,
                   help=f"seconds between full resyncs with the engine (default {d.resync_interval:g})")
    g.add_argument("--ready-timeout", type=_seconds, default=d.ready_timeout,
                   help="seconds a started container without a HEALTHCHECK may take to accept connections "
                   f"before it is routed anyway (default {d.ready_timeout:g})")
    g.add_argument("--docker-label", action="append", default=[], metavar="KEY[=VALUE]",
                   help="only consider containers with this label; may repeat")


def _seconds_or_zero(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    return _seconds(text)


def _tls_dir(text: str) -> Path:
    from ..discovery._client import TLS_FILES

    directory = Path(text)
    missing = [name for name in TLS_FILES if not (directory / name).is_file()]
    if missing:
        raise argparse.ArgumentTypeError(f"{text!r} lacks {', '.join(missing)} (it needs {', '.join(TLS_FILES)})")
    return directory


def _discovery(args: argparse.Namespace) -> Discovery:
    return Discovery(
        network=args.network, exposed_by_default=args.exposed_by_default, route_by=args.route_by,
        hold=args.hold, resync_interval=args.resync_interval, ready_timeout=args.ready_timeout,
        swarm=args.swarm,
    )


def _add_routes(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    routes = commands.add_parser(
        "routes", help="print the routes Docker would give now",
        description="Print the routes the running containers give now: prefix, containers and "
        "addresses, and every container skipped, with why.",
    )
    routes.add_argument("--json", action="store_true", help="one JSON document, for machines")
    _add_discovery(routes)


def _add_haproxy(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    h = commands.add_parser(
        "haproxy", help="keep an HAProxy configuration in step with Docker",
        description="Write an HAProxy configuration for the running containers (and static routes), "
        "check it with haproxy -c, install it atomically, and reload HAProxy whenever it changes.",
    )
    h.add_argument("--config", type=Path, required=True, metavar="PATH",
                   help="the configuration file to write (HAProxy runs with -f PATH)")
    reload = h.add_mutually_exclusive_group()
    reload.add_argument("--master-socket", type=Path, metavar="PATH",
                        help="HAProxy's master CLI socket (haproxy -W -S PATH): reload through it, and apply "
                        "server changes through its runtime API without a reload")
    reload.add_argument("--reload-cmd", metavar="CMD",
                        help="shell command that reloads HAProxy (e.g. 'systemctl reload haproxy')")
    h.add_argument("--once", action="store_true",
                   help="write the configuration for what runs now (and reload, if told how), then exit")
    h.add_argument("--bind", action="append", metavar="SPEC",
                   help="the frontend's bind line after 'bind', e.g. ':80' or ':443 ssl crt /x.pem'; "
                   "may repeat (default :8080)")
    h.add_argument("--preamble", type=Path, metavar="FILE",
                   help="your global and defaults sections, copied to the top of the file "
                   "(default: fastroute's own); re-read on every change and on SIGHUP")
    h.add_argument("--haproxy-bin", default="haproxy", metavar="PATH",
                   help="the haproxy binary that checks each configuration (default haproxy)")
    h.add_argument("--reload-interval", type=_seconds, default=2.0, metavar="SECONDS",
                   help="reload at most this often; changes meanwhile join the next reload (default 2)")
    h.add_argument("--route", action="append", default=[], metavar="PREFIX=HOST:PORT",
                   help="a static route; repeating a prefix makes a pool")
    _add_health_check_flags(h)
    h.add_argument("--routes-file", type=Path, metavar="FILE",
                   help="TOML file of [[routes]] (prefix, backends, strip_prefix); re-read on SIGHUP")
    h.add_argument("--no-docker", action="store_true", help="static routes only; do not watch Docker")
    h.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    _add_discovery(h)


def _add_docker_access(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = commands.add_parser(
        "docker-access", help="print the Docker API calls fastroute makes, or a socket filter for them",
        description="Print the Docker Engine API calls fastroute makes, per feature; with --haproxy-config, "
        "an HAProxy configuration that lets only those through to the engine's socket and refuses "
        "everything else with 403 (GET only, unless --wake).",
    )
    d.add_argument("--haproxy-config", action="store_true", help="print the filter's HAProxy configuration")
    d.add_argument("--wake", action="store_true",
                   help="let the wake calls through too (POST start and stop of a container)")
    d.add_argument("--listen", metavar="ADDRESS",
                   help="where the filter listens: HOST:PORT, :PORT or a Unix socket path (default 127.0.0.1:2375)")
    d.add_argument("--socket", metavar="PATH", help="the engine's socket (default /var/run/docker.sock)")
    d.add_argument("--swarm", action="store_true", help="let the Swarm calls through too (services, tasks, networks)")


def _docker_access(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..discovery._access import DEFAULT_LISTEN, DEFAULT_SOCKET, haproxy_config, table

    if not args.haproxy_config:
        for flag in ("wake", "listen", "socket", "swarm"):
            if getattr(args, flag) not in (None, False):
                parser.error(f"--{flag} is for --haproxy-config")
        sys.stdout.write(table())
        return 0
    sys.stdout.write(haproxy_config(wake=args.wake, listen=args.listen or DEFAULT_LISTEN,
                                    socket=args.socket or DEFAULT_SOCKET, swarm=args.swarm))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fastroute",
        description="A Docker-aware HTTP gateway: a request for /owner/image/... "
        "goes to a running container of owner/image on port 8000.",
    )
    parser.add_argument("--version", action="version", version=f"fastroute {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_serve(commands)
    _add_routes(commands)
    _add_haproxy(commands)
    _add_docker_access(commands)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """Raises ConfigError with a one-line message."""
    config = Config(
        listen=tuple(parse_address(a, what="--listen address") for a in (args.listen or [DEFAULT_LISTEN])),
        routes=routes_from_flags(args.route, args.health_check, args.health_check_interval, args.health_check_timeout),
        routes_file=args.routes_file,
        timeouts=Timeouts(
            request_head=args.request_head_timeout, keepalive=args.keepalive_timeout,
            connect=args.connect_timeout, response_head=args.response_timeout,
            body_idle=args.body_timeout, tunnel_idle=args.tunnel_timeout, drain=args.drain_timeout,
            wake=args.wake_timeout, docker_start=args.docker_start_timeout, eject=args.eject_time,
        ),
        limits=Limits(
            max_header_bytes=args.max_header_bytes, max_headers=args.max_headers, max_target=args.max_target,
            max_body=args.max_body, max_connections=args.max_connections, wake_queue=args.wake_queue,
            max_idle_upstream=args.max_idle_upstream,
        ),
        trusted_proxies=tuple(n for group in args.trusted_proxies for n in group),
        access_log=args.access_log,
        docker=not args.no_docker,
        docker_url=args.docker,
        docker_tls=args.docker_tls,
        docker_labels=tuple(args.docker_label),
        discovery=_discovery(args),
        admin=parse_address(args.admin, what="--admin address") if args.admin else None,
        workers=args.workers,
        parser=args.parser,
        io=args.io,
        allow_underscores=args.allow_underscores,
        no_http2=tuple(parse_address(a, what="--no-http2 address") for a in args.no_http2),
        tls=tls_from_flags(tuple(parse_address(a, what="--listen-tls address") for a in args.listen_tls),
                           args.tls_cert, args.tls_key, redirect_https=args.redirect_https,
                           https_port=args.https_port, hsts=args.hsts, acme=_acme(args)),
    )
    check_listen_overlap(config.listen, config.tls.listen)
    check_no_http2(config.no_http2, config.listen + config.tls.listen)
    if config.admin is not None:
        check_admin_address(config.admin, config.listen + config.tls.listen)
    return config


def _acme(args: argparse.Namespace) -> Acme | None:
    if args.acme_email is None:
        for flag in ("acme_storage", "acme_ca"):
            if getattr(args, flag) is not None:
                raise ConfigError(f"--{flag.replace('_', '-')} needs --acme-email")
        return None
    if "@" not in args.acme_email:
        raise ConfigError(f"--acme-email {args.acme_email!r} is not an email address")
    storage = args.acme_storage
    if storage is None:
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        storage = Path(data) / "fastroute" / "acme"
    return Acme(args.acme_email, storage, args.acme_directory, args.acme_ca, challenge=args.acme_challenge)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, getattr(args, "log_level", "info").upper()), format="fastroute: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "routes":
        from ._routes_cmd import print_routes

        return print_routes(args.docker, _discovery(args), tuple(args.docker_label), as_json=args.json,
                            tls=args.docker_tls)

    if args.command == "haproxy":
        return _run_haproxy(args)

    if args.command == "docker-access":
        return _docker_access(args, parser)

    from ..routing._sources import load_routes
    from ._serve import run

    try:
        config = config_from_args(args)
        load_routes(config)  # fail fast on a bad routes file, before listening
        if config.tls.pairs:
            from ..tls._context import load

            load(config.tls.pairs)  # and on a certificate that cannot be loaded
    except ConfigError as error:
        print(f"fastroute: error: {error}", file=sys.stderr)
        return 1
    if config.workers > 1:
        from ._workers import supervise

        return supervise(config)
    return run(config)


def _run_haproxy(args: argparse.Namespace) -> int:
    from ..haproxy._sync import HAProxyOptions
    from ..haproxy._command import HAProxyMode, run
    from ..routing._sources import load_routes

    try:
        config = Config(
            routes=routes_from_flags(args.route, args.health_check, args.health_check_interval,
                                     args.health_check_timeout),
            routes_file=args.routes_file, docker=not args.no_docker,
            docker_url=args.docker, docker_tls=args.docker_tls, docker_labels=tuple(args.docker_label),
            discovery=_discovery(args),
        )
        load_routes(config)
        if not args.config.parent.is_dir():
            raise ConfigError(f"--config {str(args.config)!r}: directory {str(args.config.parent)!r} does not exist")
        if args.preamble is not None and not args.preamble.is_file():
            raise ConfigError(f"--preamble {str(args.preamble)!r} is not a readable file")
    except ConfigError as error:
        print(f"fastroute: error: {error}", file=sys.stderr)
        return 1
    options = HAProxyOptions(
        config=args.config, binds=tuple(args.bind or [":8080"]), preamble=args.preamble,
        haproxy=args.haproxy_bin, reload_cmd=args.reload_cmd, master_socket=args.master_socket,
        reload_interval=args.reload_interval,
    )
    return run(HAProxyMode(options, config, once=args.once))

