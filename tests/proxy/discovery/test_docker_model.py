# Pure: container summaries and events -> routes, with no engine.

from __future__ import annotations

from typing import Any

import pytest

from proxy._config import Address, Discovery
from proxy.discovery._container import image_prefix, parse_container
from proxy.discovery._model import ContainerSet, event_action, needs_summary


def summary(name: str = "app", image: str = "steve/foo:1.2", *, labels: dict[str, str] | None = None,
            networks: dict[str, dict[str, str]] | None = None, state: str = "running",
            status: str = "Up 2 seconds", mode: str = "bridge", cid: str | None = None) -> dict[str, Any]:
    return {
        "Id": cid or (name.encode().hex() * 8)[:64],
        "Names": [f"/{name}"],
        "Image": image,
        "Labels": labels or {},
        "State": state,
        "Status": status,
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": networks if networks is not None else {"net": {"IPAddress": "10.0.0.2"}}},
    }


@pytest.mark.parametrize(
    ("image", "prefix"),
    [
        pytest.param("steve/foo:1.2", "/steve/foo", id="tag"),
        pytest.param("steve/foo", "/steve/foo", id="no_tag"),
        pytest.param("registry.example:5000/team/app@sha256:" + "a" * 64, "/team/app", id="registry_digest"),
        pytest.param("registry.example/team/app:2", "/team/app", id="registry_no_port"),
        pytest.param("localhost/app:dev", "/app", id="localhost_registry"),
        pytest.param("localhost:5000/a/b/c:1", "/a/b/c", id="deep"),
        pytest.param("nginx", "/nginx", id="official"),
        pytest.param("nginx:1.25", "/nginx", id="official_tag"),
        pytest.param("docker.io/library/nginx", "/nginx", id="docker_io_library"),
        pytest.param("library/nginx", "/nginx", id="library"),
        pytest.param("ghcr.io/library/x", "/library/x", id="library_elsewhere_is_kept"),
        pytest.param("sha256:" + "b" * 64, None, id="image_id"),
        pytest.param("0123456789ab", None, id="short_image_id"),
    ],
)
def test_image_prefix(image: str, prefix: str | None) -> None:
    assert image_prefix(image) == prefix


D = Discovery()


def test_default_route_by_image() -> None:
    c = parse_container(summary(), D)
    assert c is not None and c.prefixes == ("/steve/foo",)
    assert c.address == Address("10.0.0.2", 8000) and c.routable and c.skip is None


def test_labels() -> None:
    c = parse_container(summary(labels={"fastroute.route": "/a, /b/c/", "fastroute.port": "9000",
                                        "fastroute.strip_prefix": "true"}), D)
    assert c is not None
    assert c.prefixes == ("/a", "/b/c") and c.address == Address("10.0.0.2", 9000) and c.strip_prefix
    assert c.source == "label"


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        pytest.param({"fastroute.port": "http"}, "fastroute.port='http' is not a port", id="port_word"),
        pytest.param({"fastroute.port": "70000"}, "not a port", id="port_range"),
        pytest.param({"fastroute.route": "nope"}, "start with '/'", id="route_relative"),
        pytest.param({"fastroute.route": "/a?b"}, "contains '?'", id="route_query"),
        pytest.param({"fastroute.route": " , "}, "names no prefix", id="route_empty"),
        pytest.param({"fastroute.enable": "perhaps"}, "not true or false", id="enable_word"),
        pytest.param({"fastroute.host": "a b.example"}, "fastroute.host='a b.example'", id="host_space"),
        pytest.param({"fastroute.host": "x.example:80"}, "has a port", id="host_port"),
        pytest.param({"fastroute.host": " , "}, "names no host", id="host_empty"),
    ],
)
def test_invalid_label_skips_the_container_naming_the_label(labels: dict[str, str], reason: str) -> None:
    c = parse_container(summary(labels=labels), D)
    assert c is not None and c.skip is not None and reason in c.skip


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        pytest.param({"fastroute.strip_prefix": "maybe"}, "fastroute.strip_prefix='maybe' is not true or false",
                     id="strip_word"),
        pytest.param({"fastroute.idle-timeout": "soon"}, "fastroute.idle-timeout='soon' is not a positive",
                     id="idle_word"),
        pytest.param({"fastroute.healthcheck.path": "healthz"}, "must start with '/'", id="check_path"),
    ],
)
def test_a_bad_optional_label_routes_the_container_without_that_feature(labels: dict[str, str], reason: str) -> None:
    c = parse_container(summary(labels=labels), D)
    assert c is not None and c.skip is None and c.address is not None
    assert (c.strip_prefix, c.idle_timeout, c.check) == (False, None, None)
    assert len(c.ignored) == 1 and reason in c.ignored[0] and c.ignored[0].endswith("; routed without it")


