# Docker discovery against the real engine: containers of the busybox test
# image become routes through real HTTP, and leave before they die.
#
# The watcher here only sees this test run's containers (the run label), on
# the run's own network, so a user's containers on the same engine never
# take part.

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from proxy.routing._sources import RouteSources
from proxy._config import Discovery
from proxy.gateway._server import Gateway
from proxy.discovery._watcher import DockerWatcher

from ...docker_support import GATEWAY_DOCKER, RUN_ID, RUN_LABEL, Backend, DockerLab, engine_socket
from ...helpers import Client, Reply, fetch, start_gateway

pytestmark = pytest.mark.usefixtures("clients_closed")

WAIT = 15.0  # seconds: the longest any test waits for the engine to act


async def start_discovery(nursery: trio.Nursery, lab: DockerLab, **discovery: Any) -> tuple[Gateway, DockerWatcher]:
    discovery.setdefault("network", lab.network)
    discovery.setdefault("hold", 0.0)
    url = discovery.pop("url", GATEWAY_DOCKER)
    gateway = await start_gateway(nursery, [], timeouts=discovery.pop("timeouts", {}))
    sources = RouteSources(gateway, ())
    watcher = DockerWatcher(sources, Discovery(**discovery), url=url, labels=[f"{RUN_LABEL}={RUN_ID}"])
    gateway.not_ready = watcher.refused  # as serve does
    await nursery.start(watcher.run)
    with trio.fail_after(WAIT):
        await watcher.synced.wait()
    return gateway, watcher


async def run(lab: DockerLab, **options: Any) -> Backend:
    return await trio.to_thread.run_sync(lambda: lab.start_backend(**options))


async def docker(lab: DockerLab, action: Callable[[Any], Any], backend: Backend) -> Any:
    return await trio.to_thread.run_sync(lambda: action(lab.client.containers.get(backend.id)))


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = WAIT) -> None:
    with trio.move_on_after(limit):
        while not await check():
            await trio.sleep(0.02)
        return
    raise AssertionError(f"not within {limit}s: {what}")


def host_of(reply: Reply) -> str:
    return reply.body.decode().splitlines()[0].removeprefix("host=") if reply.status == 200 else ""


async def not_routed(gateway: Gateway, path: str) -> bool:
    found = gateway.table.lookup(None, path.encode())
    return found is None or not found[1].backends


async def routed_to_its_address(gateway: Gateway, path: str, lab: DockerLab, backend: Backend) -> bool:
    """Whether the table routes `path` to `backend`'s address on the lab's network now."""
    def address() -> str:
        networks = lab.client.api.inspect_container(backend.id)["NetworkSettings"]["Networks"]
        return str((networks.get(lab.network) or {}).get("IPAddress") or "")

    ip = await trio.to_thread.run_sync(address)
    found = gateway.table.lookup(None, path.encode())
    return bool(ip) and found is not None and any(b.address.host == ip for b in found[1].backends)


async def answered_by(gateway: Gateway, path: str, backend: Backend | None) -> bool:
    reply = await fetch(gateway, "GET", path)
    if backend is None:
        return reply.status == 404
    return host_of(reply) == backend.name


async def test_lifecycle_start_stop_kill_pause_restart_rm(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab)
    backend = await run(docker_lab, labels={"fastroute.route": "/life"})
    await eventually(lambda: answered_by(gateway, "/life/", backend), "routed after start")

    await docker(docker_lab, lambda c: c.pause(), backend)
    # Out of the table first: a request sent to the paused container would
    # wait for it (Podman's event can come after its API call returned).
    await eventually(lambda: not_routed(gateway, "/life/"), "out of the table after pause")
    await eventually(lambda: answered_by(gateway, "/life/", None), "gone after pause")
    await docker(docker_lab, lambda c: c.unpause(), backend)
    await eventually(lambda: answered_by(gateway, "/life/", backend), "back after unpause")

    await docker(docker_lab, lambda c: c.stop(timeout=1), backend)
    await eventually(lambda: answered_by(gateway, "/life/", None), "gone after stop")
    await docker(docker_lab, lambda c: c.start(), backend)
    await eventually(lambda: answered_by(gateway, "/life/", backend), "back after start")

    await docker(docker_lab, lambda c: c.restart(timeout=1), backend)
    await eventually(lambda: answered_by(gateway, "/life/", backend), "back after restart")

    await docker(docker_lab, lambda c: c.kill(), backend)
    await eventually(lambda: answered_by(gateway, "/life/", None), "gone after kill")
    await docker(docker_lab, lambda c: c.start(), backend)
    await eventually(lambda: answered_by(gateway, "/life/", backend), "back after start")

    await docker(docker_lab, lambda c: c.remove(force=True), backend)
    await eventually(lambda: answered_by(gateway, "/life/", None), "gone after rm -f")


