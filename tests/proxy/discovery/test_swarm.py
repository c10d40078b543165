# Swarm services through the gateway, on a real single-node Swarm
# (tests/swarm_support.py): routed and balanced, scaled, updated start-first
# and stop-first under load with no failed and no misrouted request,
# removed, a task failing its health check, and the event stream cut.

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from proxy._config import Discovery
from proxy.discovery._watcher import DockerWatcher

from ...docker_support import RUN_ID, RUN_LABEL, EngineFront
from ...swarm_support import GRACE, NS, Load, SwarmLab, get, single_node_swarm

WAIT = 60.0  # seconds: the longest a step waits for the Swarm


def eventually(what: str, check: Callable[[], bool], limit: float = WAIT) -> None:
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def swarm(docker_client: Any, backend_image: str, docker_network: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmLab]:
    with single_node_swarm(docker_client):
        lab = SwarmLab(docker_client, backend_image, docker_network)
        try:
            lab.open()
            lab.start_gateway(tmp_path_factory.mktemp("swarm"), "--hold", "15")
            yield lab
            assert lab.stop_gateway() == 0, lab.log.read_text() if lab.log else ""
            assert lab.log is not None
            log = lab.log.read_text()
            print("\n".join(line for line in log.splitlines() if "WARNING" in line or "ERROR" in line))
            assert "Traceback" not in log
        finally:
            lab.close()


def seen_hosts(swarm: SwarmLab, app: str, want: set[str], tries: int = 200) -> set[str]:
    """Who answered `tries` GETs (stopping early once every one of `want` did)."""
    found: set[str] = set()
    for _ in range(tries):
        answer = get(swarm.address, swarm.prefix(app) + "/")
        if answer.status == 200:
            found.add(answer.host)
        if want <= found:
            break
    return found


def hosts_of(tasks: list[dict[str, Any]]) -> set[str]:
    return {f"t-{t['ID']}" for t in tasks}


def test_a_service_is_routed_and_balanced_over_its_tasks(swarm: SwarmLab) -> None:
    service = swarm.create_service(swarm.tag("balanced", "v1"), replicas=2)
    tasks = swarm.wait_converged(service, 2)
    eventually("both tasks answering", lambda: seen_hosts(swarm, "balanced", hosts_of(tasks), 20) == hosts_of(tasks))
    (route,) = [r for r in swarm.routes() if r["prefix"] == swarm.prefix("balanced")]
    addresses = {a["Addresses"][0].split("/")[0] for t in tasks for a in t["NetworksAttachments"]
                 if a["Network"]["Spec"]["Name"] == swarm.overlay}
    assert {b["address"].rsplit(":", 1)[0] for b in route["backends"]} == addresses
    service.remove()
    eventually("the route to go (after --hold)", lambda: get(swarm.address, swarm.prefix("balanced") + "/").status == 404)


def test_scaling_2_4_1_under_load_fails_nothing(swarm: SwarmLab) -> None:
    service = swarm.create_service(swarm.tag("scaled", "v1"), replicas=2)
    first = swarm.wait_converged(service, 2)
    eventually("both tasks", lambda: seen_hosts(swarm, "scaled", hosts_of(first), 20) == hosts_of(first))
    with Load(swarm.address, swarm.prefix("scaled") + "/") as load:
        service.scale(4)
        four = swarm.wait_converged(service, 4)
        eventually("the new tasks answering", lambda: load.hosts_since(time.monotonic() - 1) == hosts_of(four))
        service.scale(1)
        (last,) = swarm.wait_converged(service, 1)
        settled = time.monotonic()
        eventually("only the last task answering", lambda: load.hosts_since(settled) == {f"t-{last['ID']}"}
                   and len([a for a in load.answers if a.sent > settled]) > 20, 10)
    assert load.failed() == []
    assert {a.host for a in load.answers} <= swarm.task_hosts(service)  # none misrouted
    # A task that left is never answered after it was told to go (its
    # desired state turned "shutdown" before its container was stopped).
    service.remove()