def test_host_labels_make_a_route_per_host_and_prefix() -> None:
    api = parse_container(summary("api", labels={"fastroute.route": "/, /v1", "fastroute.host":
                                                 "API.example.com, *.example.com, b\u00fccher.example"}), D)
    assert api is not None and api.skip is None
    assert api.hosts == ("api.example.com", "*.example.com", "xn--bcher-kva.example")
    assert api.keys[:2] == (("api.example.com", "/"), ("api.example.com", "/v1"))
    shop = parse_container(summary("shop", labels={"fastroute.route": "/", "fastroute.host": "shop.example.com"},
                                   networks={"net": {"IPAddress": "10.0.0.3"}}), D)
    anywhere = parse_container(summary("any", labels={"fastroute.route": "/"},
                                       networks={"net": {"IPAddress": "10.0.0.4"}}), D)
    assert anywhere is not None and anywhere.keys == ((None, "/"),)
    containers = ContainerSet(D, probe_ports=False)
    containers.replace_all([summary("api", labels={"fastroute.route": "/, /v1", "fastroute.host": "api.example.com"}),
                            summary("shop", labels={"fastroute.route": "/", "fastroute.host": "shop.example.com"},
                                    networks={"net": {"IPAddress": "10.0.0.3"}}),
                            summary("any", labels={"fastroute.route": "/"},
                                    networks={"net": {"IPAddress": "10.0.0.4"}})])
    routes, warnings = containers.advance(0.0)
    assert not warnings and shop is not None
    assert sorted((r.name, [str(a) for a in r.backends]) for r in routes) == [
        ("/", ["10.0.0.4:8000"]), ("api.example.com/", ["10.0.0.2:8000"]), ("api.example.com/v1", ["10.0.0.2:8000"]),
        ("shop.example.com/", ["10.0.0.3:8000"])]
    # the host route's last container leaves: held under its host, not as a host-less route
    containers.replace_all([summary("any", labels={"fastroute.route": "/"}, networks={"net": {"IPAddress": "10.0.0.4"}})])
    held = {r.name: r for r in containers.advance(1.0)[0]}
    assert held["shop.example.com/"].hold_until is not None and not held["shop.example.com/"].backends
    assert held["/"].backends


def test_enable_and_exposed_by_default() -> None:
    assert parse_container(summary(labels={"fastroute.enable": "false"}), D) is None
    hidden = Discovery(exposed_by_default=False)
    assert parse_container(summary(), hidden) is None
    assert parse_container(summary(labels={"fastroute.enable": "true"}), hidden) is not None


def test_route_by_name() -> None:
    c = parse_container(summary(name="web"), Discovery(route_by="name"))
    assert c is not None and c.prefixes == ("/web",) and c.source == "name"


def test_image_without_a_name_is_skipped_with_a_way_out() -> None:
    c = parse_container(summary(image="sha256:" + "c" * 64), D)
    assert c is not None and "fastroute.route" in (c.skip or "")


