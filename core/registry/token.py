"""The Docker registry token service behind ``GET /v2/token`` (Docker's token authentication spec).

A client (``docker login``, ``skopeo``) answers the registry's ``Bearer`` challenge by calling
this route with HTTP Basic ``account_id:api_key`` and the ``scope`` it needs; it gets a JWT the
registry verifies against the certificates in its ``rootcertbundle``. Grants cover only
repositories under ``<account_id>/``; anything else is left out of ``access`` (the registry then
answers 401/403 for it), as the spec asks, rather than refusing the whole token.

The JWT header names its key by ``kid`` in the libtrust fingerprint form distribution 2.x looks
up among the bundle's certificates: SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits,
base32 in twelve ``:``-separated groups of four. Several keys may be loaded (rotation): the one
whose certificate is newest signs, and every certificate goes into the bundle, so tokens signed
by a retiring key stay valid until they expire. Keys and tokens are never logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from core.auth import authenticate
from core.errors import FieldError, InvalidRequestError, TrainError, UnauthenticatedError
from core.ports import KeyStore

GRANTABLE = frozenset({"pull", "push"})
BASIC_CHALLENGE = 'Basic realm="Train registry", charset="UTF-8"'
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class RegistryTokenError(TrainError):
    """The signing keys cannot be loaded."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(_sha256(der)[:30]).decode().rstrip("=")  # 240 bits: 48 chars, no padding
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


@dataclass(frozen=True)
class SigningKey:
    private_key: PrivateKey
    certificate: x509.Certificate

    @property
    def kid(self) -> str:
        return libtrust_key_id(self.private_key.public_key())

    @property
    def alg(self) -> str:
        return "ES256" if isinstance(self.private_key, ec.EllipticCurvePrivateKey) else "RS256"

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def pem(self) -> bytes:
        """The private key (PKCS#8, unencrypted) followed by its certificate: one file per key."""
        key = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return key + self.certificate_pem

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.private_key.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS wants raw r || s, not DER
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def new_signing_key(
    common_name: str = "train registry token signer", *, valid_for: timedelta = timedelta(days=365),
    now: datetime | None = None,
) -> SigningKey:
    """A P-256 key and a self-signed certificate for it (the registry only reads its public key)."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + valid_for).sign(key, hashes.SHA256())
    )
    return SigningKey(key, cert)


def load_signing_key(pem: bytes, source: str = "the key") -> SigningKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
        cert = x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE-----") :])
    except (ValueError, TypeError) as exc:
        raise RegistryTokenError(f"{source} is not an unencrypted PEM private key followed by its certificate") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise RegistryTokenError(f"{source} must be an EC P-256 or RSA key")
    if libtrust_key_id(cert.public_key()) != libtrust_key_id(key.public_key()):  # type: ignore[arg-type]
        raise RegistryTokenError(f"in {source} the certificate is not the private key's")
    return SigningKey(key, cert)


def load_signing_keys(items: Iterable[str | Path]) -> list[SigningKey]:
    """Each item is a PEM file's path, or the PEM text itself (for secrets passed in the environment)."""
    keys = []
    for i, item in enumerate(items):
        if isinstance(item, str) and item.lstrip().startswith("-----BEGIN"):
            keys.append(load_signing_key(item.strip().encode(), source=f"signing key {i + 1}"))
        else:
            keys.append(load_signing_key(Path(item).read_bytes(), source=str(item)))
    return keys


@dataclass(frozen=True)
class Scope:
    type: str
    name: str
    actions: tuple[str, ...]


def parse_scopes(values: Iterable[str]) -> list[Scope]:
    """``type:name:action[,action]`` items; one query value may hold several separated by spaces.
    Unparseable items are dropped (they would only ever be granted nothing)."""
    out: list[Scope] = []
    for value in values:
        for item in value.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name and actions:
                out.append(Scope(kind, name, tuple(a for a in actions.split(",") if a)))
    return out


def utcnow() -> datetime:
    return datetime.now(UTC)


