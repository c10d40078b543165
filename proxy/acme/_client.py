# The one module that talks ACME (RFC 8555), through certbot's `acme`
# package: blocking calls, run in a worker thread by the manager.
#
# One order per name (a failing name never holds up another); a new
# ECDSA P-256 key per certificate; the account's key is ECDSA P-256 too
# (ES256), kept in the store so that a restart reuses the account. The
# challenge (HTTP-01's key authorisation, or TLS-ALPN-01's certificate) is
# published through the store, and every worker answers it from there.

from __future__ import annotations

import datetime
from typing import Any
from dataclasses import dataclass

from josepy.jwa import ES256
from josepy.jwk import JWKEC
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ._store import Store
from ._tls_alpn import challenge_certificate

__all__ = ["AcmeFailed", "Issued", "Issuer"]

ORDER_DEADLINE = 90.0  # seconds from answering the challenge to the certificate
USER_AGENT = "fastroute"


class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """The (empty) answer to a TLS-ALPN-01 challenge: the proof is the certificate (RFC 8737)."""

    typ = "tls-alpn-01"


class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """RFC 8737's challenge, which this version of `acme` no longer knows: registered here, through the
    library's own registry, so that orders parse it."""

    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: Any, **unused: Any) -> str:  # Any: acme's own signature is untyped
        return self.key_authorization(account_key)


if TLSALPN01.typ not in challenges.Challenge.TYPES:
    challenges.ChallengeResponse.register(TLSALPN01Response)
    challenges.Challenge.register(TLSALPN01)


RATE_LIMITED_WAIT = 3600.0  # seconds after the CA says rateLimited (its limits count per hour and week)


class AcmeFailed(Exception):
    """The CA did not issue (a failed challenge, an error it sent, no answer); the message says which.

    wait: seconds the CA's answer asks us to wait at least (a rate limit), else None.
    """

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


def ca_error(error: messages.Error) -> AcmeFailed:
    """What an error the CA sent means for us (RFC 8555 section 6.7's types)."""
    limited = error.code == "rateLimited"
    return AcmeFailed(f"the CA said: {error}", RATE_LIMITED_WAIT if limited else None)


@dataclass(frozen=True)
class Issued:
    chain_pem: bytes
    key_pem: bytes


def _new_key_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Issuer:
    """An ACME account at one directory, asking for one name at a time."""

    def __init__(self, store: Store, directory_url: str, email: str, ca_bundle: str | None = None,
                 challenge: str = "http-01") -> None:
        self._store = store
        self._challenge = challenge  # http-01 | tls-alpn-01
        self._directory_url = directory_url
        self._email = email
        self._verify: bool | str = ca_bundle or True
        self._client: client.ClientV2 | None = None

    def _account(self) -> client.ClientV2:
        if self._client is not None:
            return self._client
        pem = self._store.account_key()
        if pem is None:
            pem = _new_key_pem()
            self._store.save_account_key(pem)
        key = JWKEC(key=serialization.load_pem_private_key(pem, password=None))
        net = client.ClientNetwork(key, alg=ES256, verify_ssl=self._verify,  # type: ignore[arg-type]
                                   user_agent=USER_AGENT)
        directory = client.ClientV2.get_directory(self._directory_url, net)
        acme = client.ClientV2(directory, net)
        registration = messages.NewRegistration.from_data(email=self._email, terms_of_service_agreed=True)
        try:
            acme.new_account(registration)
        except errors.ConflictError as existing:  # the key has an account: use it
            net.account = messages.RegistrationResource(uri=existing.location, body=messages.Registration())
        self._client = acme
        return acme

    def issue(self, name: str) -> Issued:
        """A certificate for `name`, answering its HTTP-01 challenge.

        Raises:
            AcmeFailed: why it was not issued.
        """
        try:
            return self._issue(name)
        except AcmeFailed:
            raise
        except errors.ValidationError as error:
            problems = [c.error for a in error.failed_authzrs for c in a.body.challenges if c.error is not None]
            raise AcmeFailed(f"the challenge failed: {'; '.join(str(p) for p in problems) or error}") from None
        except messages.Error as error:
            raise ca_error(error) from None
        except (errors.Error, OSError, ValueError) as error:  # requests' errors are OSErrors
            self._client = None  # (connect again next time)
            raise AcmeFailed(f"{type(error).__name__}: {error}") from None

    def _issue(self, name: str) -> Issued:
        acme = self._account()
        key_pem = _new_key_pem()
        order = acme.new_order(crypto_util.make_csr(key_pem, [name]))
        published: list[str] = []
        kind = challenges.HTTP01 if self._challenge == "http-01" else TLSALPN01
        try:
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue
                challenge = next((c for c in authz.body.challenges if isinstance(c.chall, kind)), None)
                if challenge is None:
                    raise AcmeFailed(f"the CA offers no {self._challenge} challenge for it")
                response, validation = challenge.response_and_validation(acme.net.key)
                if kind is TLSALPN01:
                    self._store.publish_tls_alpn(name, *challenge_certificate(name, validation))
                    published.append("")
                else:
                    token = challenge.chall.encode("token")
                    self._store.publish(token, validation)
                    published.append(token)
                acme.answer_challenge(challenge, response)
            # (acme compares the deadline with a naive datetime.now())
            deadline = datetime.datetime.now() + datetime.timedelta(seconds=ORDER_DEADLINE)
            done = acme.poll_and_finalize(order, deadline)
        finally:
            for token in published:
                if token:
                    self._store.withdraw(token)
                else:
                    self._store.withdraw_tls_alpn(name)
        return Issued(done.fullchain_pem.encode("ascii"), key_pem)