@pytest.mark.parametrize(
    ("discovery", "networks", "mode", "expected"),
    [
        pytest.param(D, {"a": {"IPAddress": "10.0.0.2"}}, "bridge", "10.0.0.2", id="only_network"),
        pytest.param(D, {"a": {"IPAddress": "10.0.0.2"}, "b": {"IPAddress": "10.1.0.2"}}, "bridge",
                     "several networks (a, b): pass --network", id="several"),
        pytest.param(Discovery(network="b"), {"a": {"IPAddress": "10.0.0.2"}, "b": {"IPAddress": "10.1.0.2"}},
                     "bridge", "10.1.0.2", id="network_flag"),
        pytest.param(Discovery(network="c"), {"a": {"IPAddress": "10.0.0.2"}}, "bridge",
                     "not on network 'c'", id="not_on_flagged"),
        pytest.param(Discovery(own_networks=frozenset({"b"})),
                     {"a": {"IPAddress": "10.0.0.2"}, "b": {"IPAddress": "10.1.0.2"}}, "bridge", "10.1.0.2",
                     id="shared_with_own_container"),
        pytest.param(D, {}, "host", "network mode 'host'", id="host"),
        pytest.param(D, {}, "none", "network mode 'none'", id="none"),
        pytest.param(D, {"v6": {"IPAddress": "", "GlobalIPv6Address": "fd00::5"}}, "bridge", "fd00::5",
                     id="ipv6_only"),
    ],
)
def test_addresses(discovery: Discovery, networks: dict[str, Any], mode: str, expected: str) -> None:
    c = parse_container(summary(networks=networks, mode=mode), discovery)
    assert c is not None
    if c.skip is None:
        assert c.address is not None and c.address.host == expected
    else:
        assert expected in c.skip


@pytest.mark.parametrize(
    ("state", "status", "routable"),
    [("running", "Up 1 second", True), ("running", "Up 1 second (healthy)", True),
     ("running", "Up 1 second (health: starting)", False), ("running", "Up 1 second (unhealthy)", False),
     ("paused", "Up 1 second (Paused)", False), ("exited", "Exited (0) 1 second ago", False)],
)
def test_routable_states(state: str, status: str, routable: bool) -> None:
    c = parse_container(summary(state=state, status=status), D)
    assert c is not None and c.routable is routable and c.skip is None


def test_pools_leave_and_hold() -> None:
    containers = ContainerSet(Discovery(hold=10.0), probe_ports=False)
    a = summary("a", networks={"n": {"IPAddress": "10.0.0.2"}})
    b = summary("b", networks={"n": {"IPAddress": "10.0.0.3"}})
    containers.replace_all([a, b])
    routes, _ = containers.advance(0.0)
    assert [(r.prefix, r.backends) for r in routes] == [
        ("/steve/foo", (Address("10.0.0.2", 8000), Address("10.0.0.3", 8000)))
    ]

    containers.leave(a["Id"])
    assert containers.advance(1.0)[0][0].backends == (Address("10.0.0.3", 8000),)
    containers.update(a, a["Id"], joining=False)  # a refresh does not undo a leave
    assert containers.advance(1.5)[0][0].backends == (Address("10.0.0.3", 8000),)

    containers.remove(b["Id"])
    held = containers.advance(2.0)[0][0]
    assert held.backends == () and held.hold_until == 12.0
    assert containers.next_hold_expiry() == 12.0
    assert containers.advance(11.9)[0][0].hold_until == 12.0
    assert containers.advance(12.0)[0] == ()

    containers.update(a, a["Id"], joining=True)  # start clears the leave
    assert containers.advance(13.0)[0][0].backends == (Address("10.0.0.2", 8000),)


def test_a_resume_event_beats_a_lagging_list() -> None:
    containers = ContainerSet(D, probe_ports=False)
    paused = summary("a", state="paused", status="Up 3 seconds (Paused)")
    containers.update(paused, paused["Id"], joining=True, resumed=True)
    assert containers.advance(0.0)[0][0].backends == (Address("10.0.0.2", 8000),)


