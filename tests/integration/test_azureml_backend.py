"""AzureMLBackend through the real ``azure-ai-ml`` MLClient against our fake Azure ML endpoint
(tests/fake_azureml.py), over HTTPS with the fake's own certificate trusted through
``REQUESTS_CA_BUNDLE``, as azure-core's requests transport reads it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.backends.azureml import AzureMLBackend
from core.backends.azureml_map import environment_asset
from core.errors import BackendError, InvalidSpecError, UnavailableError
from core.ids import new_id
from core.lifecycle import Status
from core.model import JobRecord, JobSpec, NativeJobRequest
from core.service import TrainService
from tests.fake_azureml import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML, FakeCredential
from tests.fakes import InMemoryJobStore

# azure-ai-ml's schemas use marshmallow APIs that marshmallow 3.2x deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
IMAGE = "trainacr.azurecr.io/acct/pytorch@sha256:" + "cd" * 32


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAzureML]:
    with FakeAzureML() as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.ca_file)
        monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "AzureCloud")  # MLClient rewrites it; restored after the test
        yield server


@pytest.fixture
def backend(fake: FakeAzureML) -> AzureMLBackend:
    return _backend(fake)


def _backend(fake: FakeAzureML, **options: Any) -> AzureMLBackend:
    return AzureMLBackend(
        subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP, workspace=WORKSPACE, credential=FakeCredential(),
        base_url=fake.url, blob_endpoint=fake.blob_endpoint, retry_total=0, **options,
    )


def _spec(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {"name": "mnist", "backend": "azure-ml", "image": IMAGE, "command": ["python", "train.py"]}
    return JobSpec.model_validate({**base, **fields})


def _job(spec: JobSpec) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        id=new_id(), account_id="acct", name=spec.name, project=spec.project, backend="azure-ml",
        storage_mounts=list(spec.storage_mounts), labels=dict(spec.labels), spec=spec.model_dump(mode="json"),
        image={"requested": spec.image}, created_at=now, updated_at=now,
    )


def _native_job(request: NativeJobRequest) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        id=new_id(), account_id="acct", name=request.name, project=request.project, backend="azure-ml",
        storage_mounts=list(request.storage_mounts), native_request=request.model_dump(mode="json"),
        created_at=now, updated_at=now,
    )


# ---- submit -------------------------------------------------------------------------------------


def test_submit_sends_the_command_job_on_the_wire(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    spec = _spec(
        compute={"accelerator": "H100", "accelerators_per_node": 8, "nodes": 2}, max_runtime="2h",
        spot={"enabled": True}, checkpointing={"enabled": True}, labels={"team": "research"},
        storage_mounts=[{"source_uri": "azureml://datastores/data/paths/mnist", "read_only": True}],
    )
    job = _job(spec)
    backend.check_spec(spec)
    submission = backend.submit(job)
    name = f"train-{job.id}-1"
    assert submission.native_id == name and submission.native_status == "NotStarted"
    assert submission.cloud_job_identifier["job_id"].endswith(f"/workspaces/{WORKSPACE}/jobs/{name}")
    (put,) = fake.calls("PUT", f"/jobs/{name}")
    body = put.body["properties"]
    assert body["jobType"] == "Command" and body["displayName"] == "mnist" and body["experimentName"] == "default"
    assert body["resources"]["instanceCount"] == 2
    assert body["resources"]["instanceType"] == "Standard_ND96isr_H100_v5"
    assert "computeId" not in body  # serverless
    assert body["distribution"] == {"distributionType": "PyTorch", "processCountPerInstance": 1}
    assert body["limits"]["timeout"] == "PT2H"
    assert body["queueSettings"] == {"jobTier": "Spot"}
    assert body["inputs"]["mount_0"] == {"uri": "azureml://datastores/data/paths/mnist", "mode": "ReadOnlyMount",
                                         "jobInputType": "uri_folder"}
    assert body["outputs"]["checkpoints"]["mode"] == "ReadWriteMount"
    assert body["outputs"]["checkpoints"]["uri"].endswith(f"/paths/train/{job.id}/checkpoints/")
    assert 'export STORAGE_MOUNT_0_PATH="${{inputs.mount_0}}"' in body["command"]
    assert body["environmentVariables"]["TRAIN_JOB_ID"] == job.id
    assert body["tags"]["team"] == "research"
    env_name, version = environment_asset("train", IMAGE)
    assert body["environmentId"].endswith(f"/environments/{env_name}/versions/{version}")


def test_a_cluster_from_config_is_the_compute_target(fake: FakeAzureML) -> None:
    job = _job(_spec(compute={"accelerator": "A100", "accelerators_per_node": 8}))
    _backend(fake, compute="gpu-cluster").submit(job)
    (put,) = fake.calls("PUT", "/jobs/")
    assert put.body["properties"]["computeId"].endswith(f"/workspaces/{WORKSPACE}/computes/gpu-cluster")


def test_the_environment_is_registered_once_and_reused(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    first, second = _job(_spec()), _job(_spec(name="other"))
    backend.submit(first)
    backend.submit(second)
    assert len(fake.calls("PUT", "/environments/")) == 1
    (registered,) = fake.environments.values()
    assert registered["properties"]["image"] == IMAGE
    assert len(fake.calls("PUT", "/jobs/")) == 2 and fake.created_jobs == 2


def test_a_retried_submit_creates_no_second_job(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    job = _job(_spec())
    first = backend.submit(job)
    fake.advance(first.native_id, "Running")
    again = _backend(fake).submit(job)  # e.g. the sweeper after a crash, in another process
    assert again.native_id == first.native_id and again.native_status == "Running"
    assert fake.created_jobs == 1 and len(fake.calls("PUT", "/jobs/")) == 1


def test_refusals_are_raised_before_any_call(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        backend.check_spec(_spec(storage_mounts=[{"source_uri": "s3://bucket/data"}],
                                 backend_options={"resources": {"shm": 1}, "shm_size": 3}))
    fields = {e.field for e in caught.value.errors}
    assert "storage_mounts[0].source_uri" in fields
    assert fake.requests == []


def test_backend_options_are_checked_by_the_sdk_schema(backend: AzureMLBackend) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        backend.check_spec(_spec(backend_options={"shm_size": 3, "bogus": 1}))
    assert {e.field for e in caught.value.errors} == {"backend_options.shm_size", "backend_options.bogus"}


def test_native_job_config_is_validated_and_submitted(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    bad = NativeJobRequest.model_validate({"name": "n", "job_config": {
        "command": "python t.py", "environment": "azureml:mine:1",
        "resources": {"instance_count": "x", "instance_type": "Standard_NC4as_T4_v3"},
        "limits": {"timeout": "soon"}, "distribution": {"type": "horovod"},
    }})
    with pytest.raises(InvalidSpecError) as caught:
        backend.check_native(bad)
    fields = {e.field for e in caught.value.errors}
    assert {"job_config.resources.instance_count", "job_config.limits.timeout",
            "job_config.distribution.type"} <= fields
    good = NativeJobRequest.model_validate({"name": "n", "job_config": {
        "command": "python t.py --data ${{inputs.mount_0}}", "environment": {"image": IMAGE},
        "resources": {"instance_count": 1, "instance_type": "Standard_NC4as_T4_v3"},
    }, "storage_mounts": [{"source_uri": "azureml://datastores/data/paths/mnist", "read_only": True}]})
    backend.check_native(good)
    job = _native_job(good)
    backend.submit(job)
    (put,) = fake.calls("PUT", "/jobs/")
    body = put.body["properties"]
    assert body["command"].endswith("python t.py --data ${{inputs.mount_0}}")
    assert body["inputs"]["mount_0"]["mode"] == "ReadOnlyMount"
    assert body["resources"]["instanceType"] == "Standard_NC4as_T4_v3"
    assert len(fake.environments) == 1


# ---- describe, cancel ---------------------------------------------------------------------------


def test_describe_follows_the_progression(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    job = _job(_spec())
    name = backend.submit(job).native_id
    seen = []
    for native, status in [("Queued", Status.PENDING), ("Starting", Status.PENDING), ("Running", Status.IN_PROGRESS),
                           ("Finalizing", Status.IN_PROGRESS), ("Completed", Status.COMPLETED)]:
        fake.advance(name, native)
        update = backend.describe(job)
        assert (update.native_status, update.status, update.attempt) == (native, status, 1)
        seen.append(update.event_time)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_failure_reason_and_timeout_breach(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    failed, expired = _job(_spec()), _job(_spec(max_runtime="1h"))
    for job, final, error in [(failed, "Failed", "CUDA out of memory"),
                              (expired, "Canceled", "Job exceeded the max run duration of 1h")]:
        name = backend.submit(job).native_id
        fake.advance(name, "Running")
        fake.advance(name, final, error=error)
    update = backend.describe(failed)
    assert update.status == Status.FAILED and update.reason == "CUDA out of memory"
    assert backend.describe(expired).status == Status.EXPIRED


def test_a_job_canceled_at_its_time_limit_is_expired(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    job = _job(_spec(max_runtime="1h"))
    name = backend.submit(job).native_id
    fake.advance(name, "Running")
    fake.advance(name, "Canceled")
    fake.jobs[name].started = fake.jobs[name].modified - timedelta(hours=1)
    assert backend.describe(job).status == Status.EXPIRED
    asked = job.model_copy(update={"cancel_requested_at": datetime.now(UTC)})
    assert backend.describe(asked).status == Status.CANCELED


def test_a_missing_job_reads_as_failed(backend: AzureMLBackend) -> None:
    update = backend.describe(_job(_spec()))
    assert update.status == Status.FAILED and "no job" in (update.reason or "")


def test_cancel_stops_a_running_job_and_leaves_ended_ones(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    running, done = _job(_spec()), _job(_spec())
    for job in (running, done):
        fake.advance(backend.submit(job).native_id, "Running")
    fake.advance(f"train-{done.id}-1", "Completed")
    backend.cancel(running)
    backend.cancel(done)
    backend.cancel(_job(_spec()))  # never created
    assert fake.jobs[f"train-{running.id}-1"].status == "CancelRequested"
    assert fake.jobs[f"train-{done.id}-1"].status == "Completed"
    assert len(fake.calls("POST", "/cancel")) == 1
    assert backend.describe(running).status == Status.IN_PROGRESS


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error"), [(429, UnavailableError), (503, UnavailableError)])
def test_throttling_and_outages_are_retryable(
    backend: AzureMLBackend, fake: FakeAzureML, status: int, error: type[Exception]
) -> None:
    job = _job(_spec())
    fake.fail("PUT", "/jobs/", status=status)
    with pytest.raises(error) as caught:
        backend.submit(job)
    assert getattr(caught.value, "retryable", False)
    assert backend.submit(job).native_id == f"train-{job.id}-1"  # the retry goes through
    assert fake.created_jobs == 1


def test_a_refusal_is_not_retryable(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    fake.fail("PUT", "/jobs/", status=400, code="UserError")
    with pytest.raises(BackendError) as caught:
        backend.submit(_job(_spec()))
    assert not caught.value.retryable


def test_an_unreachable_endpoint_is_unavailable(fake: FakeAzureML) -> None:
    url = fake.url
    fake.stop()
    backend = AzureMLBackend(subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP, workspace=WORKSPACE,
                             credential=FakeCredential(), base_url=url, retry_total=0)
    with pytest.raises(UnavailableError):
        backend.describe(_job(_spec()))


# ---- logs and checkpoints -----------------------------------------------------------------------


def test_logs_page_through_the_std_log_files(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    job = _job(_spec())
    name = backend.submit(job).native_id
    fake.write_log(name, "user_logs/std_log.txt", "epoch 1\nepoch 2\nepoch 3\npart")
    first = backend.logs(job, cursor=None, limit=2, since=None)
    assert [line.message for line in first.lines] == ["epoch 1", "epoch 2"]
    second = backend.logs(job, cursor=first.next_cursor, limit=10, since=None)
    assert [line.message for line in second.lines] == ["epoch 3"]  # the partial line waits for its newline
    fake.write_log(name, "user_logs/std_log.txt", "ial\n")
    third = backend.logs(job, cursor=second.next_cursor, limit=10, since=None)
    assert [line.message for line in third.lines] == ["partial"]
    assert backend.logs(job, cursor=third.next_cursor, limit=10, since=None).lines == []


def test_checkpoints_are_listed_from_the_checkpoint_folder(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    job = _job(_spec(checkpointing={"enabled": True}))
    backend.submit(job)
    base = f"train/{job.id}/checkpoints/"
    fake.put_blob(base + "step-100/model.pt", b"x" * 100)
    fake.put_blob(base + "step-100/optim.pt", b"y" * 50)
    fake.put_blob(base + "latest", b"step-100")
    fake.put_blob(f"train/{new_id()}/checkpoints/other", b"z")
    found = {c.name: c for c in backend.checkpoints(job)}
    assert set(found) == {"step-100", "latest"}
    assert found["step-100"].size_bytes == 150
    assert found["step-100"].uri == f"azureml://datastores/workspaceblobstore/paths/{base}step-100/"
    assert found["latest"].uri.endswith(f"{base}latest")


# ---- through the service ------------------------------------------------------------------------


def test_service_submit_to_completed(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    service = TrainService(InMemoryJobStore(), {"azure-ml": backend})
    job, created = service.submit("acct", _spec())
    assert created and job.native_id == f"train-{job.id}-1" and job.cloud_job_identifier["job_name"] == job.native_id
    fake.advance(job.native_id, "Running")
    fake.advance(job.native_id, "Completed")
    service.sweep(reconcile_all=True)  # what an Event Grid hint leads to as well: the job re-read
    done = service.get("acct", job.id)
    assert done.status == Status.COMPLETED and done.native_status == "Completed"
    assert [e.status for e in done.events if e.kind == "transition"] == [
        Status.PENDING, Status.IN_PROGRESS, Status.COMPLETED,
    ]


def test_service_cancel_ends_canceled_not_expired(backend: AzureMLBackend, fake: FakeAzureML) -> None:
    service = TrainService(InMemoryJobStore(), {"azure-ml": backend})
    job, _ = service.submit("acct", _spec(max_runtime="1h"))
    assert job.native_id is not None
    fake.advance(job.native_id, "Running")
    service.sweep(reconcile_all=True)
    service.cancel("acct", job.id)
    assert fake.jobs[job.native_id].status == "CancelRequested"
    fake.advance(job.native_id, "Canceled")
    fake.jobs[job.native_id].started = fake.jobs[job.native_id].modified - timedelta(hours=2)
    service.sweep(reconcile_all=True)
    assert service.get("acct", job.id).status == Status.CANCELED


def test_importing_the_backend_does_not_import_the_sdk() -> None:
    code = ("import sys, core.backends.azureml, core.backends.azureml_map; "
            "print(any(m.startswith('azure') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
