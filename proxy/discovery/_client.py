# The one module that imports the docker SDK. It gives the rest of discovery
# a narrow, typed, blocking view of one engine (DockerApi): list, inspect,
# events, ping, start, stop. The watcher, the waker and the commands call it
# from worker threads; everything else sees plain dicts in the engine's own
# JSON shapes (the list endpoint's summaries, inspect data, events), which is
# why those are typed JsonObject: JSON whose shape the engine owns.
#
# Rules:
# - the SDK's errors stay here: a container that is gone is None (inspect)
#   or EngineError (start); anything else is the engine failing, and the
#   callers treat any exception as that;
# - fastroute never creates or pulls: DockerApi has no such call;
# - only a Swarm manager answers the Swarm calls (services, tasks): a
#   gateway on a worker points --docker at a manager's TCP endpoint, with
#   TLS client certificates (--docker-tls).

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from .._json import Json, JsonObject
from ._container import listed, summary_from_inspect
from ._errors import EngineError

__all__ = ["DockerApi", "EventStream", "SdkDockerApi", "connect", "engine_address", "engine_identity", "sdk_client"]

Sdk = Any  # Any: an object of docker-py or requests, which ship no types

SDK_TIMEOUT = 30  # seconds, docker-py's own timeout for one API call
EVENT_TYPES = ["container", "network"]
SWARM_EVENT_TYPES = ["service", "node"]  # swarm scope: a manager sends them besides its local ones
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")  # in a --docker-tls directory, as the docker CLI's DOCKER_CERT_PATH
DEFAULT_ENGINE = "unix:///var/run/docker.sock"  # docker-py's and the docker CLI's, without DOCKER_HOST


class EventStream(Protocol):
    """The engine's events, decoded; iteration ends when the connection breaks."""

    def __iter__(self) -> Iterator[JsonObject]: ...

    def __next__(self) -> JsonObject: ...

    def close(self) -> None: ...


class DockerApi(Protocol):
    """What discovery asks of a Docker engine. Every call blocks."""

    def identity(self) -> tuple[str, str]:
        """The engine's name ("Docker" or "Podman") and version."""
        ...

    def containers(self, labels: Sequence[str]) -> list[JsonObject]:
        """Summaries of the running, paused and restarting containers, and of
        the stopped ones that carry fastroute.wake, with every label in `labels`.

        Raises EngineError when the engine answers with an error."""
        ...

    def inspect(self, cid: str) -> JsonObject | None:
        """One container's inspect data, or None if it does not exist."""
        ...

    def running(self, labels: Sequence[str]) -> set[str]:
        """IDs of the running containers with every label in `labels`: one
        bare listing. Podman leaves out a container that is stopping.

        Raises EngineError when the engine answers with an error."""
        ...

    def events(self, swarm: bool = False) -> EventStream:
        """Container and network events from now on; with `swarm`, service and node events too."""
        ...

    def swarm_manager(self) -> bool:
        """Whether the engine is a Swarm manager: only managers answer the Swarm calls."""
        ...

    def services(self) -> list[JsonObject]:
        """Every Swarm service. Raises EngineError if the engine refuses (not a manager, a filter)."""
        ...

    def service(self, sid: str) -> JsonObject | None:
        """One Swarm service, or None if it does not exist."""
        ...

    def tasks(self, sid: str | None = None) -> list[JsonObject]:
        """The tasks meant to run (desired state running), of service `sid` or of every service."""
        ...

    def network_names(self) -> dict[str, str]:
        """Network ID -> name, for every network the engine knows."""
        ...

    def ping(self) -> None: ...

    def start(self, cid: str) -> bool:
        """Start an existing container: True, or False if it was running
        already (the engine's 304). Raises EngineError if the engine refuses."""
        ...

    def stop(self, cid: str, grace: int) -> None:
        """Stop a container: SIGTERM, then SIGKILL after `grace` seconds."""
        ...

    def own_networks(self) -> frozenset[str]:
        """The networks of the container fastroute runs in, if it runs in one."""
        ...

    def close(self) -> None: ...


