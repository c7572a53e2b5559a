"""Secrets at submission, through the AWS functions (DynamoDB and Secrets Manager in moto, the fake
SageMaker) and the local server: a missing secret is a 422 naming ``env.<VAR>`` with nothing stored,
an unreachable store a 503, and every native submit (the sweeper's included) reads the store again."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from core.bootstrap import ConfigError, build, build_secrets
from core.config import Settings
from core.errors import InvalidSpecError
from core.model import JobQuery, JobSpec
from core.secrets.aws_secretsmanager import AWSSecretsManagerStore
from core.secrets.azure_keyvault import AzureKeyVaultStore
from core.secrets.file import FileSecretStore
from core.secrets.gcp_secretmanager import GCPSecretManagerStore
from core.secrets.masking import MASK
from functions.aws import http, sweeper
from tests.functions.conftest import Deployment
from tests.functions.shapes import auth, http_v2, shared, spec
from tests.servers import FAKE_AWS, free_port

ACCOUNT = "acct-a"


@pytest.fixture
def secrets_manager(deployment: Deployment, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A Secrets Manager client on moto; TRAIN_SECRETS points at a fresh prefix, kept on the client."""
    import boto3

    client = boto3.client("secretsmanager", endpoint_url=moto_endpoint, **FAKE_AWS)
    client.train_prefix = f"train-{uuid.uuid4().hex[:8]}/"
    monkeypatch.setenv("TRAIN_SECRETS", f"aws-secretsmanager://{client.train_prefix}")
    return client