@pytest.mark.parametrize(("status", "serves"), [
    pytest.param("Up 3 seconds (healthy)", True, id="healthy"),
    pytest.param("Up 3 seconds (unhealthy)", False, id="unhealthy"),
])
def test_a_health_event_without_its_status_follows_the_summary(status: str, serves: bool) -> None:
    # Podman's health_status event says nothing: the container's inspect does.
    containers = ContainerSet(D, probe_ports=False)
    before = summary("a", status="Up 2 seconds (unhealthy)" if serves else "Up 2 seconds (healthy)")
    containers.replace_all([before])
    if serves:
        containers.leave(before["Id"])  # as the unhealthy turn left it
    after = summary("a", status=status)
    containers.apply("health", after["Id"], after)
    routes, _ = containers.advance(0.0)
    assert any(route.backends for route in routes) is serves


def test_hold_ends_when_a_container_joins() -> None:
    containers = ContainerSet(Discovery(hold=10.0), probe_ports=False)
    a = summary("a")
    containers.replace_all([a])
    containers.advance(0.0)
    containers.leave(a["Id"])
    assert containers.advance(1.0)[0][0].hold_until == 11.0
    containers.update(summary("a2", networks={"n": {"IPAddress": "10.0.0.9"}}), "x", joining=True)
    route = containers.advance(2.0)[0][0]
    assert route.hold_until is None and route.backends == (Address("10.0.0.9", 8000),)


def test_strip_prefix_disagreement_skips_the_odd_one() -> None:
    containers = ContainerSet(D, probe_ports=False)
    containers.replace_all([summary("a", labels={"fastroute.strip_prefix": "true"}),
                            summary("b", networks={"n": {"IPAddress": "10.0.0.3"}})])
    routes, warnings = containers.advance(0.0)
    assert routes[0].strip_prefix and routes[0].backends == (Address("10.0.0.2", 8000),)
    assert len(warnings) == 1 and "container b" in warnings[0]


def test_resync_drops_vanished_containers() -> None:
    containers = ContainerSet(Discovery(hold=0), probe_ports=False)
    containers.replace_all([summary("a"), summary("b", image="x/y")])
    containers.replace_all([summary("a")])
    assert [r.prefix for r in containers.advance(0.0)[0]] == ["/steve/foo"]


def event(kind: str, action: str, cid: str = "c1", **attributes: str) -> dict[str, Any]:
    return {"Type": kind, "Action": action, "Actor": {"ID": cid, "Attributes": attributes}}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (event("container", "start"), ("join", "c1")),
        (event("container", "unpause"), ("resume", "c1")),
        (event("container", "health_status: healthy"), ("resume", "c1")),
        (event("container", "health_status: unhealthy"), ("leave", "c1")),
        (event("container", "kill", signal="15"), ("leave", "c1")),
        (event("container", "kill", signal="SIGKILL"), ("leave", "c1")),
        (event("container", "kill", signal="1"), None),  # SIGHUP: a reload, not a stop
        (event("container", "stop"), ("leave", "c1")),
        (event("container", "die"), ("leave", "c1")),
        (event("container", "pause"), ("leave", "c1")),
        (event("container", "destroy"), ("remove", "c1")),
        (event("container", "rename"), ("refresh", "c1")),
        (event("container", "exec_start: sh"), None),
        (event("network", "connect", cid="n1", container="c9"), ("refresh", "c9")),
        (event("network", "disconnect", cid="n1", container="c9"), ("refresh", "c9")),
        (event("network", "create", cid="n1"), None),
        (event("image", "pull"), None),
        # Podman's shapes (its Docker-compatible API, 4.3).
        pytest.param(event("container", "remove"), ("remove", "c1"), id="podman_remove"),
        pytest.param(event("container", "health_status"), ("health", "c1"), id="podman_health_without_status"),
        pytest.param(event("container", "kill"), None, id="podman_kill_without_signal"),
        pytest.param(event("network", "connect", cid="c7", name="app"), ("refresh", "c7"), id="podman_connect"),
        pytest.param(event("network", "disconnect", cid="c7", name="app"), ("refresh", "c7"), id="podman_disconnect"),
    ],
)
def test_event_action(given: dict[str, Any], expected: tuple[str, str] | None) -> None:
    assert event_action(given) == expected