class TokenIssuer:
    """Signs registry tokens. ``service`` is the registry's ``auth.token.service`` (the JWT
    ``aud``); ``issuer`` its ``auth.token.issuer``."""

    def __init__(
        self, keys: Sequence[SigningKey], *, service: str, issuer: str, ttl: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if not keys:
            raise RegistryTokenError("the token service needs at least one signing key")
        self.keys = list(keys)
        self.service = service
        self.issuer = issuer
        self.ttl = ttl
        self.clock = clock
        self.signer = max(enumerate(self.keys), key=lambda ik: (ik[1].certificate.not_valid_before_utc, ik[0]))[1]

    def bundle_pem(self) -> bytes:
        """Every key's certificate: the registry's ``rootcertbundle``."""
        return b"".join(key.certificate_pem for key in self.keys)

    @staticmethod
    def grant(account_id: str, scopes: Iterable[Scope]) -> list[dict[str, Any]]:
        granted: dict[str, set[str]] = {}
        for scope in scopes:
            if scope.type != "repository" or not scope.name.startswith(f"{account_id}/"):
                continue
            actions = GRANTABLE.intersection(scope.actions)
            if actions:
                granted.setdefault(scope.name, set()).update(actions)
        return [{"type": "repository", "name": n, "actions": sorted(a)} for n, a in granted.items()]

    def issue(self, subject: str, access: list[dict[str, Any]]) -> dict[str, Any]:
        now = self.clock()
        issued = int(now.timestamp())
        claims = {
            "iss": self.issuer, "sub": subject, "aud": self.service, "iat": issued, "nbf": issued,
            "exp": issued + int(self.ttl.total_seconds()), "jti": secrets.token_urlsafe(16), "access": access,
        }
        header = {"typ": "JWT", "alg": self.signer.alg, "kid": self.signer.kid}
        signing_input = f"{_b64url(_json(header))}.{_b64url(_json(claims))}"
        token = f"{signing_input}.{_b64url(self.signer.sign(signing_input.encode('ascii')))}"
        return {
            "token": token, "access_token": token, "expires_in": int(self.ttl.total_seconds()),
            "issued_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }

    def mint(self, scopes: Iterable[Scope]) -> str:
        """A token for Train itself (resolution and replication read any account's repositories;
        the caller has already checked that the account owns the image)."""
        access = [{"type": s.type, "name": s.name, "actions": sorted(GRANTABLE.intersection(s.actions))}
                  for s in scopes if s.type == "repository"]
        return str(self.issue("train", access)["token"])


class RegistryUnauthenticatedError(UnauthenticatedError):
    """401 with the ``WWW-Authenticate`` challenge clients expect from a token service."""

    challenge = BASIC_CHALLENGE


def basic_credentials(header: str | None) -> tuple[str, str]:
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        raise RegistryUnauthenticatedError("log in with your account id as user and an API key as password")
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, ValueError) as exc:
        raise RegistryUnauthenticatedError("the Authorization header is not valid Basic credentials") from exc
    if not sep or not user or not password:
        raise RegistryUnauthenticatedError("log in with your account id as user and an API key as password")
    return user, password


class RegistryTokens:
    """The route's use case: authenticate the caller, then sign what its account may do."""

    def __init__(self, issuer: TokenIssuer, keys: KeyStore) -> None:
        self.issuer = issuer
        self.keys = keys

    def token(self, authorization: str | None, service: str | None, scopes: Iterable[str]) -> dict[str, Any]:
        """Raises:
        RegistryUnauthenticatedError: missing or wrong credentials, or a key not granted the account.
        InvalidRequestError: ``service`` names another registry.
        """
        account_id, api_key = basic_credentials(authorization)
        try:
            principal = authenticate(self.keys, api_key, account_id)
        except TrainError as exc:  # unknown key or key of another account: the same 401, no detail
            raise RegistryUnauthenticatedError("the account id or API key is wrong") from exc
        if service is not None and service != self.issuer.service:
            message = f"this token service signs for '{self.issuer.service}'"
            raise InvalidRequestError(message, errors=[FieldError(("service",), message)])
        return self.issuer.issue(principal.account_id, self.issuer.grant(principal.account_id, parse_scopes(scopes)))
