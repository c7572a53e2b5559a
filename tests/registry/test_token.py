"""The token service: claims, scopes, expiry, rotation, credentials, and what reaches the logs."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.x509.oid import NameOID

from core.api import create_app
from core.auth import create_key
from core.bootstrap import ConfigError, build_registry
from core.config import Settings
from core.registry.client import RegistryError
from core.registry.token import (
    RegistryTokenError,
    RegistryTokens,
    SigningKey,
    TokenIssuer,
    load_signing_key,
    new_signing_key,
    parse_scopes,
)
from core.server import LocalHTTPServer
from core.service import TrainService
from tests.fakes import FakeClock, InMemoryJobStore, InMemoryKeyStore

SERVICE = "registry.example"
KID = re.compile(r"^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$")


def verify(token: str, issuer: TokenIssuer, **options: Any) -> dict[str, Any]:
    """Check the signature the way the registry does: find the certificate by kid in the bundle."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in issuer.keys if k.kid == kid)
    return dict(jwt.decode(token, key.certificate.public_key(), algorithms=["ES256", "RS256"],  # type: ignore[arg-type]
                           audience=SERVICE, issuer="train", **options))


def issuer(*keys: SigningKey, clock: FakeClock | None = None) -> TokenIssuer:
    return TokenIssuer(list(keys) or [new_signing_key()], service=SERVICE, issuer="train",
                       ttl=timedelta(minutes=5), clock=clock or (lambda: datetime.now(UTC)))


def test_claims_follow_the_registry_token_spec() -> None:
    signer = issuer()
    access = signer.grant("acct-a", parse_scopes(["repository:acct-a/app:pull,push"]))
    out = signer.issue("acct-a", access)
    assert out["token"] == out["access_token"] and out["expires_in"] == 300
    assert out["issued_at"].endswith("Z")
    header = jwt.get_unverified_header(out["token"])
    assert header["alg"] == "ES256" and KID.match(header["kid"]) and header["kid"] == signer.signer.kid
    claims = verify(out["token"], signer)
    assert claims["sub"] == "acct-a" and claims["exp"] - claims["iat"] == 300 and claims["nbf"] == claims["iat"]
    assert claims["access"] == [{"type": "repository", "name": "acct-a/app", "actions": ["pull", "push"]}]
    assert claims["jti"] != verify(signer.issue("acct-a", access)["token"], signer)["jti"]


@pytest.mark.parametrize(("scopes", "granted"), [
    (["repository:acct-b/app:pull"], []),
    (["repository:acct-a:pull"], []),  # the namespace itself is not a repository of the account
    (["repository:acct-ab/app:pull"], []),
    (["repository:acct-a/app:pull,push,delete,*"], [("acct-a/app", ["pull", "push"])]),
    (["registry:catalog:*"], []),
    (["repository:acct-a/x:pull repository:acct-b/y:push", "repository:acct-a/x:push"],
     [("acct-a/x", ["pull", "push"])]),
    (["garbage", ""], []),
])
def test_grants_cover_only_the_accounts_namespace(scopes: list[str], granted: list[tuple[str, list[str]]]) -> None:
    access = TokenIssuer.grant("acct-a", parse_scopes(scopes))
    assert [(a["name"], a["actions"]) for a in access] == granted


def test_tokens_expire_after_their_ttl() -> None:
    clock = FakeClock(datetime.now(UTC) - timedelta(minutes=6))
    signer = issuer(clock=clock)
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(signer.issue("acct-a", [])["token"], signer)


def test_the_newest_key_signs_and_every_certificate_is_in_the_bundle() -> None:
    old = new_signing_key(now=datetime.now(UTC) - timedelta(days=30))
    new = new_signing_key()
    rotated = issuer(new, old)
    assert rotated.signer is new
    bundle = x509.load_pem_x509_certificates(rotated.bundle_pem())
    assert {c.fingerprint(SHA256()) for c in bundle} == {k.certificate.fingerprint(SHA256()) for k in (old, new)}
    before_rotation = issuer(old).issue("acct-a", [])["token"]
    assert verify(before_rotation, rotated)["sub"] == "acct-a"  # still valid until it expires


def rsa_key() -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1)).sign(key, SHA256()))
    return SigningKey(key, cert)


def test_keys_load_from_pem_files_and_rsa_keys_sign_rs256() -> None:
    loaded = load_signing_key(rsa_key().pem())
    signer = issuer(loaded)
    token = signer.issue("acct-a", [])["token"]
    assert jwt.get_unverified_header(token)["alg"] == "RS256" and verify(token, signer)["sub"] == "acct-a"
    with pytest.raises(RegistryTokenError):
        load_signing_key(b"not a key")
    mismatched = new_signing_key().pem().split(b"-----BEGIN CERTIFICATE-----")[0] + new_signing_key().certificate_pem
    with pytest.raises(RegistryTokenError, match="not the private key's"):
        load_signing_key(mismatched)


