# Certificates for the TLS tests (trustme: a private CA, leaves signed by it,
# ECDSA P-256 as HAProxy's comparison uses), and a client that speaks HTTPS
# to a gateway through the standard library's ssl and h11.

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trio
import trustme

from proxy._config import TlsPair
from proxy.gateway._server import Gateway

from ...helpers import Client

__all__ = ["Issued", "Pki", "connect_tls", "peer_names"]


@dataclass
class Issued:
    """A leaf certificate's files."""

    pair: TlsPair
    names: tuple[str, ...]


class Pki:
    """A CA, and leaves it issues into a directory."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
        self.directory = directory
        self._count = 0

    def issue(self, *names: str, into: TlsPair | None = None) -> Issued:
        """A leaf for `names`, written to new files (or over `into`'s, as a renewal would)."""
        leaf = self.ca.issue_cert(*names, key_type=trustme.KeyType.ECDSA)
        if into is None:
            self._count += 1
            into = TlsPair(self.directory / f"cert{self._count}.pem", self.directory / f"key{self._count}.pem")
        # Written aside and renamed in, key first: a reader never sees half a file.
        for path, blob in ((into.key, leaf.private_key_pem), (into.cert, leaf.cert_chain_pems[0])):
            aside = path.with_suffix(".new")
            blob.write_to_path(str(aside))
            aside.replace(path)
        return Issued(into, names)

    def client_context(self, alpn: tuple[str, ...] = ("http/1.1",)) -> ssl.SSLContext:
        """A client's context trusting the CA, offering `alpn` (an HTTP/1.1 client's by default;
        ("h2", "http/1.1") as browsers offer)."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        context.set_alpn_protocols(list(alpn))
        return context


async def connect_tls(
    gateway: Gateway, context: ssl.SSLContext, server_name: str | None, *, session: ssl.SSLSession | None = None
) -> tuple[Client, trio.SSLStream[trio.SocketStream]]:
    """An HTTPS client connection to the gateway's first TLS address, handshaken."""
    host, port = gateway.tls_addresses[0]
    stream = await trio.open_tcp_stream(host, port)
    if server_name is None:
        context.check_hostname = False
    tls = trio.SSLStream(stream, context, server_hostname=server_name)
    if session is not None:
        tls._ssl_object.session = session  # (trio exposes no setter; the SSLObject's is the standard one)
    try:
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return Client(tls), tls  # type: ignore[arg-type]


def peer_names(tls: trio.SSLStream[trio.SocketStream]) -> list[str]:
    """The DNS names of the certificate the gateway presented."""
    cert = tls.getpeercert()
    assert cert is not None
    return [value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"]