@pytest.mark.parametrize("order", ["start-first", "stop-first"])
@pytest.mark.parametrize("replicas", [1, 2])
def test_a_rolling_update_under_4_clients_fails_and_misroutes_nothing(swarm: SwarmLab, order: str,
                                                                      replicas: int) -> None:
    app = f"up-{order}-{replicas}"
    service = swarm.create_service(swarm.tag(app, "v1"), replicas=replicas, order=order)
    old = swarm.wait_converged(service, replicas)
    eventually("the first tasks", lambda: seen_hosts(swarm, app, hosts_of(old), 20) == hosts_of(old))
    with Load(swarm.address, swarm.prefix(app) + "/", clients=4) as load:
        time.sleep(0.5)
        service.update(image=swarm.tag(app, "v2"))
        new = swarm.wait_converged(service, replicas, updated=True)
        assert hosts_of(new).isdisjoint(hosts_of(old))
        done = time.monotonic()
        eventually("only new tasks answering", lambda: load.hosts_since(done) == hosts_of(new)
                   and len([a for a in load.answers if a.sent > done]) > 20, 15)
    failed = load.failed()
    assert failed == [], f"{len(failed)} of {len(load.answers)} failed: {failed[:3]}"
    assert {a.host for a in load.answers} <= hosts_of(old) | hosts_of(new)  # none misrouted
    assert len(load.answers) > 100
    service.remove()


