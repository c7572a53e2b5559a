"""VertexBackend through the real ``aiplatform_v1.JobServiceClient`` (REST transport) and
google.auth's AuthorizedSession, against our fake Vertex AI endpoint (tests/fake_vertex.py) on
127.0.0.1: the request asserted on is the one the client put on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from google.cloud import aiplatform_v1

from core.backends.vertex import VertexBackend
from core.backends.vertex_map import draft_record
from core.errors import BackendError, UnavailableError
from core.lifecycle import Status
from core.model import JobRecord, JobSpec, NativeJobRequest
from core.service import TrainService
from tests.fake_vertex import FakeVertex
from tests.fakes import InMemoryJobStore

IMAGE = "us-docker.pkg.dev/acct/train/pytorch:v1"
ACCOUNT = "acct-1"


@pytest.fixture
def fake() -> Iterator[FakeVertex]:
    with FakeVertex() as server:
        yield server


@pytest.fixture
def backend(fake: FakeVertex) -> VertexBackend:
    return VertexBackend(project=fake.project, location=fake.location, staging_bucket="gs://stage",
                         client_options=fake.client_options())


def spec(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {"name": "mnist", "backend": "vertex-ai", "image": IMAGE, "command": ["python", "t.py"]}
    return JobSpec.model_validate({**base, **fields})


def submitted(backend: VertexBackend, source: JobSpec | NativeJobRequest | None = None) -> JobRecord:
    job = draft_record(source or spec())
    found = backend.submit(job)
    return job.model_copy(update={"native_id": found.native_id, "cloud_job_identifier": found.cloud_job_identifier})


def job_id(job: JobRecord) -> str:
    return str(job.native_id).rsplit("/", 1)[-1]


# ---- submit -----------------------------------------------------------------------------------


def test_submit_puts_the_custom_job_on_the_wire(fake: FakeVertex, backend: VertexBackend) -> None:
    source = spec(compute={"accelerator": "H100", "accelerators_per_node": 8, "nodes": 2},
                  checkpointing={"enabled": True}, max_runtime="2h", spot={"enabled": True},
                  storage_mounts=[{"source_uri": "gs://data/mnist"}], labels={"team": "vision"})
    job = submitted(backend, source)
    assert job.native_id == fake.name(job_id(job))
    assert job.cloud_job_identifier == {"job_name": job.native_id}
    (create,) = [r for r in fake.requests if r.method == "POST"]
    assert create.path == "/v1/projects/test-project/locations/us-central1/customJobs"
    assert "enum-encoding=int" in create.query["$alt"]
    body = create.body
    assert body["displayName"] == f"train-{job.id}-1"
    assert body["labels"] == {"team": "vision", "train-job-id": job.id, "train-attempt": "1"}
    first, second = body["jobSpec"]["workerPoolSpecs"]
    assert first["machineSpec"] == {"machineType": "a3-highgpu-8g", "acceleratorCount": 8,
                                    "acceleratorType": aiplatform_v1.AcceleratorType.NVIDIA_H100_80GB.value}
    assert (first["replicaCount"], second["replicaCount"]) == ("1", "1")
    container = first["containerSpec"]
    assert container["imageUri"] == IMAGE and container["args"] == ["python", "t.py"]
    assert container["command"][:2] == ["/bin/sh", "-c"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["STORAGE_MOUNT_0_PATH"] == "/gcs/data/mnist" and env["TRAIN_JOB_ID"] == job.id
    assert body["jobSpec"]["scheduling"] == {"timeout": "7200s",
                                             "strategy": aiplatform_v1.Scheduling.Strategy.SPOT.value}
    assert body["jobSpec"]["baseOutputDirectory"] == {"outputUriPrefix": f"gs://stage/train/{job.id}/attempt-1/"}
    stored = fake.job(job_id(job))
    assert stored["job_spec"]["worker_pool_specs"][0]["machine_spec"]["accelerator_type"] == "NVIDIA_H100_80GB"


def test_native_shape_reaches_vertex_as_given(fake: FakeVertex, backend: VertexBackend) -> None:
    config = {"worker_pool_specs": [{"machine_spec": {"machine_type": "n1-standard-4"}, "replica_count": 1,
                                     "container_spec": {"image_uri": IMAGE, "command": ["python"], "args": ["t.py"]}}],
              "scheduling": {"timeout": "3600s"}}
    job = submitted(backend, NativeJobRequest(name="mnist", job_config=config))
    body = fake.created()[0]
    assert body["jobSpec"]["scheduling"] == {"timeout": "3600s"}
    container = body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
    assert (container["command"], container["args"]) == (["python"], ["t.py"])
    assert body["labels"]["train-job-id"] == job.id


def test_a_retried_submit_finds_the_labelled_job_and_creates_none(fake: FakeVertex, backend: VertexBackend) -> None:
    job = draft_record(spec())
    first = backend.submit(job)
    again = backend.submit(job)
    assert again.native_id == first.native_id and len(fake.created()) == 1 and len(fake.jobs) == 1
    lookups = [r for r in fake.requests if r.method == "GET" and r.path.endswith("/customJobs")]
    assert lookups[0].query["filter"] == f'labels.train-job-id="{job.id}" AND labels.train-attempt="1"'
    later = backend.submit(job.model_copy(update={"attempt": 2}))  # a new attempt is a new native job
    assert later.native_id != first.native_id and len(fake.jobs) == 2


def test_a_create_whose_answer_was_lost_is_found_on_retry(fake: FakeVertex, backend: VertexBackend) -> None:
    job = draft_record(spec())
    fake.fail("create", status=503, commit=True)
    with pytest.raises(UnavailableError):
        backend.submit(job)
    assert len(fake.jobs) == 1
    found = backend.submit(job)
    assert found.native_id == fake.name(next(iter(fake.jobs))) and len(fake.created()) == 1


# ---- describe and cancel ----------------------------------------------------------------------


def test_describe_follows_a_progression(fake: FakeVertex, backend: VertexBackend) -> None:
    job = submitted(backend)
    seen = [backend.describe(job)]
    for state in ("JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"):
        fake.set_state(job_id(job), state)
        seen.append(backend.describe(job))
    assert [(u.native_status, u.status) for u in seen] == [
        ("JOB_STATE_PENDING", Status.PENDING), ("JOB_STATE_RUNNING", Status.IN_PROGRESS),
        ("JOB_STATE_SUCCEEDED", Status.COMPLETED),
    ]
    assert seen[0].event_time < seen[1].event_time < seen[2].event_time
    assert all(u.attempt == 1 for u in seen)


def test_describe_a_failed_and_a_missing_job(fake: FakeVertex, backend: VertexBackend) -> None:
    job = submitted(backend)
    fake.set_state(job_id(job), "JOB_STATE_FAILED", error="replica workerpool0-0 exited with code 1")
    update = backend.describe(job)
    assert (update.status, update.reason) == (Status.FAILED, "replica workerpool0-0 exited with code 1")
    gone = backend.describe(job.model_copy(update={"native_id": fake.name("999")}))
    assert (gone.native_status, gone.status) == ("NOT_FOUND", Status.FAILED)


def test_cancel(fake: FakeVertex, backend: VertexBackend) -> None:
    job = submitted(backend)
    fake.set_state(job_id(job), "JOB_STATE_RUNNING")
    backend.cancel(job)
    assert fake.job(job_id(job))["state"] == "JOB_STATE_CANCELLING"
    assert any(r.path.endswith(":cancel") for r in fake.requests)
    backend.cancel(job)  # already cancelling: refused by Vertex, left alone here
    fake.set_state(job_id(job), "JOB_STATE_CANCELLED")
    backend.cancel(job)
    assert backend.describe(job).status == Status.CANCELED
    backend.cancel(job.model_copy(update={"native_id": fake.name("999")}))  # never existed


def test_cancel_of_a_job_with_no_native_job_calls_nothing(fake: FakeVertex, backend: VertexBackend) -> None:
    backend.cancel(draft_record(spec()))
    assert not any(r.method == "POST" for r in fake.requests)


# ---- logs and checkpoints ---------------------------------------------------------------------


def test_logs_page_through_the_jobs_entries(fake: FakeVertex, backend: VertexBackend) -> None:
    job, other = submitted(backend), submitted(backend, spec(name="other"))
    stamp = "2025-01-21T06:28:38.483205565Z"
    fake.add_log(job_id(job), "epoch 1", timestamp=stamp)
    fake.add_log(job_id(job), "epoch 2", timestamp=stamp, task_name="workerpool1-0")
    fake.add_log(job_id(other), "not mine")
    fake.add_log(job_id(job), "Traceback", severity="ERROR", text_payload=True)
    fake.add_log(job_id(job), "Job completed successfully.", task_name="service")
    first = backend.logs(job, cursor=None, limit=1, since=None)
    second = backend.logs(job, cursor=first.next_cursor, limit=2, since=None)
    third = backend.logs(job, cursor=second.next_cursor, limit=10, since=None)
    lines = first.lines + second.lines + third.lines
    assert [line.message for line in lines] == ["epoch 1", "epoch 2", "Traceback", "Job completed successfully."]
    assert [line.source for line in lines] == ["workerpool0-0", "workerpool1-0", "workerpool0-0", "service"]
    assert [line.stream for line in lines] == ["stdout", "stdout", "stderr", "stdout"]
    assert backend.logs(job, cursor=third.next_cursor, limit=10, since=None).lines == []
    fake.add_log(job_id(job), "late line")
    assert [x.message for x in backend.logs(job, cursor=third.next_cursor, limit=10, since=None).lines] == ["late line"]
    recent = backend.logs(job, cursor=None, limit=10, since=lines[2].time)
    assert [x.message for x in recent.lines][:2] == ["Traceback", "Job completed successfully."]


def test_checkpoints_are_listed_from_the_output_prefix(fake: FakeVertex, backend: VertexBackend) -> None:
    job = submitted(backend, spec(checkpointing={"enabled": True}))
    assert backend.checkpoints(job) == []  # no bucket yet
    prefix = f"train/{job.id}/attempt-1/checkpoints/"
    fake.put_object("stage", prefix + "step-100/model.pt", size=10, updated="2025-01-21T06:00:00.000000001Z")
    fake.put_object("stage", prefix + "step-100/optim.pt", size=5, updated="2025-01-21T06:00:01.123456789Z")
    fake.put_object("stage", prefix + "final.pt", size=7, updated="2025-01-21T07:00:00Z")
    fake.put_object("stage", f"train/{job.id}/attempt-1/model/saved.pb", size=1)
    fake.page_size = 1
    found = backend.checkpoints(job)
    assert [(c.name, c.uri, c.size_bytes) for c in found] == [
        ("step-100", f"gs://stage/{prefix}step-100/", 15), ("final.pt", f"gs://stage/{prefix}final.pt", 7),
    ]
    assert found[0].modified_at.microsecond == 123456


# ---- the service over the backend -------------------------------------------------------------


def test_service_submit_then_succeeded_reads_completed(fake: FakeVertex, backend: VertexBackend) -> None:
    store = InMemoryJobStore()
    service = TrainService(store, {"vertex-ai": backend})
    job, created = service.submit(ACCOUNT, spec())
    assert created and job.native_id is not None and job.native_status == "JOB_STATE_PENDING"
    fake.set_state(job.native_id, "JOB_STATE_SUCCEEDED")
    service.apply_native_update("vertex-ai", job.native_id, backend.describe(job))
    done = service.get(ACCOUNT, job.id)
    assert done.status == Status.COMPLETED and done.started_at is not None and done.ended_at is not None
    assert done.native_status == "JOB_STATE_SUCCEEDED"


def test_a_create_lost_to_a_503_is_finished_by_the_sweeper(fake: FakeVertex, backend: VertexBackend) -> None:
    service = TrainService(InMemoryJobStore(), {"vertex-ai": backend}, submit_grace=timedelta(0))
    fake.fail("create", status=503, commit=True)
    job, _ = service.submit(ACCOUNT, spec())
    assert job.status == Status.PENDING and job.native_id is None
    report = service.sweep()
    assert report.errors == 0 and report.changed == [job.id]
    swept = service.get(ACCOUNT, job.id)
    assert swept.native_id == fake.name(next(iter(fake.jobs)))
    assert len(fake.jobs) == 1 and len(fake.created()) == 1


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_and_unavailability_are_retryable(fake: FakeVertex, backend: VertexBackend, status: int) -> None:
    fake.fail("create", status=status)
    with pytest.raises(UnavailableError) as caught:
        backend.submit(draft_record(spec()))
    assert caught.value.retryable
    job = submitted(backend)
    fake.fail("get", status=status)  # once: the read is retried and succeeds
    assert backend.describe(job).status == Status.PENDING
    fake.fail("get", status=status, times=100)
    with pytest.raises(UnavailableError):
        backend.describe(job)
    fake.fail("logs", status=status)
    with pytest.raises(UnavailableError):
        backend.logs(job, cursor=None, limit=10, since=None)
    fake.fail("storage", status=status)
    with pytest.raises(UnavailableError):
        backend.checkpoints(job)


@pytest.mark.parametrize("status", [400, 403])
def test_refusals_are_not_retryable(fake: FakeVertex, backend: VertexBackend, status: int) -> None:
    fake.fail("create", status=status)
    with pytest.raises(BackendError) as caught:
        backend.submit(draft_record(spec()))
    assert not caught.value.retryable and "Vertex AI refused create" in caught.value.detail
    assert len(fake.jobs) == 0


def test_an_unreachable_endpoint_is_unavailable() -> None:
    with FakeVertex() as gone:
        options = gone.client_options()
    backend = VertexBackend(project="test-project", location="us-central1", staging_bucket="stage",
                            client_options=options)
    with pytest.raises(UnavailableError):
        backend.submit(draft_record(spec()))