def sdk_client(url: str | None, tls: Path | None = None) -> Sdk:
    """A docker SDK client for `url` (None: DOCKER_HOST, else the local socket).

    tls: a directory with ca.pem (the engine's CA), cert.pem and key.pem
    (this client's certificate): the engine is verified and the
    certificate shown, as `docker --tlsverify` does.

    Raises:
        OSError: nothing listens there (checked first, see _check_reachable).
        docker.errors.DockerException: the engine did not answer its version probe.
    """
    import docker

    _check_reachable(url or os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE)
    if tls is not None:
        import docker.tls

        ca, cert, key = (str(tls / name) for name in TLS_FILES)
        config = docker.tls.TLSConfig(client_cert=(cert, key), ca_cert=ca, verify=True)
        client = docker.DockerClient.__new__(docker.DockerClient)  # its __init__ is this one line, with our API client
        client.api = _api_client_class()(base_url=url or os.environ.get("DOCKER_HOST"), tls=config,
                                         timeout=SDK_TIMEOUT)
        return client
    if url:
        return docker.DockerClient(base_url=url, timeout=SDK_TIMEOUT)
    return docker.from_env(timeout=SDK_TIMEOUT)


def _api_client_class() -> Sdk:
    import docker

    class EngineCA(docker.APIClient):  # type: ignore[misc]
        """docker.APIClient that verifies the engine against its --docker-tls CA only.

        requests lets REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) replace a
        session's own CA for every request that does not pass one
        (psf/requests#3829), and the SDK passes none: with either set, as
        many hosts do, the engine's certificate was checked against the
        system's CAs and refused."""

        def merge_environment_settings(self, url: Sdk, proxies: Sdk, stream: Sdk, verify: Sdk, cert: Sdk) -> Sdk:
            return super().merge_environment_settings(url, proxies, stream, self.verify if verify is None else verify,
                                                      cert)

    return EngineCA


def engine_address(url: str | None) -> str:
    """Where the engine for `url` is looked for, as a log line names it: --docker, DOCKER_HOST or the default."""
    if url:
        return url
    from_env = os.environ.get("DOCKER_HOST")
    return f"DOCKER_HOST={from_env}" if from_env else DEFAULT_ENGINE


def connect(url: str | None, tls: Path | None = None) -> SdkDockerApi:
    """The engine at `url` (see sdk_client)."""
    return SdkDockerApi(sdk_client(url, tls))


def _check_reachable(url: str) -> None:
    # docker-py's version probe, when the engine is down, leaves its socket
    # to the garbage collector (a ResourceWarning at some later moment). A
    # plain connect, closed here, answers "is anyone there" without that.
    scheme, _, rest = url.partition("://")
    if scheme in ("unix", "http+unix"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(5)
            probe.connect("/" + rest.lstrip("/"))
    elif scheme in ("tcp", "http", "https"):
        host, _, port = rest.split("/", 1)[0].rpartition(":")
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port or 2375)), timeout=5):
            pass


