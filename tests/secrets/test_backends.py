"""Vertex AI and Azure ML with secrets, through their real clients and our fake endpoints: the value
is in the wire request where each cloud takes env values (``containerSpec.env``,
``properties.environmentVariables``), a missing secret is refused by ``check_spec`` naming the field,
and reading the native job back (which returns the value) logs nothing of it, even at DEBUG."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.backends.azureml import AzureMLBackend
from core.backends.vertex import VertexBackend
from core.backends.vertex_map import draft_record
from core.errors import InvalidSpecError
from core.ids import new_id
from core.model import JobRecord, JobSpec
from core.secrets.file import FileSecretStore
from tests.fake_azureml import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML, FakeCredential
from tests.fake_vertex import FakeVertex
from tests.secrets.leaks import debug_everywhere, log_lines, places_holding

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # azure-ai-ml's marshmallow use
AZURE_IMAGE = "trainacr.azurecr.io/acct/pytorch@sha256:" + "cd" * 32


@pytest.fixture
def secrets(tmp_path: Path) -> tuple[FileSecretStore, str]:
    value = "cloud-s3cr3t-" + uuid.uuid4().hex
    (tmp_path / "hf-token").write_text(value)
    (tmp_path / "hf-token").chmod(0o600)
    return FileSecretStore(tmp_path), value


def _spec(backend: str, image: str, **fields: Any) -> JobSpec:
    base = {"name": "mnist", "backend": backend, "image": image, "command": ["python", "t.py"],
            "env": {"HF_TOKEN": {"secret": "hf-token"}, "A": "1"}}
    return JobSpec.model_validate({**base, **fields})


# ---- Vertex AI ----------------------------------------------------------------------------------


@pytest.fixture
def vertex() -> Iterator[FakeVertex]:
    with FakeVertex() as server:
        yield server


def test_vertex_puts_the_value_in_every_pools_env_and_logs_none_of_it(
    vertex: FakeVertex, secrets: tuple[FileSecretStore, str], caplog: pytest.LogCaptureFixture
) -> None:
    store, value = secrets
    backend = VertexBackend(project=vertex.project, location=vertex.location, staging_bucket="gs://stage",
                            client_options=vertex.client_options(), secrets=store)
    source = _spec("vertex-ai", "us-docker.pkg.dev/acct/train/pytorch:v1", compute={"accelerator": "L4", "nodes": 2})
    backend.check_spec(source)
    job = draft_record(source)
    with debug_everywhere(caplog):
        submitted = backend.submit(job)
        job = job.model_copy(update={"native_id": submitted.native_id,
                                     "cloud_job_identifier": submitted.cloud_job_identifier})
        backend.describe(job)  # GetCustomJob answers with the env, value included
        lines = log_lines(caplog)
    (create,) = vertex.created()
    for pool in create["jobSpec"]["workerPoolSpecs"]:
        env = {e["name"]: e["value"] for e in pool["containerSpec"]["env"]}
        assert env["HF_TOKEN"] == value and env["A"] == "1"
    assert lines and places_holding(value, {f"log {n}": line for n, line in enumerate(lines)}) == []
    assert value not in job.model_dump_json()


def test_vertex_check_spec_names_a_missing_secret(vertex: FakeVertex, tmp_path: Path) -> None:
    backend = VertexBackend(project="p", location="us-central1", staging_bucket="gs://stage",
                            client_options=vertex.client_options(), secrets=FileSecretStore(tmp_path))
    with pytest.raises(InvalidSpecError) as caught:
        backend.check_spec(_spec("vertex-ai", "us-docker.pkg.dev/a/b/c:v1", backend_options={"nope": 1}))
    assert {e.field for e in caught.value.errors} == {"env.HF_TOKEN", "backend_options.nope"}
    assert vertex.requests == []


def test_a_backend_without_a_secret_store_refuses_secret_refs(vertex: FakeVertex) -> None:
    backend = VertexBackend(project="p", location="us-central1", staging_bucket="gs://stage",
                            client_options=vertex.client_options())
    with pytest.raises(InvalidSpecError, match="TRAIN_SECRETS"):
        backend.check_spec(_spec("vertex-ai", "us-docker.pkg.dev/a/b/c:v1"))


# ---- Azure ML -----------------------------------------------------------------------------------


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzureML]:
    with FakeAzureML() as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_file)
        monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "AzureCloud")
        yield server


def _azure_backend(fake: FakeAzureML, store: FileSecretStore) -> AzureMLBackend:
    return AzureMLBackend(
        subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP, workspace=WORKSPACE, credential=FakeCredential(),
        base_url=fake.url, blob_endpoint=fake.blob_endpoint, retry_total=0, secrets=store,
    )


def test_azure_puts_the_value_in_environment_variables_and_logs_none_of_it(
    azure: FakeAzureML, secrets: tuple[FileSecretStore, str], caplog: pytest.LogCaptureFixture
) -> None:
    store, value = secrets
    backend = _azure_backend(azure, store)
    source = _spec("azure-ml", AZURE_IMAGE)
    backend.check_spec(source)
    now = datetime.now(UTC)
    job = JobRecord(id=new_id(), account_id="acct", name="mnist", project="default", backend="azure-ml",
                    spec=source.model_dump(mode="json"), image={"requested": AZURE_IMAGE}, created_at=now,
                    updated_at=now)
    with debug_everywhere(caplog):
        submission = backend.submit(job)
        job = job.model_copy(update={"native_id": submission.native_id})
        azure.advance(submission.native_id, "Failed", error="the job failed")
        backend.describe(job)  # jobs.get and the run details answer with the environment
        lines = log_lines(caplog)
    (put,) = azure.calls("PUT", f"/jobs/{submission.native_id}")
    assert put.body["properties"]["environmentVariables"]["HF_TOKEN"] == value
    assert lines and places_holding(value, {f"log {n}": line for n, line in enumerate(lines)}) == []
    assert value not in json.dumps(submission.cloud_job_identifier)


def test_azure_check_spec_names_a_missing_secret(azure: FakeAzureML, tmp_path: Path) -> None:
    backend = _azure_backend(azure, FileSecretStore(tmp_path))
    with pytest.raises(InvalidSpecError) as caught:
        backend.check_spec(_spec("azure-ml", AZURE_IMAGE, spot={"max_wait": "1h"}))
    assert {e.field for e in caught.value.errors} == {"env.HF_TOKEN", "spot.max_wait"}