def test_bootstrap_loads_keys_from_pem_text_and_names_what_is_missing() -> None:
    key = new_signing_key()
    settings = Settings(registry_url="https://registry.example", registry_signing_keys=key.pem().decode())
    registry, tokens = build_registry(settings, InMemoryKeyStore())
    assert isinstance(tokens, RegistryTokens) and tokens.issuer.service == "registry.example"
    assert tokens.issuer.signer.kid == key.kid and registry.host == "registry.example"
    assert build_registry(Settings(), InMemoryKeyStore()) == (None, None)
    with pytest.raises(ConfigError, match="TRAIN_REGISTRY_URL"):
        build_registry(Settings(registry_signing_keys=key.pem().decode()), InMemoryKeyStore())
    with pytest.raises(RegistryError, match="TRAIN_REGISTRY_TARGET_AZURE_ML"):
        build_registry(Settings(registry_target_azure_ml="ftp://x"), InMemoryKeyStore())


# ---- the route ------------------------------------------------------------------------------------


@pytest.fixture
def server() -> Any:
    keys = InMemoryKeyStore()
    plaintext = {a: create_key(keys, [a])[0] for a in ("acct-a", "acct-b")}
    signer = issuer()
    tokens = RegistryTokens(signer, keys)
    server = LocalHTTPServer(lambda: create_app(TrainService(InMemoryJobStore(), {}), keys, tokens=tokens)).start()
    try:
        yield server, plaintext, signer
    finally:
        server.stop()


def get_token(url: str, auth: tuple[str, str] | None, query: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    headers = {} if auth is None else {"Authorization": "Basic " + base64.b64encode(":".join(auth).encode()).decode()}
    request = urllib.request.Request(f"{url}/v2/token?{query}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_the_route_signs_for_the_callers_account_only(server: Any) -> None:
    http, keys, signer = server
    query = f"service={SERVICE}&scope=repository:acct-a/app:pull,push&scope=repository:acct-b/app:pull&account=acct-a"
    status, headers, body = get_token(http.url, ("acct-a", keys["acct-a"]), query)
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert verify(body["token"], signer)["access"] == [
        {"type": "repository", "name": "acct-a/app", "actions": ["pull", "push"]}
    ]
    status, _, body = get_token(http.url, ("acct-b", keys["acct-b"]), "scope=repository:acct-a/app:pull")
    assert status == 200 and verify(body["token"], signer)["access"] == []


@pytest.mark.parametrize("who", ["nobody", "wrong-key", "key-of-another-account", "malformed"])
def test_bad_credentials_are_a_401_with_a_basic_challenge(server: Any, who: str) -> None:
    http, keys, _ = server
    auth = {"nobody": None, "wrong-key": ("acct-a", "trn_aaaaaaaaaaaa_" + "b" * 43),
            "key-of-another-account": ("acct-b", keys["acct-a"]), "malformed": ("acct-a", "")}[who]
    status, headers, body = get_token(http.url, auth, f"service={SERVICE}")
    assert status == 401 and headers["WWW-Authenticate"].startswith('Basic realm="Train registry"')
    assert body["status"] == 401 and "token" not in body


def test_a_token_for_another_registry_is_refused(server: Any) -> None:
    http, keys, _ = server
    status, _, body = get_token(http.url, ("acct-a", keys["acct-a"]), "service=elsewhere.example")
    assert status == 400 and body["errors"][0]["field"] == "service"


def test_a_deployment_without_a_registry_answers_404() -> None:
    keys = InMemoryKeyStore()
    with LocalHTTPServer(lambda: create_app(TrainService(InMemoryJobStore(), {}), keys)) as http:
        status, _, _ = get_token(http.url, ("acct-a", "x"), "")
    assert status == 404


def test_keys_and_tokens_never_reach_the_logs(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    http, keys, signer = server
    caplog.set_level(logging.DEBUG)
    _, _, body = get_token(http.url, ("acct-a", keys["acct-a"]), "scope=repository:acct-a/app:pull")
    get_token(http.url, ("acct-a", keys["acct-b"]), "scope=repository:acct-a/app:pull")
    deadline = time.monotonic() + 5  # the server writes its access log line after the response
    while "GET /v2/token 401" not in caplog.text:
        assert time.monotonic() < deadline, caplog.text
        time.sleep(0.01)
    secret_key = signer.signer.pem().decode().split("-----END PRIVATE KEY-----")[0]
    for secret in (keys["acct-a"], keys["acct-b"], body["token"], body["token"].split(".")[2], secret_key[40:80]):
        assert secret not in caplog.text