def test_network_change() -> None:
    from proxy.discovery._container import has_ip_on
    from proxy.discovery._model import network_change

    assert network_change(event("network", "connect", cid="n", container="c", name="front")) == ("front", True)
    assert network_change(event("network", "disconnect", cid="n", container="c", name="front")) == ("front", False)
    assert network_change(event("container", "start")) is None
    assert network_change(event("network", "connect", cid="c7", name="app")) is None  # Podman names no network
    assert has_ip_on(summary(networks={"front": {"IPAddress": "10.0.0.2"}}), "front")
    assert not has_ip_on(summary(networks={"front": {"IPAddress": ""}}), "front")
    assert not has_ip_on(summary(networks={}), "front")


def inspect_data(**changes: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "Id": "c" * 64, "Name": "/web",
        "State": {"Status": "running", "Running": True},
        "Config": {"Image": "steve/foo:1.2", "Labels": {"fastroute.port": "9000"}},
        "HostConfig": {"NetworkMode": "front"},
        "NetworkSettings": {"Networks": {"front": {"IPAddress": "10.0.0.7"}}},
    }
    attrs.update(changes)
    return attrs


@pytest.mark.parametrize(
    ("state", "routable", "shown"),
    [
        ({"Status": "running", "Running": True}, True, "running"),
        ({"Status": "running", "Running": True, "Health": {"Status": "healthy"}}, True, "running (healthy)"),
        ({"Status": "running", "Running": True, "Health": {"Status": "starting"}}, False,
         "running (health: starting)"),
        ({"Status": "running", "Running": True, "Health": {"Status": "unhealthy"}}, False, "running (unhealthy)"),
        ({"Status": "paused", "Running": True, "Paused": True}, False, "paused"),
        ({"Status": "exited", "Running": False}, False, "exited"),
    ],
)
def test_inspect_data_reads_like_a_list_summary(state: dict[str, Any], routable: bool, shown: str) -> None:
    from proxy.discovery._container import summary_from_inspect

    c = parse_container(summary_from_inspect(inspect_data(State=state)), D)
    assert c is not None and c.name == "web" and c.routable is routable and c.state == shown
    if state["Status"] == "running":
        assert c.prefixes == ("/steve/foo",) and c.address == Address("10.0.0.7", 9000)


def test_label_filter() -> None:
    from proxy.discovery._container import has_labels

    assert has_labels({"a": "1", "b": "2"}, ["a", "b=2"])
    assert not has_labels({"a": "1"}, ["a=2"])
    assert not has_labels({"a": "1"}, ["c"])
    assert has_labels({}, [])


def test_a_resync_after_missed_events_forgets_leave_marks() -> None:
    a = summary("a")
    periodic = ContainerSet(D, probe_ports=False)
    periodic.replace_all([a])
    periodic.leave(a["Id"])  # stopping slowly: still listed as running
    periodic.replace_all([a])
    assert periodic.advance(0.0)[0] == ()

    reconnected = ContainerSet(D, probe_ports=False)
    reconnected.replace_all([a])
    reconnected.leave(a["Id"])  # then the stream broke; its start event was lost
    reconnected.replace_all([a], events_missed=True)
    assert reconnected.advance(0.0)[0][0].backends == (Address("10.0.0.2", 8000),)


# --- wake on request (fastroute.wake) ---------------------------------------------


