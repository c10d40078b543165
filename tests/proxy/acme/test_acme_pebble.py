# ACME end to end against a real CA (Pebble, with its mock DNS sending every
# name to 127.0.0.1): the gateway obtains certificates for the names its
# routes give, over HTTP-01 on its plain listener, serves them over HTTPS,
# renews them, survives a name that fails, and reuses its store on restart.

from __future__ import annotations

import json
import logging
import ssl
import stat
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from proxy._config import Acme, Address, Route, Tls
from proxy.app._serve import serve
from proxy.gateway._server import Gateway

from ...helpers import LOOPBACK, Client, make_config, start_backend, unused_port
from ...pebble_support import Pebble, run_pebble

API, SHOP = "api.example.test", "shop.example.test"


def trusting(pebble_roots: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=pebble_roots.decode())
    return context


async def https(gateway: Gateway, context: ssl.SSLContext, name: str) -> tuple[int, dict[str, object]]:
    host, port = gateway.tls_addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    tls = trio.SSLStream(stream, context, server_hostname=name)
    try:
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    reply = await Client(tls).request("GET", "/", host=name)  # type: ignore[arg-type]
    cert = tls.getpeercert()
    assert cert is not None
    return reply.status, cert


async def wait_for_certificate(gateway: Gateway, pebble: Pebble, name: str, *, not_serial: str | None = None,
                               seconds: float = 30) -> dict[str, object]:
    context = trusting(pebble.root_pem())
    with trio.fail_after(seconds):
        while True:
            try:
                status, cert = await https(gateway, context, name)
            except (trio.BrokenResourceError, OSError):
                await trio.sleep(0.1)
                continue
            if cert["serialNumber"] != not_serial:
                assert status == 200
                return cert
            await trio.sleep(0.1)


@asynccontextmanager
async def gateway_with_acme(storage: Path, pebble: Pebble | None, directory: str, port: int,
                            routes: tuple[Route, ...], **acme: object) -> AsyncIterator[Gateway]:
    config = make_config(
        listen=(Address(LOOPBACK, port),), routes=routes,
        tls=Tls(listen=(Address(LOOPBACK, 0),), acme=Acme("ops@example.test", storage, directory,
                                                          pebble.ca_bundle if pebble else None, **acme)),  # type: ignore[arg-type]
    )
    async with trio.open_nursery() as nursery:
        gateway = await nursery.start(serve, config)
        yield gateway
        nursery.cancel_scope.cancel()


def add_a_record(pebble_dns_management: int, name: str, address: str) -> None:
    request = urllib.request.Request(f"http://{LOOPBACK}:{pebble_dns_management}/add-a", method="POST",
                                     data=json.dumps({"host": f"{name}.", "addresses": [address]}).encode())
    urllib.request.urlopen(request, timeout=10).close()


async def test_names_routes_give_get_certificates_and_a_restart_reuses_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = unused_port()
    storage = tmp_path / "acme"
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        routes = (Route("/", (backend.address,), host=API), Route("/", (backend.address,), host="*.wild.test"),
                  Route("/", (backend.address,), host=SHOP), Route("/other", (backend.address,)))
        with run_pebble(tmp_path, http_port=port) as pebble, caplog.at_level(logging.INFO, logger="fastroute"):
            async with gateway_with_acme(storage, pebble, pebble.directory, port, routes) as gateway:
                api = await wait_for_certificate(gateway, pebble, API)
                shop = await wait_for_certificate(gateway, pebble, SHOP)
                assert api["subjectAltName"] == (("DNS", API),) and shop["subjectAltName"] == (("DNS", SHOP),)
                root = pebble.root_pem()
            directory = pebble.directory
        asked = sorted({r.getMessage().split(" a certificate for ")[1].split(" ")[0] for r in caplog.records
                        if "obtaining a certificate for" in r.getMessage()})
        assert asked == [API, SHOP]  # never the wildcard, never a host-less route
        # Private: the directory 0700, every file 0600.
        for path in [storage, *storage.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
        # Pebble is gone: a restart serves what it stored, without asking.
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="fastroute"):
            async with gateway_with_acme(storage, None, directory, unused_port(), routes) as gateway:
                status, cert = await https(gateway, trusting(root), API)
                assert (status, cert["serialNumber"]) == (200, api["serialNumber"])
        assert not [r for r in caplog.records if r.getMessage().startswith(("ACME: obtaining", "ACME: renewing"))]
        nursery.cancel_scope.cancel()