def test_a_task_failing_its_health_check_leaves_before_a_user_finds_it(swarm: SwarmLab,
                                                                        docker_client: Any) -> None:
    import docker.types

    check = docker.types.Healthcheck(test=["CMD", "/bin/busybox", "test", "!", "-e", "/www/sick"],
                                     interval=NS // 2, timeout=NS, retries=1)
    service = swarm.create_service(swarm.tag("health", "v1"), replicas=2, healthcheck=check)
    tasks = swarm.wait_converged(service, 2)
    eventually("both tasks", lambda: seen_hosts(swarm, "health", hosts_of(tasks), 20) == hosts_of(tasks))
    sick = tasks[0]
    container = docker_client.containers.get(sick["Status"]["ContainerStatus"]["ContainerID"])
    with Load(swarm.address, swarm.prefix("health") + "/", clients=2) as load:
        time.sleep(0.5)
        container.exec_run(["/bin/busybox", "touch", "/www/sick"])
        eventually("the task to turn unhealthy", lambda: _health(container) in ("unhealthy", "gone"), 20)
        unhealthy = time.monotonic()
        time.sleep(3)
    assert load.failed() == []
    # The unhealthy event takes it out at once; a request sent a moment
    # after the engine said so never reaches it.
    assert f"t-{sick['ID']}" not in load.hosts_since(unhealthy + 0.5)
    assert f"t-{sick['ID']}" in {a.host for a in load.answers if a.sent < unhealthy}
    service.remove()


def _health(container: Any) -> str:
    try:
        container.reload()
    except Exception:  # noqa: BLE001 - already removed by the orchestrator
        return "gone"
    return str(((container.attrs["State"].get("Health") or {}).get("Status")) or "")


def test_a_task_that_never_passes_its_health_check_is_never_routed(swarm: SwarmLab) -> None:
    import docker.types

    healthy = swarm.create_service(swarm.tag("never", "v1"), replicas=1)
    (good,) = swarm.wait_converged(healthy, 1)
    eventually("the healthy task", lambda: get(swarm.address, swarm.prefix("never") + "/").host == f"t-{good['ID']}")
    failing = docker.types.Healthcheck(test=["CMD", "/bin/busybox", "false"], interval=NS // 2, timeout=NS,
                                       retries=1)
    # A second service on the same image: its tasks join the same pool once
    # healthy, which they never are.
    bad = swarm.create_service(swarm.tag("never", "v1"), replicas=1, healthcheck=failing)
    with Load(swarm.address, swarm.prefix("never") + "/", clients=2, limit=8.0) as load:
        time.sleep(6)
    assert load.failed() == [] and {a.host for a in load.answers} == {f"t-{good['ID']}"}
    assert swarm.task_hosts(bad)  # its tasks did start (and failed)
    bad.remove()
    healthy.remove()


def test_a_cut_event_stream_is_recovered_by_the_resync(swarm: SwarmLab, docker_client: Any) -> None:
    service = swarm.create_service(swarm.tag("cut", "v1"), replicas=1)
    swarm.wait_converged(service, 1)
    front = EngineFront()
    front.start()
    tasks_seen: list[int] = []

    class Sink:
        def set_docker(self, routes: Any) -> None:
            pass

    async def main() -> None:
        watcher = DockerWatcher(Sink(), Discovery(network=swarm.overlay, swarm="on", ready_timeout=0.1),
                                url=front.url, labels=[f"{RUN_LABEL}={RUN_ID}"])

        def count() -> int:
            return len([c for c in watcher.containers.containers if c.startswith("task-")])

        async with trio.open_nursery() as nursery:
            await nursery.start(watcher.run)
            with trio.fail_after(WAIT):
                await watcher.synced.wait()
                assert watcher.swarm is not None
                tasks_seen.append(count())
                front.close()  # the stream is cut; no event tells of what follows
                await trio.to_thread.run_sync(service.scale, 3)
                await trio.to_thread.run_sync(swarm.wait_converged, service, 3)
                tasks_seen.append(count())
                front.start()
                while count() != 3:
                    await trio.sleep(0.1)
                tasks_seen.append(count())
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    finally:
        front.close()
    assert tasks_seen == [1, 1, 3]
    service.remove()


def test_routes_and_haproxy_once_list_services_and_a_vip_service(swarm: SwarmLab, tmp_path: Path) -> None:
    service = swarm.create_service(swarm.tag("listed", "v1"), replicas=2)
    vip = swarm.create_service(swarm.tag("vip", "v1"), replicas=2, labels={"fastroute.swarm.vip": "true"})
    tasks = swarm.wait_converged(service, 2)
    swarm.wait_converged(vip, 2)
    flags = ["--network", swarm.overlay, "--swarm", "on", "--docker-label", f"{RUN_LABEL}={RUN_ID}"]
    listed = subprocess.run([sys.executable, "-m", "proxy", "routes", "--json", *flags],
                            capture_output=True, text=True, timeout=60, check=True)
    routes = {r["name"]: r for r in json.loads(listed.stdout)["routes"]}
    ips = {a["Addresses"][0].split("/")[0] for t in tasks for a in t["NetworksAttachments"]
           if a["Network"]["Spec"]["Name"] == swarm.overlay}
    assert {c["address"].rsplit(":", 1)[0] for c in routes[swarm.prefix("listed")]["containers"]} == ips
    vip.reload()
    (vip_ip,) = [v["Addr"].split("/")[0] for v in vip.attrs["Endpoint"]["VirtualIPs"]
                 if v["NetworkID"] == swarm.network_id]
    assert [c["address"] for c in routes[swarm.prefix("vip")]["containers"]] == [f"{vip_ip}:8000"]
    config = tmp_path / "haproxy.cfg"
    made = subprocess.run([sys.executable, "-m", "proxy", "haproxy", "--once", "--config", str(config), *flags],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    text = config.read_text()
    assert all(f"{ip}:8000" in text for ip in ips) and f"{vip_ip}:8000" in text
    vip.remove()
    service.remove()



def _routes(*flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "routes", "--json", *flags],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_a_gateway_follows_a_manager_over_tcp_with_tls_client_certificates(swarm: SwarmLab, tmp_path: Path) -> None:
    import trustme

    from ...haproxy_support import START_LIMIT, haproxy_binary

    ca, stranger = trustme.CA(), trustme.CA()
    served = ca.issue_cert("127.0.0.1")
    served.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "manager.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "clients-ca.pem"))
    for name, authority in (("good", ca), ("stranger", stranger)):
        directory = tmp_path / name
        directory.mkdir()
        ca.cert_pem.write_to_path(str(directory / "ca.pem"))  # both trust the manager
        issued = authority.issue_cert("fastroute-gateway")
        issued.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
        issued.private_key_pem.write_to_path(str(directory / "key.pem"))
    import socket as socket_module

    with socket_module.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The manager's TLS endpoint, as `dockerd --tlsverify` serves it: HAProxy
    # with client certificate verification in front of this engine's socket.
    (tmp_path / "manager.cfg").write_text(
        "global\n    maxconn 64\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 1h\n"
        "    timeout server 1h\nfrontend manager\n"
        f"    bind 127.0.0.1:{port} ssl crt {tmp_path / 'manager.pem'} ca-file {tmp_path / 'clients-ca.pem'}"
        " verify required\n    default_backend engine\nbackend engine\n    server engine /var/run/docker.sock\n")
    proc = subprocess.Popen([haproxy_binary(), "-db", "-f", str(tmp_path / "manager.cfg")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from ...docker_support import wait_for_port

        wait_for_port(("127.0.0.1", port), START_LIMIT)
        service = swarm.create_service(swarm.tag("tls", "v1"), replicas=1)
        swarm.wait_converged(service, 1)
        flags = ["--docker", f"tcp://127.0.0.1:{port}", "--network", swarm.overlay, "--swarm", "on",
                 "--docker-label", f"{RUN_LABEL}={RUN_ID}"]
        # A CA bundle in the environment (hosts often set one) is not the engine's CA.
        stranger.cert_pem.write_to_path(str(tmp_path / "bundle.pem"))
        good = _routes(*flags, "--docker-tls", str(tmp_path / "good"),
                       env={"REQUESTS_CA_BUNDLE": str(tmp_path / "bundle.pem"),
                            "CURL_CA_BUNDLE": str(tmp_path / "bundle.pem")})
        assert good.returncode == 0, good.stderr
        assert swarm.prefix("tls") in {r["name"] for r in json.loads(good.stdout)["routes"]}
        refused = _routes(*flags, "--docker-tls", str(tmp_path / "stranger"))
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1
        assert refused.stderr.startswith("fastroute: error: cannot read the Docker engine")
        service.remove()
    finally:
        proc.terminate()
        proc.wait(10)
    missing = _routes("--docker-tls", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "lacks ca.pem, cert.pem, key.pem" in missing.stderr


def test_through_a_socket_filter_with_and_without_its_swarm_calls(swarm: SwarmLab) -> None:
    from .test_docker_access import counters, socket_filter

    service = swarm.create_service(swarm.tag("filtered", "v1"), replicas=1)
    swarm.wait_converged(service, 1)
    flags = ["--network", swarm.overlay, "--docker-label", f"{RUN_LABEL}={RUN_ID}"]
    with socket_filter(wake=False, swarm=True) as (sock, stats):
        listed = _routes("--docker", f"unix://{sock}", "--swarm", "on", *flags)
        assert listed.returncode == 0, listed.stderr
        assert swarm.prefix("filtered") in {r["name"] for r in json.loads(listed.stdout)["routes"]}
        assert counters(stats)["denied"] == 0
    with socket_filter(wake=False) as (sock, stats):
        # --swarm auto on a manager whose filter refuses the Swarm calls: its containers only, and why.
        listed = _routes("--docker", f"unix://{sock}", *flags)
        assert listed.returncode == 0, listed.stderr
        found = json.loads(listed.stdout)
        assert any("Swarm services not followed" in w for w in found["warnings"])
        assert counters(stats)["denied"] >= 1
    service.remove()


def test_haproxy_mode_follows_a_service_as_it_scales(swarm: SwarmLab, tmp_path: Path) -> None:
    from ...haproxy_support import HAProxy

    service = swarm.create_service(swarm.tag("hx", "v1"), replicas=1)
    (first,) = swarm.wait_converged(service, 1)
    # HAProxy and its follower in the box too: HAProxy must reach the tasks.
    haproxy = HAProxy(tmp_path, wrap=swarm.in_box(), host=swarm.box_ip)
    common = swarm.in_box(sys.executable, "-m", "proxy", "haproxy", "--config", str(haproxy.config), "--bind",
                          haproxy.bind, "--network", swarm.overlay, "--swarm", "on", "--docker-label",
                          f"{RUN_LABEL}={RUN_ID}", "--hold", "0")
    made = subprocess.run([*common, "--once"], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    haproxy.start()
    log = tmp_path / "follower.log"
    with open(log, "wb") as out:
        follower = subprocess.Popen([*common, "--master-socket", str(haproxy.socket), "--reload-interval", "1"],
                                    stdout=out, stderr=subprocess.STDOUT)
    try:
        address = (swarm.box_ip, haproxy.port)
        eventually("the first task behind HAProxy",
                   lambda: get(address, swarm.prefix("hx") + "/").host == f"t-{first['ID']}")
        service.scale(3)
        tasks = swarm.wait_converged(service, 3)

        def all_three() -> bool:
            return {get(address, swarm.prefix("hx") + "/").host for _ in range(30)} == hosts_of(tasks)

        eventually("all three tasks behind HAProxy", all_three)
        service.remove()
        eventually("the route gone", lambda: get(address, swarm.prefix("hx") + "/").status in (404, 503))
    finally:
        follower.terminate()
        try:
            assert follower.wait(10) == 0, log.read_text()
        finally:
            if follower.poll() is None:
                follower.kill()
            haproxy.stop()
    assert "Traceback" not in log.read_text()