def api(deployment: Deployment, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = auth(deployment.key, ACCOUNT)
    if body is not None:
        headers["content-type"] = "application/json"
    response = http.handler(http_v2(method, path, body, headers=headers), None)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def stored_jobs(deployment: Deployment) -> list[Any]:
    return deployment.store.list(ACCOUNT, JobQuery(limit=100))[0]


def test_a_missing_secret_is_a_422_naming_the_field_and_nothing_is_stored(
    deployment: Deployment, secrets_manager: Any
) -> None:
    secrets_manager.create_secret(Name=secrets_manager.train_prefix + "present", SecretString="v")
    body = spec(env={"OK": {"secret": "present"}, "HF_TOKEN": {"secret": "absent"}},
                compute={"accelerator": "A100", "accelerators_per_node": 3})
    status, problem = api(deployment, "POST", "/v1/jobs", body)
    assert status == 422, problem
    fields = {e["field"] for e in problem["errors"]}
    assert {"env.HF_TOKEN", "compute.accelerators_per_node"} <= fields and "env.OK" not in fields
    assert "absent" in json.dumps(problem)
    assert stored_jobs(deployment) == [] and deployment.sagemaker.calls("CreateTrainingJob") == []


def test_an_unreachable_store_is_a_503_and_nothing_is_stored(
    deployment: Deployment, secrets_manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{free_port()}")
    status, problem = api(deployment, "POST", "/v1/jobs", spec(env={"HF_TOKEN": {"secret": "hf"}}))
    assert status == 503, problem
    assert stored_jobs(deployment) == [] and deployment.sagemaker.calls("CreateTrainingJob") == []


def test_the_sweepers_resubmit_reads_the_store_again(
    deployment: Deployment, secrets_manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_id = secrets_manager.train_prefix + "hf"
    secrets_manager.create_secret(Name=secret_id, SecretString="first-value")
    monkeypatch.setenv("TRAIN_SUBMIT_GRACE_SECONDS", "0")
    deployment.sagemaker.fail("CreateTrainingJob", code="ThrottlingException")
    status, job = api(deployment, "POST", "/v1/jobs", spec(env={"HF_TOKEN": {"secret": "hf"}}))
    assert status == 201 and job["status"] == "PENDING" and not job["cloud_job_identifier"]
    secrets_manager.put_secret_value(SecretId=secret_id, SecretString="rotated-value")

    assert sweeper.handler(shared("eventbridge_scheduled.json"), None)["submitted"] == 1
    first, second = deployment.sagemaker.calls("CreateTrainingJob")
    assert first["Environment"]["HF_TOKEN"] == "first-value"
    assert second["Environment"]["HF_TOKEN"] == "rotated-value"
    (stored,) = stored_jobs(deployment)
    assert stored.spec["env"]["HF_TOKEN"] == {"secret": "hf"} and stored.cloud_job_identifier


def test_a_secret_deleted_before_the_native_submit_fails_the_job_by_name(
    deployment: Deployment, secrets_manager: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_id = secrets_manager.train_prefix + "hf"
    secrets_manager.create_secret(Name=secret_id, SecretString="short-lived")
    monkeypatch.setenv("TRAIN_SUBMIT_GRACE_SECONDS", "0")
    deployment.sagemaker.fail("CreateTrainingJob", code="ThrottlingException")
    status, job = api(deployment, "POST", "/v1/jobs", spec(env={"HF_TOKEN": {"secret": "hf"}}))
    assert status == 201
    secrets_manager.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)

    sweeper.handler(shared("eventbridge_scheduled.json"), None)
    status, failed = api(deployment, "GET", f"/v1/jobs/{job['id']}")
    assert failed["status"] == "FAILED" and "env.HF_TOKEN" in failed["status_reason"]
    assert len(deployment.sagemaker.calls("CreateTrainingJob")) == 1


def test_an_error_quoting_the_value_is_masked_before_it_is_stored(
    deployment: Deployment, secrets_manager: Any
) -> None:
    value = "quoted-" + uuid.uuid4().hex
    secrets_manager.create_secret(Name=secrets_manager.train_prefix + "hf", SecretString=value)
    deployment.sagemaker.fail("CreateTrainingJob", code="ValidationException",
                              message=f"Value '{value}' at 'environment.HF_TOKEN' failed to satisfy constraint")
    status, job = api(deployment, "POST", "/v1/jobs", spec(env={"HF_TOKEN": {"secret": "hf"}}))
    assert status == 201 and job["status"] == "FAILED"
    assert MASK in job["status_reason"] and value not in json.dumps(job)
    (stored,) = stored_jobs(deployment)
    assert value not in stored.model_dump_json()


# ---- local mode ---------------------------------------------------------------------------------


def test_local_missing_secret_is_a_422_and_nothing_is_stored(tmp_path: Path) -> None:
    wiring = build(Settings(data_dir=tmp_path, backends="local", store=f"sqlite:///{tmp_path / 'train.db'}"))
    try:
        job_spec = JobSpec.model_validate({"name": "x", "backend": "local", "command": ["true"],
                                           "env": {"TOKEN": {"secret": "absent"}}})
        with pytest.raises(InvalidSpecError) as caught:
            wiring.service.submit(ACCOUNT, job_spec)
        assert [e.field for e in caught.value.errors] == ["env.TOKEN"]
        assert "absent" in caught.value.detail
        assert wiring.store.list(ACCOUNT, JobQuery(limit=10))[0] == []
    finally:
        wiring.close()


# ---- configuration ------------------------------------------------------------------------------


def test_train_secrets_picks_the_adapter(tmp_path: Path) -> None:
    def store(url: str | None, **extra: Any) -> Any:
        return build_secrets(Settings(data_dir=tmp_path, secrets=url, **extra))

    default = store(None)
    assert isinstance(default, FileSecretStore) and default.directory == tmp_path / "secrets"
    assert store("file:///run/train-secrets").directory == Path("/run/train-secrets")
    aws = store("aws-secretsmanager://train/")
    assert isinstance(aws, AWSSecretsManagerStore) and aws.prefix == "train/"
    assert store("aws-secretsmanager://").prefix == ""
    gcp = store("gcp-secretmanager://my-project", secrets_endpoint="http://127.0.0.1:9")
    assert isinstance(gcp, GCPSecretManagerStore) and gcp.project == "my-project" and gcp.endpoint == "http://127.0.0.1:9"
    azure = store("azure-keyvault://kv1.vault.azure.net")
    assert isinstance(azure, AzureKeyVaultStore) and azure.vault_url == "https://kv1.vault.azure.net"
    for bad in ("vault://x", "gcp-secretmanager://", "file://", "azure-keyvault://"):
        with pytest.raises(ConfigError, match="TRAIN_SECRETS"):
            store(bad)