async def test_leaves_on_the_kill_event_before_it_dies(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, watcher = await start_discovery(nursery, docker_lab)
    backend = await run(docker_lab, labels={"fastroute.route": "/grace"}, environment={"GRACE": "3"})
    await eventually(lambda: answered_by(gateway, "/grace/", backend), "routed")

    await docker(docker_lab, lambda c: c.kill(signal="SIGTERM"), backend)
    await eventually(lambda: answered_by(gateway, "/grace/", None), "gone after SIGTERM")

    container = await trio.to_thread.run_sync(lambda: docker_lab.client.containers.get(backend.id))
    assert container.status == "running"  # still alive for its grace period, yet out of the table


async def test_leaves_when_its_stop_begins(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    # Docker says so at once (the stop's kill event); Podman says nothing
    # until the container exited, and the watcher's stop poll sees it. The
    # container keeps serving for its grace: it ends when the test kills it.
    gateway, _ = await start_discovery(nursery, docker_lab)
    backend = await run(docker_lab, labels={"fastroute.route": "/stopping"}, environment={"GRACE": "600"})
    await eventually(lambda: answered_by(gateway, "/stopping/", backend), "routed")

    async with trio.open_nursery() as stopping:
        stopping.start_soon(docker, docker_lab, lambda c: c.stop(timeout=600), backend)
        try:
            await eventually(lambda: answered_by(gateway, "/stopping/", None), "gone once its stop began")
            container = await trio.to_thread.run_sync(lambda: docker_lab.client.containers.get(backend.id))
        finally:
            await docker(docker_lab, lambda c: c.kill(), backend)
    assert container.status in ("running", "stopping")  # Docker's word, Podman's: in its grace, yet out


async def test_host_labels_route_by_host(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab)
    api = await run(docker_lab, labels={"fastroute.route": "/hosted", "fastroute.host": "api.example.test"})
    sites = await run(docker_lab, labels={"fastroute.route": "/hosted", "fastroute.host": "*.example.test"})
    anywhere = await run(docker_lab, labels={"fastroute.route": "/hosted"})

    async def served_by(host: str) -> str:
        client = await Client.connect(gateway)
        try:
            return host_of(await client.request("GET", "/hosted/", host=host))
        finally:
            await client.aclose()

    async def all_routed() -> bool:
        return [await served_by(h) for h in ("API.example.test:8080", "shop.example.test", "other.test")] == [
            api.name, sites.name, anywhere.name]

    await eventually(all_routed, "each host routed to its container")
    await docker(docker_lab, lambda c: c.stop(timeout=1), api)
    # Its container stopped: the exact host's route leaves (no --hold here) and the wildcard serves that host.
    await eventually(lambda: _answers(gateway, "api.example.test", {200}, sites.name), "the wildcard, once api left")


async def _answers(gateway: Gateway, host: str, statuses: set[int], name: str) -> bool:
    client = await Client.connect(gateway)
    try:
        reply = await client.request("GET", "/hosted/", host=host)
    finally:
        await client.aclose()
    assert reply.status in statuses, reply.status
    return reply.status == 200 and host_of(reply) == name


async def test_restart_uses_the_new_address(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab)
    first = await run(docker_lab, labels={"fastroute.route": "/moving"})
    await eventually(lambda: answered_by(gateway, "/moving/", first), "routed")
    filler = await run(docker_lab)  # will take the old IP if it is freed

    await docker(docker_lab, lambda c: c.stop(timeout=1), first)
    await docker(docker_lab, lambda c: c.remove(force=True), filler)
    await trio.to_thread.run_sync(lambda: docker_lab.start_backend(labels={"occupy": "1"}))
    await docker(docker_lab, lambda c: c.start(), first)

    container = await trio.to_thread.run_sync(lambda: docker_lab.client.containers.get(first.id))
    new_ip = container.attrs["NetworkSettings"]["Networks"][docker_lab.network]["IPAddress"]
    await eventually(lambda: answered_by(gateway, "/moving/", first), "routed again")
    assert str(gateway.table.lookup(None, b"/moving")[1].backends[0].address.host) == new_ip


async def test_replicas_are_balanced(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab)
    replicas = [await run(docker_lab, labels={"fastroute.route": "/pool"}) for _ in range(3)]
    await eventually(lambda: _pool_size(gateway, "/pool", 3), "three replicas in the pool")

    hosts = [host_of(await fetch(gateway, "GET", "/pool/")) for _ in range(9)]

    assert sorted(set(hosts)) == sorted(r.name for r in replicas)


async def _pool_size(gateway: Gateway, prefix: str, size: int) -> bool:
    found = gateway.table.lookup(None, prefix.encode())
    return found is not None and len(found[1].backends) == size


async def test_image_name_rules(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab)
    owner = f"frt{RUN_ID}"
    tagged = await trio.to_thread.run_sync(docker_lab.tag, f"{owner}/foo:1.2")
    registry = await trio.to_thread.run_sync(docker_lab.tag, f"registry.example:5000/{owner}/app:7")
    official = await trio.to_thread.run_sync(docker_lab.tag, f"{owner}x")
    a = await run(docker_lab, image=tagged)
    b = await run(docker_lab, image=registry)
    c = await run(docker_lab, image=official)

    await eventually(lambda: answered_by(gateway, f"/{owner}/foo/x/", a), "tag dropped")
    await eventually(lambda: answered_by(gateway, f"/{owner}/app/", b), "registry host dropped")
    await eventually(lambda: answered_by(gateway, f"/{owner}x/", c), "single-name image")
    assert (await fetch(gateway, "GET", f"/{owner}/foobar/")).status == 404


async def test_labels_port_strip_prefix_and_enable(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, watcher = await start_discovery(nursery, docker_lab)
    on_9000 = await run(docker_lab, labels={"fastroute.route": "/nine,/also/nine", "fastroute.port": "9000",
                                            "fastroute.strip_prefix": "true"}, environment={"PORT": "9000"},
                        wait=False)
    hidden = await run(docker_lab, labels={"fastroute.route": "/hidden", "fastroute.enable": "false"})
    broken = await run(docker_lab, labels={"fastroute.route": "/broken", "fastroute.port": "http"})
    fine = await run(docker_lab, labels={"fastroute.route": "/fine"})

    await eventually(lambda: answered_by(gateway, "/fine/", fine), "the valid container is routed")
    await eventually(lambda: answered_by(gateway, "/nine/x/", on_9000), "port label")
    reply = await fetch(gateway, "GET", "/also/nine/x/")
    assert host_of(reply) == on_9000.name and "uri=/x/" in reply.body.decode()  # stripped
    assert (await fetch(gateway, "GET", "/hidden/")).status == 404
    assert (await fetch(gateway, "GET", "/broken/")).status == 404
    skipped = {c.name: c.skip for c in watcher.containers.skipped()}
    assert "fastroute.port='http'" in (skipped[broken.name] or "")
    del hidden


async def test_route_by_name(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab, route_by="name")
    backend = await run(docker_lab)

    await eventually(lambda: answered_by(gateway, f"/{backend.name}/", backend), "routed by name")


async def test_exposed_by_default_false(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab, exposed_by_default=False)
    plain = await run(docker_lab, labels={"fastroute.route": "/plain"})
    enabled = await run(docker_lab, labels={"fastroute.route": "/enabled", "fastroute.enable": "true"})

    await eventually(lambda: answered_by(gateway, "/enabled/", enabled), "opted in")
    assert (await fetch(gateway, "GET", "/plain/")).status == 404
    del plain


async def test_two_networks_need_the_network_flag(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    other = await trio.to_thread.run_sync(docker_lab.create_network)
    backend = await run(docker_lab, labels={"fastroute.route": "/two"})
    await trio.to_thread.run_sync(lambda: docker_lab.client.networks.get(other).connect(backend.id))

    guessing, watcher = await start_discovery(nursery, docker_lab, network=None)
    await eventually(lambda: _skipped(watcher, backend.name, "several networks"), "skipped with a reason")
    assert (await fetch(guessing, "GET", "/two/")).status == 404

    chosen, _ = await start_discovery(nursery, docker_lab, network=other)
    await eventually(lambda: answered_by(chosen, "/two/", backend), "routed on the chosen network")
    ip = chosen.table.lookup(None, b"/two")[1].backends[0].address.host
    attrs = await trio.to_thread.run_sync(lambda: docker_lab.client.containers.get(backend.id).attrs)
    assert ip == attrs["NetworkSettings"]["Networks"][other]["IPAddress"]


async def _skipped(watcher: DockerWatcher, name: str, reason: str) -> bool:
    return any(c.name == name and reason in (c.skip or "") for c in watcher.containers.skipped())


async def test_network_disconnect_and_connect_update_the_address(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab)
    backend = await run(docker_lab, labels={"fastroute.route": "/netmove"})
    await eventually(lambda: answered_by(gateway, "/netmove/", backend), "routed")
    network = await trio.to_thread.run_sync(lambda: docker_lab.client.networks.get(docker_lab.network))

    await trio.to_thread.run_sync(lambda: network.disconnect(backend.id))
    # The table first: a request sent to the old address before the event
    # is seen would wait for its connect (Podman's events come after its call returned).
    await eventually(lambda: not_routed(gateway, "/netmove/"), "out of the table when disconnected")
    await eventually(lambda: answered_by(gateway, "/netmove/", None), "gone when disconnected")
    await trio.to_thread.run_sync(lambda: network.connect(backend.id))
    await eventually(lambda: routed_to_its_address(gateway, "/netmove/", docker_lab, backend), "in the table again")
    await eventually(lambda: answered_by(gateway, "/netmove/", backend), "back when connected")


async def test_healthcheck_gates_the_route(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab)
    check = {"test": ["CMD", "/bin/busybox", "test", "-f", "/www/ok"], "interval": 200_000_000,
             "timeout": 1_000_000_000, "retries": 1}
    backend = await run(docker_lab, labels={"fastroute.route": "/health"}, healthcheck=check)

    async def checked_unhealthy() -> bool:
        attrs = await trio.to_thread.run_sync(lambda: docker_lab.client.api.inspect_container(backend.id))
        return bool((attrs["State"].get("Health") or {}).get("Status") == "unhealthy")

    await eventually(checked_unhealthy, "its first check failed")
    await eventually(lambda: answered_by(gateway, "/health/", None), "not routed while unhealthy")

    await docker(docker_lab, lambda c: c.exec_run(["/bin/busybox", "touch", "/www/ok"]), backend)
    await eventually(lambda: answered_by(gateway, "/health/", backend), "routed once healthy")
    await docker(docker_lab, lambda c: c.exec_run(["/bin/busybox", "rm", "/www/ok"]), backend)
    await eventually(lambda: answered_by(gateway, "/health/", None), "gone once unhealthy")


async def test_slow_request_in_flight_finishes_when_its_container_stops(
    nursery: trio.Nursery, docker_lab: DockerLab
) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab)
    backend = await run(docker_lab, labels={"fastroute.route": "/slow"}, environment={"GRACE": "4"})
    await eventually(lambda: answered_by(gateway, "/slow/", backend), "routed")
    replies: list[Reply] = []

    async def slow_request() -> None:
        replies.append(await fetch(gateway, "GET", "/slow/?sleep=2"))

    async with trio.open_nursery() as inner:
        inner.start_soon(slow_request)
        await trio.sleep(0.5)
        await docker(docker_lab, lambda c: c.stop(timeout=10), backend)

    assert replies[0].status == 200 and host_of(replies[0]) == backend.name


async def test_recreate_under_load_fails_no_request(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab, hold=10.0)
    # Like any real service, the old container finishes what it is doing on
    # SIGTERM (for 1 s); the gateway must send it nothing new after that.
    old = await run(docker_lab, labels={"fastroute.route": "/recreate"}, environment={"GRACE": "1"})
    await eventually(lambda: answered_by(gateway, "/recreate/", old), "routed")
    statuses: list[int] = []
    hosts: set[str] = set()
    done = trio.Event()

    async def load() -> None:
        for _ in range(2000):  # bounded in count, and stops when the swap is over
            if done.is_set():
                return
            reply = await fetch(gateway, "GET", "/recreate/")
            statuses.append(reply.status)
            hosts.add(host_of(reply))

    async with trio.open_nursery() as inner:
        for _ in range(4):
            inner.start_soon(load)
        await trio.sleep(0.3)
        await docker(docker_lab, lambda c: c.stop(timeout=2), old)
        new = await run(docker_lab, labels={"fastroute.route": "/recreate"})
        await eventually(lambda: answered_by(gateway, "/recreate/", new), "the new container serves")
        await trio.sleep(0.3)
        done.set()

    assert statuses and set(statuses) == {200}, sorted(set(statuses))
    assert {old.name, new.name} <= hosts


async def test_held_route_answers_503_with_retry_after_when_the_hold_runs_out(
    nursery: trio.Nursery, docker_lab: DockerLab
) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab, hold=1.0)
    backend = await run(docker_lab, labels={"fastroute.route": "/held"})
    await eventually(lambda: answered_by(gateway, "/held/", backend), "routed")
    await docker(docker_lab, lambda c: c.stop(timeout=1), backend)
    await eventually(lambda: _pool_size(gateway, "/held", 0), "held with no backends")

    reply = await fetch(gateway, "GET", "/held/")

    assert reply.status == 503 and reply.header(b"retry-after") is not None
    await eventually(lambda: answered_by(gateway, "/held/", None), "dropped after the hold")


class SocketCut:
    """A TCP front for the engine's socket that a test can cut and restore,
    as a dockerd restart or a network fault would."""

    def __init__(self, socket_path: str | None = None) -> None:
        self.socket_path = socket_path or engine_socket()
        self.port = 0
        self.up = True
        self._live: set[trio.SocketStream] = set()
        self._opened: list[trio.SocketStream] = []

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        try:
            await trio.serve_listeners(self._handle, listeners)
        finally:
            for listener in listeners:
                listener.socket.close()
            for stream in self._opened:
                stream.socket.close()

    async def _handle(self, stream: trio.SocketStream) -> None:
        if not self.up:
            await trio.aclose_forcefully(stream)
            return
        engine = await trio.open_unix_socket(self.socket_path)
        self._opened.append(engine)
        self._live.update({stream, engine})

        async def pipe(source: trio.SocketStream, sink: trio.SocketStream) -> None:
            try:
                while data := await source.receive_some(65536):
                    await sink.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            nursery.cancel_scope.cancel()

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(pipe, stream, engine)
                nursery.start_soon(pipe, engine, stream)
        finally:
            for s in (stream, engine):
                self._live.discard(s)
                await trio.aclose_forcefully(s)

    async def cut(self) -> None:
        self.up = False
        for stream in list(self._live):
            await trio.aclose_forcefully(stream)


async def test_events_stream_breaking_reconnects_and_resyncs(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    front = SocketCut()
    await nursery.start(front.serve)
    gateway, watcher = await start_discovery(nursery, docker_lab, url=f"tcp://127.0.0.1:{front.port}")
    stays = await run(docker_lab, labels={"fastroute.route": "/stays"})
    goes = await run(docker_lab, labels={"fastroute.route": "/goes"})
    await eventually(lambda: answered_by(gateway, "/stays/", stays), "routed")
    await eventually(lambda: answered_by(gateway, "/goes/", goes), "routed")

    await front.cut()
    await eventually(lambda: _status(watcher, "reconnecting"), "the watcher noticed")
    await docker(docker_lab, lambda c: c.remove(force=True), goes)  # while the watcher is blind
    arrives = await run(docker_lab, labels={"fastroute.route": "/arrives"})
    assert await answered_by(gateway, "/stays/", stays)  # the last good table keeps serving

    front.up = True
    await eventually(lambda: answered_by(gateway, "/arrives/", arrives), "resynced: new container routed")
    assert await answered_by(gateway, "/goes/", None)  # resynced: the removed one is gone
    assert watcher.reconnects >= 1


async def _status(watcher: DockerWatcher, status: str) -> bool:
    return watcher.status == status


async def test_static_route_wins_a_clash_with_docker(
    nursery: trio.Nursery, docker_lab: DockerLab, caplog: pytest.LogCaptureFixture
) -> None:
    from proxy._config import Route

    from ...helpers import start_backend

    static_backend = await start_backend(nursery, "static")
    gateway = await start_gateway(nursery, [])
    sources = RouteSources(gateway, (Route("/clash", (static_backend.address,), source="--route"),))
    sources.set_static(sources.static)
    watcher = DockerWatcher(sources, Discovery(network=docker_lab.network, hold=0),
                            labels=[f"{RUN_LABEL}={RUN_ID}"])
    await nursery.start(watcher.run)
    await watcher.synced.wait()
    container = await run(docker_lab, labels={"fastroute.route": "/clash,/docker-only"})

    await eventually(lambda: answered_by(gateway, "/docker-only/", container), "docker route")
    reply = await fetch(gateway, "GET", "/clash/")
    assert reply.json()["backend"] == "static"
    assert any("routed by --route and by Docker" in r.getMessage() for r in caplog.records)



async def test_fifty_containers_started_at_once_all_converge(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    gateway, _ = await start_discovery(nursery, docker_lab)
    started: list[Backend] = []

    async def start_one(i: int) -> None:
        started.append(await trio.to_thread.run_sync(
            lambda: docker_lab.start_backend(labels={"fastroute.route": f"/burst/{i}"}, wait=False)))

    async with trio.open_nursery() as inner:
        for i in range(50):
            inner.start_soon(start_one, i)

    async def all_routed() -> bool:
        return all(gateway.table.lookup(None, f"/burst/{i}".encode()) is not None for i in range(50))

    await eventually(all_routed, "all 50 routed", limit=60)
    by_prefix = {gateway.table.lookup(None, f"/burst/{i}".encode())[1].backends[0].address.host for i in range(50)}
    assert by_prefix == {b.ip for b in started}


async def test_a_container_started_between_subscribing_and_listing_is_routed(
    nursery: trio.Nursery, docker_lab: DockerLab
) -> None:
    from proxy.discovery._client import SdkDockerApi, sdk_client

    racer: list[Backend] = []

    def client_with_a_race(url: str | None) -> Any:
        client = sdk_client(url)
        subscribe = client.events

        def events(**kwargs: Any) -> Any:
            stream = subscribe(**kwargs)
            if not racer:  # the first session only: start one in the gap
                racer.append(docker_lab.start_backend(labels={"fastroute.route": "/racer"}, wait=False))
            return stream

        client.events = events
        return SdkDockerApi(client)

    gateway = await start_gateway(nursery, [])
    sources = RouteSources(gateway, ())
    watcher = DockerWatcher(sources, Discovery(network=docker_lab.network, hold=0),
                            labels=[f"{RUN_LABEL}={RUN_ID}"], client_factory=client_with_a_race)
    await nursery.start(watcher.run)
    await watcher.synced.wait()

    await eventually(lambda: answered_by(gateway, "/racer/", racer[0]), "routed")


async def test_admin_endpoints_show_the_watcher_and_its_events(nursery: trio.Nursery, docker_lab: DockerLab) -> None:
    import json

    from ..admin.test_admin import admin_get, start_admin

    gateway, watcher = await start_discovery(nursery, docker_lab)
    gateway.watcher = watcher
    admin = await start_admin(nursery, gateway)
    status, _, body = await admin_get(admin, "/healthz")
    docker = json.loads(body)["docker"]
    assert status == 200 and docker["status"] == "following" and docker["reconnects"] == 0
    assert 0 <= docker["seconds_since_event"] < WAIT

    backend = await run(docker_lab, labels={"fastroute.route": "/admin-seen"})
    await eventually(lambda: answered_by(gateway, "/admin-seen/", backend), "routed")

    routes = json.loads((await admin_get(admin, "/routes"))[2])["routes"]
    [entry] = [r for r in routes if r["prefix"] == "/admin-seen"]
    assert entry["source"] == "docker:label" and entry["backends"][0]["container"] == backend.name
    events = json.loads((await admin_get(admin, "/events"))[2])["events"]
    assert any(e["event"] == "start" and e["name"] == backend.name for e in events)
