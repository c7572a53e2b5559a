"""Cloud registry credentials: ECR through boto3 against moto; Artifact Registry and ACR against a
tiny fake that checks the requests their token flows send; target URLs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2 import service_account

from core.registry.client import DOCKER_MANIFEST, RegistryClient, RegistryError
from core.registry.targets import (
    ACR_USER,
    GOOGLE_SCOPE,
    AcrCredentials,
    ArtifactRegistryCredentials,
    EcrCredentials,
    parse_target,
)
from tests.registry.fake_registry import Answer, FakeRegistry, Seen
from tests.servers import FAKE_AWS, FAKE_AWS_ENV

DIGEST = "sha256:" + "cd" * 32


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class CloudRegistry:
    """A registry with a Bearer token service that accepts one Basic login, plus the Google token
    endpoint and ACR's exchange endpoint."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.login = login
        self.fake = FakeRegistry(self.answer)

    def answer(self, seen: Seen) -> Answer:
        path = urlsplit(seen.path).path
        if path == "/google/token":
            form = parse_qs(seen.body.decode())
            ok = form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"] and form["assertion"]
            body = {"access_token": "ya29.fake", "expires_in": 3600, "token_type": "Bearer"}
            return (200 if ok else 400), {"Content-Type": "application/json"}, json.dumps(body).encode()
        if path == "/oauth2/exchange":
            form = parse_qs(seen.body.decode())
            ok = (seen.method == "POST" and form.get("grant_type") == ["access_token"]
                  and form.get("service") == [self.fake.host] and form.get("access_token") == ["aad-token"]
                  and form.get("tenant") == ["tenant-1"])
            return (200 if ok else 400), {}, json.dumps({"refresh_token": "acr-refresh"}).encode()
        if path == "/token":
            if self.login is None or seen.headers.get("authorization") != basic(*self.login):
                return 401, {}, b"{}"
            return 200, {}, json.dumps({"token": "registry-token"}).encode()
        if seen.headers.get("authorization") != "Bearer registry-token":
            challenge = f'Bearer realm="http://{self.fake.host}/token",service="{self.fake.host}"'
            return 401, {"WWW-Authenticate": challenge}, b""
        return 200, {"Content-Type": DOCKER_MANIFEST, "Docker-Content-Digest": DIGEST}, b""

    def __enter__(self) -> CloudRegistry:
        self.fake.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.fake.__exit__(*exc)


def pin_with(host: str, credentials: Any) -> str | None:
    found = RegistryClient(host, scheme="http", credentials=credentials, attempts=1).manifest("p/r/app", "v1")
    return None if found is None else found.digest


def test_ecr_credentials_come_from_get_authorization_token(moto_endpoint: str) -> None:
    client = boto3.client("ecr", endpoint_url=moto_endpoint, **FAKE_AWS)
    ecr = EcrCredentials(client=client)
    user, password = ecr()
    assert user == "AWS" and password
    ecr.ensure_repository("train/acct-a/app")
    EcrCredentials(client=client).ensure_repository("train/acct-a/app")  # already there: fine
    names = [r["repositoryName"] for r in client.describe_repositories()["repositories"]]
    assert names.count("train/acct-a/app") == 1


def test_an_ecr_target_builds_its_own_client_lazily(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**FAKE_AWS_ENV, "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(name, value)
    target = parse_target("ecr://123456789012.dkr.ecr.us-east-1.amazonaws.com/train")
    assert (target.kind, target.prefix, target.mounts, target.repository("acct-a/app")) == (
        "ecr", "train", False, "train/acct-a/app")
    assert target.credentials is not None and target.credentials()[0] == "AWS"
    assert target.prepare is not None
    target.prepare("train/acct-a/lazy")


def service_account_credentials(token_uri: str) -> Any:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    info = {"type": "service_account", "project_id": "p", "private_key_id": "k1", "private_key": pem,
            "client_email": "train@p.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri}
    return service_account.Credentials.from_service_account_info(info, scopes=[GOOGLE_SCOPE])


def test_artifact_registry_logs_in_as_oauth2accesstoken_with_a_google_access_token() -> None:
    with CloudRegistry(login=("oauth2accesstoken", "ya29.fake")) as cloud:
        credentials = ArtifactRegistryCredentials(service_account_credentials(f"http://{cloud.fake.host}/google/token"))
        assert credentials() == ("oauth2accesstoken", "ya29.fake")
        assert pin_with(cloud.fake.host, credentials) == DIGEST
        assert sum(1 for s in cloud.fake.seen if s.path == "/google/token") == 1  # cached while valid


class AadCredential:
    """Stands in for azure-identity's DefaultAzureCredential (the SDK's get_token contract)."""

    def get_token(self, *scopes: str) -> Any:
        assert scopes == ("https://management.azure.com/.default",)
        expires = datetime.now(UTC) + timedelta(hours=1)
        return SimpleNamespace(token="aad-token", expires_on=int(expires.timestamp()))


def test_acr_exchanges_an_entra_id_token_for_a_refresh_token() -> None:
    with CloudRegistry() as cloud:
        cloud.login = (ACR_USER, "acr-refresh")
        credentials = AcrCredentials(cloud.fake.host, credential=AadCredential(), tenant="tenant-1", scheme="http")
        assert credentials() == (ACR_USER, "acr-refresh")
        assert pin_with(cloud.fake.host, credentials) == DIGEST
        exchange = [s for s in cloud.fake.seen if s.path == "/oauth2/exchange"]
        assert len(exchange) == 1 and exchange[0].headers["content-type"] == "application/x-www-form-urlencoded"


def test_acr_refusing_the_exchange_is_a_registry_error() -> None:
    with CloudRegistry() as cloud:
        credentials = AcrCredentials(cloud.fake.host, credential=AadCredential(), tenant="other", scheme="http")
        with pytest.raises(RegistryError, match="refused the token exchange"):
            credentials()


def test_wrong_registry_credentials_are_a_non_retryable_registry_error() -> None:
    with CloudRegistry(login=("AWS", "right")) as cloud, pytest.raises(RegistryError) as err:
        pin_with(cloud.fake.host, lambda: ("AWS", "wrong"))
    assert not err.value.retryable and cloud.fake.host in err.value.detail


@pytest.mark.parametrize(("url", "kind", "host", "prefix", "scheme", "mounts"), [
    ("acr://train.azurecr.io/mirror", "acr", "train.azurecr.io", "mirror", "https", True),
    ("artifact-registry://us-docker.pkg.dev/proj/train", "artifact-registry", "us-docker.pkg.dev", "proj/train",
     "https", False),
    ("registry+http://127.0.0.1:5001/m?mount=false", "registry+http", "127.0.0.1:5001", "m", "http", False),
    ("registry://registry.example", "registry", "registry.example", "", "https", True),
])
def test_target_urls(url: str, kind: str, host: str, prefix: str, scheme: str, mounts: bool) -> None:
    target = parse_target(url)
    assert (target.kind, target.host, target.prefix, target.scheme, target.mounts) == (kind, host, prefix, scheme,
                                                                                      mounts)


@pytest.mark.parametrize("url", [
    "s3://bucket", "ecr://registry.example/x", "artifact-registry://us-docker.pkg.dev/only-project", "acr://",
])
def test_bad_target_urls_are_refused(url: str) -> None:
    with pytest.raises(RegistryError):
        parse_target(url, setting="TRAIN_REGISTRY_TARGET_SAGEMAKER")