async def test_a_name_that_fails_does_not_hold_up_another_and_is_tried_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = unused_port()
    bad = "unreachable.example.test"
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        routes = (Route("/", (backend.address,), host=bad), Route("/", (backend.address,), host=API))
        with run_pebble(tmp_path, http_port=port) as pebble, caplog.at_level(logging.INFO, logger="fastroute"):
            add_a_record(pebble.dns_management, bad, "127.0.0.2")  # nothing listens there: the CA cannot reach it
            async with gateway_with_acme(tmp_path / "acme", pebble, pebble.directory, port, routes,
                                         retry_first=0.5) as gateway:
                await wait_for_certificate(gateway, pebble, API)
                with trio.fail_after(30):
                    while len([r for r in caplog.records if f"no certificate for {bad}" in r.getMessage()]) < 2:
                        await trio.sleep(0.1)
        failures = [r.getMessage() for r in caplog.records if f"no certificate for {bad}" in r.getMessage()]
        assert "the challenge failed" in failures[0] and "trying again in 0:00:00" in failures[0]
        assert "trying again in 0:00:01" in failures[1]  # doubled
        nursery.cancel_scope.cancel()


async def test_a_certificate_is_renewed_before_it_expires(tmp_path: Path) -> None:
    port = unused_port()
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        # 15 s certificates: renewed with a third of their life left, 10 s after issue.
        with run_pebble(tmp_path, http_port=port, validity=15) as pebble:
            async with gateway_with_acme(tmp_path / "acme", pebble, pebble.directory, port,
                                         (Route("/", (backend.address,), host=API),)) as gateway:
                first = await wait_for_certificate(gateway, pebble, API)
                second = await wait_for_certificate(gateway, pebble, API, not_serial=str(first["serialNumber"]),
                                                    seconds=40)
                assert second["notAfter"] != first["notAfter"]
        nursery.cancel_scope.cancel()


async def test_tls_alpn_01_on_the_tls_listener(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tls_port = unused_port()
    nothing_there = unused_port()  # the CA cannot use HTTP-01: nothing listens where it would look
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        with run_pebble(tmp_path, http_port=nothing_there, tls_port=tls_port) as pebble, \
                caplog.at_level(logging.INFO, logger="fastroute"):
            config = make_config(
                listen=(Address(LOOPBACK, 0),), routes=(Route("/", (backend.address,), host=API),),
                tls=Tls(listen=(Address(LOOPBACK, tls_port),), acme=Acme(
                    "ops@example.test", tmp_path / "acme", pebble.directory, pebble.ca_bundle,
                    challenge="tls-alpn-01")))
            async with trio.open_nursery() as inner:
                gateway = await inner.start(serve, config)
                cert = await wait_for_certificate(gateway, pebble, API)
                assert cert["subjectAltName"] == (("DNS", API),)
                inner.cancel_scope.cancel()
        assert any("answered a TLS-ALPN-01 challenge" in r.getMessage() for r in caplog.records)
        assert not any("HTTP-01" in r.getMessage() for r in caplog.records)
        assert not list((tmp_path / "acme" / "challenges" / "tls-alpn-01").iterdir())  # withdrawn
        nursery.cancel_scope.cancel()


async def test_gateways_sharing_a_store_ask_the_ca_once_and_all_serve_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # As --workers, or two gateways on one volume: the one holding the lock asks;
    # every one answers the challenge and serves the certificate from the store.
    port = unused_port()
    storage = tmp_path / "acme"
    async with trio.open_nursery() as nursery:
        backend = await start_backend(nursery)
        routes = (Route("/", (backend.address,), host=API),)
        with run_pebble(tmp_path, http_port=port) as pebble, caplog.at_level(logging.INFO, logger="fastroute"):
            async with gateway_with_acme(storage, pebble, pebble.directory, unused_port(), routes) as other, \
                    gateway_with_acme(storage, pebble, pebble.directory, port, routes) as reached:
                first = await wait_for_certificate(other, pebble, API)
                second = await wait_for_certificate(reached, pebble, API)
                assert first["serialNumber"] == second["serialNumber"]
        asked = [r for r in caplog.records if r.getMessage().startswith("ACME: obtaining")]
        assert len(asked) == 1
        nursery.cancel_scope.cancel()