class SdkDockerApi:
    """The DockerApi over a docker SDK client (docker.DockerClient, or anything with its API)."""

    def __init__(self, client: Sdk) -> None:
        self._client = client
        self._identity: tuple[str, str] | None = None

    def identity(self) -> tuple[str, str]:
        """The engine's name and version, from GET /version: ("Docker", "20.10.24"), ("Podman", "4.3.1")."""
        if self._identity is None:
            self._identity = engine_identity(self._client.version())
        return self._identity

    def containers(self, labels: Sequence[str]) -> list[JsonObject]:
        # One call, filtered by state here: Podman refuses the states
        # "restarting" and "dead" in a status filter (500).
        import docker.errors

        try:
            found = self._client.api.containers(all=True, filters={"label": list(labels)} if labels else None)
        except docker.errors.APIError as error:
            raise EngineError(f"GET /containers/json: {_explained(error)}") from None
        kept = [summary for summary in found if listed(summary)]
        if self.identity()[0] != "Podman":
            return kept
        # Podman's list never reports health ("Up 3 minutes", not "(healthy)"):
        # its inspect does.
        summaries = []
        for summary in kept:
            attrs = self.inspect(summary["Id"]) if summary.get("State") == "running" else None
            summaries.append(summary_from_inspect(attrs) if attrs is not None else summary)
        return summaries

    def running(self, labels: Sequence[str]) -> set[str]:
        import docker.errors

        try:
            found = self._client.api.containers(quiet=True, filters={"label": list(labels)} if labels else None)
        except docker.errors.APIError as error:
            raise EngineError(f"GET /containers/json: {_explained(error)}") from None
        return {summary["Id"] for summary in found}

    def inspect(self, cid: str) -> JsonObject | None:
        import docker.errors

        try:
            attrs: JsonObject = self._client.api.inspect_container(cid)
        except docker.errors.NotFound:
            return None
        return attrs

    def events(self, swarm: bool = False) -> EventStream:
        types = EVENT_TYPES + SWARM_EVENT_TYPES if swarm else EVENT_TYPES
        return _Events(self._client.events(decode=True, filters={"type": types}))

    def swarm_manager(self) -> bool:
        info = self._client.api.info()
        return bool((info.get("Swarm") or {}).get("ControlAvailable"))

    def services(self) -> list[JsonObject]:
        import docker.errors

        try:
            return list(self._client.api.services())
        except docker.errors.APIError as error:
            raise EngineError(f"docker service ls: {error.explanation or error}") from None

    def service(self, sid: str) -> JsonObject | None:
        import docker.errors

        try:
            found: JsonObject = self._client.api.inspect_service(sid)
        except docker.errors.NotFound:
            return None
        return found

    def tasks(self, sid: str | None = None) -> list[JsonObject]:
        filters: JsonObject = {"desired-state": "running"}
        if sid is not None:
            filters["service"] = sid
        return list(self._client.api.tasks(filters=filters))

    def network_names(self) -> dict[str, str]:
        return {str(n["Id"]): str(n.get("Name", "")) for n in self._client.api.networks()}

    def ping(self) -> None:
        self._client.ping()

    def start(self, cid: str) -> bool:
        # docker-py's start() hides the 304 of a container running already.
        api = self._client.api
        response = api.post(f"{api.base_url}/v{api.api_version}/containers/{quote(cid, safe='')}/start")
        if response.status_code >= 400:
            try:
                explanation = response.json().get("message") or response.text
            except ValueError:
                explanation = response.text
            raise EngineError(f"docker start: {response.status_code} {explanation.strip()}")
        return bool(response.status_code != 304)

    def stop(self, cid: str, grace: int) -> None:
        self._client.api.stop(cid, timeout=grace)

    def own_networks(self) -> frozenset[str]:
        if not os.path.exists("/.dockerenv"):
            return frozenset()
        try:
            attrs = self._client.api.inspect_container(socket.gethostname())
        except Exception:  # noqa: BLE001 - not our container, or no access: no shared networks
            return frozenset()
        return frozenset((attrs.get("NetworkSettings") or {}).get("Networks") or {})

    def close(self) -> None:
        self._client.close()


def engine_identity(version: Mapping[str, Json]) -> tuple[str, str]:
    """(name, version) from an engine's GET /version answer: its first component's."""
    components = version.get("Components") or [{}]
    name = str(components[0].get("Name") or "")
    number = str(components[0].get("Version") or version.get("Version") or "?")
    return ("Podman" if "podman" in name.lower() else "Docker"), number


def _explained(error: Sdk) -> str:
    # docker.errors.APIError: the engine's own message, on one line, with its status.
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    text = " ".join(str(error.explanation or error).split())
    return f"{status} {text}" if status else text


class _Events:
    """docker-py's CancellableStream, closed for good."""

    def __init__(self, stream: Sdk) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[JsonObject]:
        return self

    def __next__(self) -> JsonObject:
        event: JsonObject = next(self._stream)
        return event

    def close(self) -> None:
        # CancellableStream.close() shuts the socket only while the response
        # is open; after the engine hung up it leaves the connection to the
        # garbage collector. Closing the response closes it now.
        try:
            self._stream.close()
        except Exception:  # noqa: BLE001 - already half gone: the response close below is what matters
            pass
        response = getattr(self._stream, "_response", None)
        if response is not None:
            response.close()
