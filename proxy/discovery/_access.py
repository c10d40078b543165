# What fastroute asks of the Docker Engine API, call by call and feature by
# feature, and an HAProxy configuration that lets exactly that through a
# socket filter (as the well-known socket-proxy images do, which are HAProxy
# underneath). Pure: data and text, no docker import, no I/O.
#
# Why a filter: the Engine API has no permissions of its own. Whoever can
# reach the socket can create a privileged container that mounts the host's
# root, which is root on the host. Mounting the socket `:ro` changes
# nothing: a read-only mount stops writes to files, and a socket is not
# written as a file is (the kernel exempts sockets from the read-only check
# on connect); every call, `POST /containers/create` included, goes through.
#
# Rules:
# - CALLS is every call _client.py makes, through the docker SDK (which
#   adds a version prefix, /v1.45/..., after asking GET /version once);
#   tests/proxy/discovery/test_docker_access.py runs the discovery, wake and
#   HAProxy-mode tests through the filter and checks it denied nothing;
# - a path pattern matches the raw path (no query, no decoding): a
#   container reference is an id or a name, [a-zA-Z0-9][a-zA-Z0-9_.-]*,
#   so no encoded slash or dot-segment gets through to another endpoint;
# - everything not listed is refused with 403, and without wake the filter
#   lets GET (and HEAD) only.

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CALLS", "Call", "DEFAULT_LISTEN", "DEFAULT_SOCKET", "FEATURES", "haproxy_config", "table"]

FEATURES = {
    "discovery": "fastroute serve (following Docker), fastroute routes",
    "wake": "fastroute serve with fastroute.wake containers: start on a request, stop when idle",
    "haproxy": "fastroute haproxy (following Docker)",
    "swarm": "following Swarm services, when the engine is a manager (the filter lets them through with --swarm)",
}
DEFAULT_LISTEN = "127.0.0.1:2375"
DEFAULT_SOCKET = "/var/run/docker.sock"
_VERSION = "(/v[0-9]+[.][0-9]+)?"  # the SDK's version prefix (no backslash: HAProxy's parser takes them)
_CONTAINER = r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"  # an id or a name (the engine's own rule for names)


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str  # as the Engine API reference writes it
    pattern: str  # the path as a regular expression, after the version prefix
    features: tuple[str, ...]
    why: str


_READ = ("discovery", "wake", "haproxy")
_SWARM = ("swarm",)
CALLS = (
    Call("GET", "/version", "/version", _READ, "the API version to speak (the SDK asks once per client)"),
    Call("GET", "/_ping", "/_ping", _READ, "whether the engine answers (start-up, and after a lost connection)"),
    Call("GET", "/containers/json", "/containers/json", _READ,
         "the running containers with fastroute's labels, and the stopped ones labelled fastroute.wake "
         "(under Podman, whose stop sends no event, its running ones every 0.5 s while one is routed)"),
    Call("GET", "/containers/{id}/json", f"/containers/{_CONTAINER}/json", _READ,
         "one container's labels, networks, health and state (under Podman, each running one at a listing: "
         "its list does not say health); the gateway's own container, for its networks"),
    Call("GET", "/info", "/info", _READ, "whether the engine is a Swarm manager (--swarm auto asks on each connect)"),
    Call("GET", "/events", "/events", _READ,
         "container and network events, and service and node events with Swarm, as they happen (a stream)"),
    Call("GET", "/services", "/services", _SWARM, "the Swarm services, with their labels, image and virtual IPs"),
    Call("GET", "/services/{id}", f"/services/{_CONTAINER}", _SWARM,
         "one service again, after one of its events and while it converges"),
    Call("GET", "/tasks", "/tasks", _SWARM, "the services' tasks meant to run, with their state and addresses"),
    Call("GET", "/networks", "/networks", _SWARM, "network names, for the virtual IPs (which name a network by ID)"),
    Call("POST", "/containers/{id}/start", f"/containers/{_CONTAINER}/start", ("wake",),
         "start an existing container labelled fastroute.wake that a request is waiting for"),
    Call("POST", "/containers/{id}/stop", f"/containers/{_CONTAINER}/stop", ("wake",),
         "stop a container this gateway started once it is idle (fastroute.idle-timeout)"),
)


def table() -> str:
    """The calls, one a line, with the features that make them and why."""
    lines = ["Docker Engine API calls fastroute makes (the SDK adds a /vX.Y prefix to each path):", ""]
    width = max(len(f"{c.method} {c.path}") for c in CALLS)
    for call in CALLS:
        lines.append(f"  {call.method + ' ' + call.path:{width}}  {', '.join(call.features):24}  {call.why}")
    lines += ["", "Features:"]
    lines += [f"  {name:9}  {what}" for name, what in FEATURES.items()]
    lines += ["", "Nothing else: fastroute never creates, pulls, execs into, copies from or exports a container.",
              "Without wake, GET is all it needs.",
              "Only a Swarm manager answers the Swarm calls; gateways on workers point --docker at a manager."]
    return "\n".join(lines) + "\n"


def _bind(listen: str) -> str:
    """HAProxy's bind address for `listen`: a Unix socket path, or HOST:PORT."""
    if listen.startswith("/"):
        return f"unix@{listen} mode 660"
    return listen


def haproxy_config(*, wake: bool, listen: str = DEFAULT_LISTEN, socket: str = DEFAULT_SOCKET,
                   swarm: bool = False) -> str:
    """A complete HAProxy configuration: a socket filter on `listen` in front of the engine's `socket`
    that lets CALLS through (the POSTs only with `wake`, the Swarm calls only with `swarm`) and
    answers anything else 403."""
    lines = [
        "# The Docker Engine API calls fastroute makes, and nothing else (fastroute docker-access).",
        f"# Made by: fastroute docker-access --haproxy-config{' --wake' if wake else ''}{' --swarm' if swarm else ''}"
        f" --listen {listen} --socket {socket}",
        "global",
        "    maxconn 256",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 5s",
        "    # The events stream stays open with nothing to say for a long time; after this,",
        "    # fastroute reconnects and lists again, as it does after any lost connection.",
        "    timeout client 1h",
        "    timeout server 1h",
        "",
        "frontend docker",
        f"    bind {_bind(listen)}",
    ]
    for call in CALLS:
        if (call.method != "GET" and not wake) or (call.features == _SWARM and not swarm):
            continue
        methods = "GET HEAD" if call.method == "GET" else call.method
        lines.append(f"    # {call.method} {call.path}: {call.why}")
        lines.append(f"    http-request allow if {{ method {methods} }} {{ path_reg ^{_VERSION}{call.pattern}$ }}")
    lines += [
        "    http-request deny deny_status 403",
        "    default_backend engine",
        "",
        "backend engine",
        f"    server engine {socket}",
    ]
    return "\n".join(lines) + "\n"