def asleep(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return summary(name, labels=labels, state="exited", status="Exited (0) 3 seconds ago", networks={})


def test_a_stopped_wake_container_gives_a_route_to_wake() -> None:
    containers = ContainerSet(Discovery(), probe_ports=False)
    containers.replace_all([asleep("a", {"fastroute.wake": "true", "fastroute.strip_prefix": "true"}),
                            asleep("b", {"fastroute.wake": "true"})])
    routes, _ = containers.advance(0.0)
    [route] = routes
    assert (route.prefix, route.backends, route.strip_prefix) == ("/steve/foo", (), True)
    assert route.wake == (summary("a")["Id"],)  # b disagrees on strip_prefix


def test_a_stopped_container_without_the_label_gives_nothing() -> None:
    containers = ContainerSet(Discovery(), probe_ports=False)
    containers.replace_all([asleep("a", {}), asleep("b", {"fastroute.wake": "false"})])
    assert containers.advance(0.0)[0] == ()


def test_wake_is_an_opt_in_even_when_not_exposed_by_default() -> None:
    discovery = Discovery(exposed_by_default=False)
    assert parse_container(asleep("a", {"fastroute.wake": "true"}), discovery) is not None
    assert parse_container(asleep("a", {"fastroute.wake": "true", "fastroute.enable": "false"}), discovery) is None


def test_a_running_container_serves_instead_of_waking_another() -> None:
    containers = ContainerSet(Discovery(), probe_ports=False)
    awake = summary("awake", labels={"fastroute.wake": "true"})
    containers.replace_all([awake, asleep("zzz", {"fastroute.wake": "true"})])
    [route] = containers.advance(0.0)[0]
    assert route.backends and route.wake == ()
    containers.leave(awake["Id"])  # stopping: it and the sleeper may be woken
    [route] = containers.advance(0.0)[0]
    assert route.backends == () and set(route.wake) == {awake["Id"], summary("zzz")["Id"]}


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_a_bad_idle_timeout_leaves_it_awake_but_wakeable(value: str) -> None:
    container = parse_container(asleep("a", {"fastroute.wake": "true", "fastroute.idle-timeout": value}), Discovery())
    assert container is not None and container.skip is None and container.wake
    assert container.idle_timeout is None and "idle-timeout" in container.ignored[0]


def test_idle_timeout_is_read() -> None:
    container = parse_container(summary("a", labels={"fastroute.idle-timeout": "2.5"}), Discovery())
    assert container is not None and container.idle_timeout == 2.5


# --- readiness: routed once ready, booting until then ---------------------------------

A_ADDR = Address("10.0.0.2", 8000)


def booting_set(hold: float = 10.0) -> tuple[ContainerSet, dict[str, Any]]:
    containers = ContainerSet(Discovery(hold=hold))
    a = summary("a")
    containers.replace_all([a])
    return containers, a


def test_a_started_container_is_booting_until_its_port_accepts() -> None:
    containers, a = booting_set()
    [route] = containers.advance(0.0)[0]
    assert (route.backends, route.booting, route.hold_until) == ((), True, None)
    assert containers.to_probe() == [(a["Id"], A_ADDR)]

    assert containers.mark_ready(a["Id"], A_ADDR, 1.0)
    [route] = containers.advance(1.0)[0]
    assert (route.backends, route.booting) == ((A_ADDR,), False)
    assert containers.to_probe() == []
    assert not containers.mark_ready(a["Id"], A_ADDR, 2.0)  # nothing new


def test_readiness_is_for_one_address_and_one_start() -> None:
    containers, a = booting_set()
    assert not containers.mark_ready(a["Id"], Address("10.0.0.9", 8000), 0.0)  # not its address
    containers.mark_ready(a["Id"], A_ADDR, 0.0)
    moved = summary("a", networks={"net": {"IPAddress": "10.0.0.7"}})
    containers.update(moved, a["Id"], joining=False)  # network change: a new address to probe
    assert containers.advance(1.0)[0][0].booting
    assert containers.to_probe() == [(a["Id"], Address("10.0.0.7", 8000))]

    containers.mark_ready(a["Id"], Address("10.0.0.7", 8000), 1.0)
    containers.update(moved, a["Id"], joining=True)  # started (or unpaused) again: probe again
    assert containers.advance(2.0)[0][0].booting


def test_a_booting_replica_does_not_change_a_serving_pool() -> None:
    containers, a = booting_set()
    containers.mark_ready(a["Id"], A_ADDR, 0.0)
    b = summary("b", networks={"net": {"IPAddress": "10.0.0.3"}})
    containers.update(b, b["Id"], joining=True)
    [route] = containers.advance(1.0)[0]
    assert (route.backends, route.booting) == ((A_ADDR,), False)


def test_a_healthcheck_is_readiness_and_is_not_probed() -> None:
    containers = ContainerSet(Discovery())
    starting = summary("a", status="Up 1 second (health: starting)")
    containers.replace_all([starting])
    assert containers.advance(0.0)[0][0].booting and containers.to_probe() == []
    containers.update(summary("a", status="Up 3 seconds (healthy)"), starting["Id"], joining=True, resumed=True)
    assert containers.advance(1.0)[0][0].backends == (A_ADDR,)


def test_leaving_and_waking_containers_are_not_booting() -> None:
    containers, a = booting_set(hold=0)
    containers.leave(a["Id"])
    assert containers.advance(0.0)[0] == () and containers.to_probe() == []
    containers.update(a, a["Id"], joining=True)
    containers.waking.add(a["Id"])
    assert containers.advance(0.0)[0] == () and containers.to_probe() == []


def test_a_booting_route_whose_container_goes_is_held() -> None:
    containers, a = booting_set(hold=10.0)
    containers.advance(0.0)
    containers.leave(a["Id"])
    [route] = containers.advance(1.0)[0]
    assert (route.backends, route.booting, route.hold_until) == ((), False, 11.0)


def test_a_recreated_service_is_booting_not_held_while_its_new_container_starts() -> None:
    containers, old = booting_set(hold=10.0)
    containers.mark_ready(old["Id"], A_ADDR, 0.0)
    containers.advance(0.0)
    containers.leave(old["Id"])
    assert containers.advance(1.0)[0][0].hold_until == 11.0
    new = summary("new", networks={"net": {"IPAddress": "10.0.0.5"}})
    containers.update(new, new["Id"], joining=True)
    [route] = containers.advance(2.0)[0]
    assert (route.backends, route.booting, route.hold_until) == ((), True, None)


@pytest.mark.parametrize(
    ("ready_at", "now", "young"),
    [
        pytest.param(10.0, 10.5, True, id="just_ready"),
        pytest.param(10.0, 14.9, True, id="still_young"),
        pytest.param(10.0, 15.0, False, id="serving_for_a_while"),
    ],
)
def test_a_refusal_from_a_young_container_makes_it_booting_again(ready_at: float, now: float, young: bool) -> None:
    containers, a = booting_set()
    containers.mark_ready(a["Id"], A_ADDR, ready_at)
    assert containers.refused(A_ADDR, now) is young
    assert containers.advance(now)[0][0].booting is young
    assert containers.refused(Address("10.0.0.99", 8000), now) is False  # no container there


def test_a_container_routed_after_the_ready_timeout_is_never_young() -> None:
    containers, a = booting_set()
    containers.mark_ready(a["Id"], A_ADDR, 10.0, young=False)
    assert containers.advance(10.0)[0][0].backends == (A_ADDR,)
    assert containers.refused(A_ADDR, 10.1) is False


def test_a_refusal_from_a_restarting_container_means_booting() -> None:
    containers = ContainerSet(Discovery())
    containers.replace_all([summary("a", state="restarting", status="Restarting (1) 1 second ago")])
    assert containers.refused(A_ADDR, 0.0) is True


def test_without_port_probes_running_is_ready() -> None:
    containers = ContainerSet(Discovery(), probe_ports=False)
    containers.replace_all([summary("a")])
    assert containers.advance(0.0)[0][0].backends == (A_ADDR,) and containers.to_probe() == []


def test_a_resync_keeps_readiness_of_containers_still_listed() -> None:
    containers, a = booting_set()
    containers.mark_ready(a["Id"], A_ADDR, 0.0)
    containers.replace_all([a, summary("b", image="x/y")])
    routes = {r.prefix: r for r in containers.advance(1.0)[0]}
    assert routes["/steve/foo"].backends == (A_ADDR,) and routes["/x/y"].booting
    containers.replace_all([])
    assert containers.ready == {}


def test_a_booting_container_is_waited_for_rather_than_a_sleeper_woken() -> None:
    containers = ContainerSet(Discovery())
    containers.replace_all([summary("a", labels={"fastroute.wake": "true"}),
                            asleep("zzz", {"fastroute.wake": "true"})])
    [route] = containers.advance(0.0)[0]
    assert route.booting and route.wake == ()


# --- events applied (ContainerSet.apply: the watcher fetches summaries, nothing else) -----------


def test_events_are_applied_by_the_model() -> None:
    containers = ContainerSet(Discovery(hold=0), probe_ports=False)
    a = summary("a")
    start = {"Type": "container", "Action": "start", "Actor": {"ID": a["Id"]}}
    stop = {"Type": "container", "Action": "stop", "Actor": {"ID": a["Id"]}}
    destroy = {"Type": "container", "Action": "destroy", "Actor": {"ID": a["Id"]}}

    for event, fetched in [(start, a), (stop, None), (start, a)]:
        action, cid = event_action(event)  # type: ignore[misc]
        assert needs_summary(action) is (fetched is not None)
        containers.apply(action, cid, fetched)
    assert containers.advance(0.0)[0][0].backends == (A_ADDR,)  # the second start cleared the leave

    action, cid = event_action(stop)  # type: ignore[misc]
    containers.apply(action, cid)
    assert containers.advance(0.0)[0] == ()
    action, cid = event_action(destroy)  # type: ignore[misc]
    containers.apply(action, cid)
    assert containers.containers == {}


@pytest.mark.parametrize(("state", "labels", "kept"), [
    pytest.param("running", {}, True, id="running"),
    pytest.param("paused", {}, True, id="paused"),
    pytest.param("restarting", {}, True, id="restarting"),
    pytest.param("exited", {}, False, id="exited"),
    pytest.param("exited", {"fastroute.wake": "true"}, True, id="exited_to_wake"),
    pytest.param("created", {"fastroute.wake": "true"}, True, id="created_to_wake"),
    pytest.param("dead", {"fastroute.wake": "true"}, False, id="dead"),
    pytest.param("stopping", {}, False, id="podman_stopping"),
])
def test_the_listing_is_filtered_here(state: str, labels: dict[str, str], kept: bool) -> None:
    # One listing with every state, filtered by fastroute: Podman refuses
    # "restarting" and "dead" in a status filter.
    from proxy.discovery._container import listed

    assert listed(summary(state=state, labels=labels)) is kept


@pytest.mark.parametrize(("version", "identity"), [
    pytest.param({"Version": "20.10.24+dfsg1", "Components": [{"Name": "Engine", "Version": "20.10.24+dfsg1"}]},
                 ("Docker", "20.10.24+dfsg1"), id="docker"),
    pytest.param({"Version": "4.3.1", "Components": [{"Name": "Podman Engine", "Version": "4.3.1"},
                                                     {"Name": "Conmon", "Version": "2.1.6"}]},
                 ("Podman", "4.3.1"), id="podman"),
    pytest.param({"Version": "1.2"}, ("Docker", "1.2"), id="no_components"),
])
def test_the_engine_is_named_from_its_version(version: dict[str, Any], identity: tuple[str, str]) -> None:
    from proxy.discovery._client import engine_identity

    assert engine_identity(version) == identity
