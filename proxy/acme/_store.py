# Where ACME keeps what it obtained (--acme-storage): blocking file I/O, no
# trio. Everything under the directory is private: the directory 0700, every
# file 0600, written aside and renamed in, so a reader (another worker, a
# restart) sees the old file or the new one, never half of one.
#
#   STORAGE/lock                         held by the one process that talks to the CA
#   STORAGE/challenges/TOKEN             a pending HTTP-01 key authorisation (any worker serves it)
#   STORAGE/challenges/tls-alpn-01/NAME.crt, .key   a pending TLS-ALPN-01 certificate (the same)
#   STORAGE/<directory>/account.key      the account's key, per ACME directory
#   STORAGE/<directory>/certs/NAME.crt   a certificate chain, and NAME.key its key
#
# <directory> is the directory URL's host and path (a staging and a
# production CA never share certificates or accounts).

from __future__ import annotations

import os
import re
from pathlib import Path

from .._config import TlsPair
from .._errors import ConfigError

__all__ = ["Store", "valid_token"]

_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # RFC 8555 section 8.1: base64url


def valid_token(token: str) -> bool:
    """Whether `token` is an ACME token (base64url), so safe as a file name."""
    return _TOKEN.fullmatch(token) is not None


def _write_private(path: Path, data: bytes) -> None:
    aside = path.with_name(path.name + ".new")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(aside, path)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


class Store:
    """The files of one --acme-storage directory, for one ACME directory URL."""

    def __init__(self, root: Path, directory_url: str) -> None:
        """Create what is missing, private.

        Raises:
            ConfigError: the directory cannot be made or written.
        """
        slug = re.sub(r"[^A-Za-z0-9.-]+", "-", directory_url.split("://", 1)[-1]).strip("-") or "acme"
        try:
            self.root = _private_dir(root)
            self.challenges = _private_dir(root / "challenges")
            self.tls_alpn = _private_dir(self.challenges / "tls-alpn-01")
            self.account_dir = _private_dir(root / slug)
            self.certs = _private_dir(self.account_dir / "certs")
        except OSError as error:
            raise ConfigError(f"--acme-storage {root}: {error.strerror or error}") from None
        self.lock_path = self.root / "lock"

    # --- the account -------------------------------------------------------

    def account_key(self) -> bytes | None:
        try:
            return (self.account_dir / "account.key").read_bytes()
        except FileNotFoundError:
            return None

    def save_account_key(self, pem: bytes) -> None:
        _write_private(self.account_dir / "account.key", pem)

    # --- certificates ------------------------------------------------------

    def pair(self, name: str) -> TlsPair:
        return TlsPair(self.certs / f"{name}.crt", self.certs / f"{name}.key")

    def pairs(self) -> list[TlsPair]:
        """Every stored certificate with its key, by name."""
        found = []
        for cert in sorted(self.certs.glob("*.crt")):
            pair = self.pair(cert.name[: -len(".crt")])
            if pair.key.exists():
                found.append(pair)
        return found

    def save(self, name: str, chain_pem: bytes, key_pem: bytes) -> TlsPair:
        """Store a certificate chain and its key (the key first: a reader that sees the new
        certificate sees its key)."""
        pair = self.pair(name)
        _write_private(pair.key, key_pem)
        _write_private(pair.cert, chain_pem)
        return pair

    # --- HTTP-01 -----------------------------------------------------------

    def publish(self, token: str, key_authorization: str) -> None:
        if not valid_token(token):
            raise ValueError(f"not an ACME token: {token!r}")
        _write_private(self.challenges / token, key_authorization.encode("ascii"))

    def withdraw(self, token: str) -> None:
        if valid_token(token):
            (self.challenges / token).unlink(missing_ok=True)

    # --- TLS-ALPN-01 -------------------------------------------------------

    def tls_alpn_pair(self, name: str) -> TlsPair:
        return TlsPair(self.tls_alpn / f"{name}.crt", self.tls_alpn / f"{name}.key")

    def publish_tls_alpn(self, name: str, cert_pem: bytes, key_pem: bytes) -> None:
        pair = self.tls_alpn_pair(name)
        _write_private(pair.key, key_pem)
        _write_private(pair.cert, cert_pem)

    def withdraw_tls_alpn(self, name: str) -> None:
        pair = self.tls_alpn_pair(name)
        pair.cert.unlink(missing_ok=True)
        pair.key.unlink(missing_ok=True)


def read_challenge(challenges: Path, token: str) -> bytes | None:
    """The key authorisation published for `token`, or None (any worker serves it)."""
    if not valid_token(token):
        return None
    try:
        return (challenges / token).read_bytes()
    except OSError:
        return None
