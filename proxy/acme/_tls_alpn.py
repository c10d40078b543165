# The certificate that answers a TLS-ALPN-01 challenge (RFC 8737 section
# 3): self-signed, for the one name validated, with the critical
# acmeIdentifier extension holding the SHA-256 of the key authorisation.
# Pure: no I/O (cryptography builds it in memory).

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

__all__ = ["ACME_IDENTIFIER", "challenge_certificate"]

ACME_IDENTIFIER = ObjectIdentifier("1.3.6.1.5.5.7.1.31")  # id-pe-acmeIdentifier


def challenge_certificate(name: str, key_authorization: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) proving `key_authorization` for `name`."""
    digest = hashlib.sha256(key_authorization.encode("ascii")).digest()
    value = b"\x04\x20" + digest  # DER: an OCTET STRING of 32 bytes (RFC 8737 section 3)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER, value), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
