"""Every ``SecretStore`` adapter against its local server: the file store on a temp folder, AWS
Secrets Manager on moto_server, GCP Secret Manager and Azure Key Vault on fakes of ours (tests/secrets/
fakes.py) reached by the real clients. One contract for all four, then each adapter's own failures."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.errors import InvalidSpecError, UnavailableError
from core.ports import SecretStore
from core.secrets.aws_secretsmanager import AWSSecretsManagerStore
from core.secrets.azure_keyvault import AzureKeyVaultStore, token_scope
from core.secrets.file import FileSecretStore
from core.secrets.gcp_secretmanager import GCPSecretManagerStore
from tests.fake_azureml import FakeCredential
from tests.secrets.fakes import FakeGCPSecretManager, FakeKeyVault
from tests.servers import FAKE_AWS, FAKE_AWS_ENV, free_port
from tests.unit.test_imports import loaded_sdk_modules

VALUE = "s3cr3t-Välue\"with'quotes\nand a second line"


@dataclass
class Subject:
    store: SecretStore
    put: Callable[[str, str], None]
    sdk: bool = True  # reads through a cloud SDK, whose debug logging the test captures


def _aws_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


@pytest.fixture(params=["file", "aws", "gcp", "azure"])
def subject(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Subject]:
    kind = request.param
    if kind == "file":
        folder = tmp_path / "secrets"
        folder.mkdir(mode=0o700)

        def put_file(name: str, value: str) -> None:
            path = folder / name
            path.write_text(value + "\n")
            path.chmod(0o600)

        yield Subject(FileSecretStore(folder), put_file, sdk=False)
    elif kind == "aws":
        import boto3

        endpoint = request.getfixturevalue("moto_endpoint")
        _aws_env(monkeypatch, endpoint)
        prefix = f"train-{uuid.uuid4().hex[:8]}/"
        client = boto3.client("secretsmanager", endpoint_url=endpoint, **FAKE_AWS)
        yield Subject(AWSSecretsManagerStore(prefix),
                      lambda name, value: client.create_secret(Name=prefix + name, SecretString=value))
    elif kind == "gcp":
        with FakeGCPSecretManager("train-test") as fake:
            yield Subject(GCPSecretManagerStore("train-test", endpoint=fake.url), fake.secrets.__setitem__)
    else:
        with FakeKeyVault() as vault:
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", vault.ca_file)
            yield Subject(AzureKeyVaultStore(vault.url, credential=FakeCredential()), vault.secrets.__setitem__)


# ---- the contract -------------------------------------------------------------------------------


def test_resolves_the_value_and_logs_nothing_of_it(subject: Subject, caplog: pytest.LogCaptureFixture) -> None:
    subject.put("hf-token", VALUE)
    subject.put("other", "x")
    caplog.set_level(logging.DEBUG)
    assert subject.store.resolve("hf-token") == VALUE
    assert subject.store.resolve("other") == "x"
    assert subject.store.resolve("hf-token") == VALUE  # read again, not cached away
    assert caplog.records or not subject.sdk, "the SDK's debug logging was captured"
    assert "s3cr3t" not in caplog.text
    for record in caplog.records:
        assert "s3cr3t" not in record.getMessage()


def test_a_missing_secret_is_a_422_naming_it(subject: Subject) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        subject.store.resolve("absent-one")
    assert caught.value.status == 422 and not caught.value.retryable
    assert "absent-one" in caught.value.detail


# ---- file ---------------------------------------------------------------------------------------


def test_file_names_cannot_leave_the_folder(tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("nope")
    store = FileSecretStore(tmp_path / "secrets")
    with pytest.raises(InvalidSpecError) as caught:
        store.resolve("../outside")
    assert "leaves the secrets folder" in caught.value.detail


def test_file_readable_by_others_is_used_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "open").write_text("value-123\r\n")
    (tmp_path / "open").chmod(0o644)
    assert FileSecretStore(tmp_path).resolve("open") == "value-123"
    assert "chmod 600" in caplog.text and "value-123" not in caplog.text


def test_a_folder_is_not_a_secret(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(InvalidSpecError):
        FileSecretStore(tmp_path).resolve("dir")


# ---- AWS Secrets Manager ------------------------------------------------------------------------


def test_aws_unreachable_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    _aws_env(monkeypatch, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UnavailableError) as caught:
        AWSSecretsManagerStore("train/").resolve("hf")
    assert caught.value.retryable and caught.value.status == 503


def test_aws_binary_secrets_are_read_as_text(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    _aws_env(monkeypatch, moto_endpoint)
    prefix = f"bin-{uuid.uuid4().hex[:8]}/"
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, **FAKE_AWS)
    client.create_secret(Name=prefix + "text", SecretBinary="binary-välue".encode())
    client.create_secret(Name=prefix + "bytes", SecretBinary=b"\xff\xfe")
    store = AWSSecretsManagerStore(prefix)
    assert store.resolve("text") == "binary-välue"
    with pytest.raises(InvalidSpecError, match="no text value"):
        store.resolve("bytes")


def test_aws_a_deleted_secret_is_missing(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    _aws_env(monkeypatch, moto_endpoint)
    prefix = f"del-{uuid.uuid4().hex[:8]}/"
    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, **FAKE_AWS)
    client.create_secret(Name=prefix + "gone", SecretString="v")
    client.delete_secret(SecretId=prefix + "gone", RecoveryWindowInDays=7)
    with pytest.raises(InvalidSpecError, match="scheduled for deletion"):
        AWSSecretsManagerStore(prefix).resolve("gone")


# ---- GCP Secret Manager -------------------------------------------------------------------------


def test_gcp_throttling_and_5xx_are_retryable() -> None:
    with FakeGCPSecretManager("p") as fake:
        fake.secrets["hf"] = "v"
        store = GCPSecretManagerStore("p", endpoint=fake.url)
        for status in (429, 503):
            fake.fail_next(status)
            with pytest.raises(UnavailableError) as caught:
                store.resolve("hf")
            assert caught.value.retryable
        fake.fail_next(403)
        with pytest.raises(InvalidSpecError, match="may not read"):
            store.resolve("hf")
        assert store.resolve("hf") == "v"
        assert fake.requests[-1].path == "/v1/projects/p/secrets/hf/versions/latest:access"


def test_gcp_refuses_names_secret_manager_cannot_hold() -> None:
    store = GCPSecretManagerStore("p", endpoint=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(InvalidSpecError, match="not a valid GCP Secret Manager secret id"):
        store.resolve("team/hf.token")


def test_gcp_unreachable_is_retryable() -> None:
    with pytest.raises(UnavailableError):
        GCPSecretManagerStore("p", endpoint=f"http://127.0.0.1:{free_port()}").resolve("hf")


# ---- Azure Key Vault ----------------------------------------------------------------------------


def test_azure_sends_a_bearer_token_and_the_api_version(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeKeyVault() as vault:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", vault.ca_file)
        vault.secrets["hf-token"] = "v"
        store = AzureKeyVaultStore(vault.url, credential=FakeCredential())
        assert store.resolve("hf-token") == "v"
        seen = vault.requests[-1]
        assert seen.headers["authorization"] == "Bearer fake-token"
        assert seen.query["api-version"] == ["7.4"] and seen.path == "/secrets/hf-token"
        vault.fail_next(503, times=5)  # past azure-core's retries
        with pytest.raises(UnavailableError):
            store.resolve("hf-token")


def test_azure_refuses_names_key_vault_cannot_hold() -> None:
    store = AzureKeyVaultStore("https://127.0.0.1:1", credential=FakeCredential())
    with pytest.raises(InvalidSpecError, match="not a valid Azure Key Vault secret name"):
        store.resolve("hf_token")


def test_azure_token_scope_follows_the_vault_cloud() -> None:
    assert token_scope("https://kv1.vault.azure.net") == "https://vault.azure.net/.default"
    assert token_scope("https://kv1.vault.azure.cn") == "https://vault.azure.cn/.default"
    assert token_scope("https://127.0.0.1:8443") == "https://vault.azure.net/.default"


def test_no_adapter_loads_an_sdk_at_import() -> None:
    modules = ["core.secrets.file", "core.secrets.aws_secretsmanager", "core.secrets.gcp_secretmanager",
               "core.secrets.azure_keyvault", "core.secrets.env", "core.secrets.masking"]
    assert loaded_sdk_modules(modules) == []
