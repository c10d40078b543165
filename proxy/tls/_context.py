# Server-side SSL contexts: one per certificate, all with the same settings,
# and the SNI callback that switches a handshake to the context of the name
# the client asked for (_names.py chooses). No trio: loading is blocking
# file I/O the caller runs where it likes.
#
# The settings follow Mozilla's "intermediate" server configuration (v5.7):
# TLS 1.2 and 1.3 only; for TLS 1.2 the ECDHE (and DHE) AEAD suites below,
# the client's order (the list has no weak member to steer away from);
# TLS 1.3's suites are OpenSSL's defaults, which are that list's. No
# compression (CRIME), no renegotiation, ALPN h2 then http/1.1. Session tickets are
# on, one per TLS 1.3 handshake (TICKETS; OpenSSL's default is two, each
# about 30 us of a handshake's 380 here; Go's crypto/tls, so Caddy, sends
# one: a client resuming spends its ticket and gets a new one); their key
# lives in the context, so a reload or the periodic rebuild (_certs.py)
# rotates it.
# Python sets no DH parameters, so the DHE suites are never chosen: every
# client of the intermediate list also speaks ECDHE.

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .._config import TlsPair
from .._errors import ConfigError
from ._names import NameIndex, normal_name

if TYPE_CHECKING:
    from ..acme._store import Store

__all__ = ["ALPN", "ALPN_HTTP1", "INTERMEDIATE_CIPHERS", "Loaded", "fallback_pair", "load", "server_context", "tls_alpn_context"]

INTERMEDIATE_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
])
ALPN = ["h2", "http/1.1"]  # HTTP/2 first (RFC 9113 section 3.2), as every peer
ALPN_HTTP1 = ["http/1.1"]  # a listener with --no-http2
TICKETS = 1  # TLS 1.3 session tickets sent per handshake
_DNS_NAME = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+")


@dataclass(frozen=True, slots=True)
class Loaded:
    """One certificate in force: its contexts (HTTP/2 offered, and not), the names it holds, and when
    it is valid (UTC)."""

    pair: TlsPair
    context: ssl.SSLContext
    context_http1: ssl.SSLContext  # the same, offering only http/1.1 (a --no-http2 listener)
    names: tuple[str, ...]
    not_before: datetime
    not_after: datetime


def server_context(pair: TlsPair, alpn: Sequence[str] = ALPN) -> ssl.SSLContext:
    """A server context with the intermediate settings and this certificate, offering `alpn`.

    Raises:
        ConfigError: a file is missing or unreadable, is not PEM, or the key does not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(list(alpn))
    context.num_tickets = TICKETS
    try:
        context.load_cert_chain(pair.cert, pair.key)
    except FileNotFoundError:
        missing = next((path for path in (pair.cert, pair.key) if not path.exists()), pair.cert)
        raise ConfigError(f"TLS certificate {pair.cert} / key {pair.key}: {missing}: no such file") from None
    except OSError as error:
        raise ConfigError(f"TLS certificate {pair.cert} / key {pair.key}: {_why(error)}") from None
    return context


def _why(error: OSError) -> str:
    if isinstance(error, ssl.SSLError):
        reason = error.reason or ""
        if "KEY_VALUES_MISMATCH" in reason:
            return "the key does not belong to the certificate"
        return f"not a PEM certificate and key ({reason or error})"
    return error.strerror or str(error)


def names_and_validity(cert: Path) -> tuple[tuple[str, ...], datetime, datetime]:
    """The DNS names a PEM certificate (its first, the leaf) holds, its notBefore and notAfter (UTC).

    Raises:
        ConfigError: not a readable PEM certificate.
    """
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as error:
        raise ConfigError(f"TLS certificate {cert}: cannot read it ({error})") from None
    try:
        names = tuple(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                      .get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = tuple(str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    return names, leaf.not_valid_before_utc, leaf.not_valid_after_utc


def load(pairs: Sequence[TlsPair]) -> tuple[NameIndex[Loaded], list[Loaded]]:
    """Every certificate's context, indexed by name, each context's SNI callback choosing among them.

    Raises:
        ConfigError: one certificate cannot be loaded (none is loaded then).
    """
    loaded = []
    for pair in pairs:
        context = server_context(pair)
        names, not_before, not_after = names_and_validity(pair.cert)
        loaded.append(Loaded(pair, context, server_context(pair, ALPN_HTTP1), names, not_before, not_after))
    index = NameIndex([(one.names, one) for one in loaded])
    http1_only = frozenset(id(one.context_http1) for one in loaded)

    def choose(sock: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, started: ssl.SSLContext) -> None:
        # `started`: the context the handshake began with, the listener's: its ALPN list stays.
        one = index.choose(server_name)
        chosen = one.context_http1 if id(started) in http1_only else one.context
        if sock.context is not chosen:
            sock.context = chosen

    for one in loaded:
        one.context.sni_callback = choose
        one.context_http1.sni_callback = choose
    return index, loaded


def fallback_pair(directory: Path) -> TlsPair:
    """A self-signed certificate holding no name, for handshakes before ACME's first certificate
    (the client sees a certificate it cannot trust, not a failed handshake). Made once.
    """
    pair = TlsPair(directory / "fallback.crt", directory / "fallback.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime
    import os

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fastroute fallback certificate")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650)).sign(key, hashes.SHA256()))
    for path, data in ((pair.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption())),
                       (pair.cert, cert.public_bytes(serialization.Encoding.PEM))):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    return pair


def tls_alpn_context(store: Store, name: str) -> ssl.SSLContext | None:
    """The context answering a pending TLS-ALPN-01 validation of `name` (RFC 8737: its challenge
    certificate, ALPN acme-tls/1 only), or None when none is pending."""
    name = normal_name(name)
    if not _DNS_NAME.fullmatch(name):
        return None  # (a name from the wire: never a path)
    pair = store.tls_alpn_pair(name)
    if not pair.cert.exists():
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["acme-tls/1"])
    try:
        context.load_cert_chain(pair.cert, pair.key)
    except OSError:
        return None  # (withdrawn between the look and the load)
    return context
