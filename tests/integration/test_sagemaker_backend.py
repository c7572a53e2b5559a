"""SageMakerBackend through the real boto3 clients: SageMaker against our fake endpoint
(tests/fake_sagemaker.py), S3 and CloudWatch Logs against the session's moto_server. The
endpoints reach boto3 through its own environment variables, as they would in a deployment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.backends.sagemaker import LOG_GROUP, SageMakerBackend
from core.backends.sagemaker_map import from_sagemaker_event
from core.errors import BackendError, InvalidSpecError, UnavailableError
from core.ids import new_id
from core.lifecycle import Status
from core.model import JobRecord, JobSpec
from core.service import TrainService
from tests.fake_sagemaker import FakeSageMaker
from tests.fakes import InMemoryJobStore
from tests.servers import FAKE_AWS, FAKE_AWS_ENV, free_port

ROLE = "arn:aws:iam::123456789012:role/train-jobs"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acct/pytorch:v1"
DIGEST = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acct/pytorch@sha256:" + "ab" * 32


@pytest.fixture
def fake() -> Iterator[FakeSageMaker]:
    with FakeSageMaker() as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, fake: FakeSageMaker, moto_endpoint: str) -> str:
    for key, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", fake.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", moto_endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # injected failures surface at once
    return moto_endpoint


@pytest.fixture
def bucket(aws_env: str) -> str:
    import boto3

    name = f"train-out-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=aws_env, **FAKE_AWS).create_bucket(Bucket=name)
    return name


@pytest.fixture
def backend(bucket: str) -> SageMakerBackend:
    return SageMakerBackend(role_arn=ROLE, output_s3_uri=f"s3://{bucket}/train", job_prefix="train")


def _spec(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {"name": "mnist", "backend": "sagemaker", "image": IMAGE, "command": ["python", "train.py"]}
    return JobSpec.model_validate({**base, **fields})


def _job(spec: JobSpec, *, resolved: str | None = None) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        id=new_id(), account_id="acct", name=spec.name, project=spec.project, backend="sagemaker",
        storage_mounts=list(spec.storage_mounts), labels=dict(spec.labels), spec=spec.model_dump(mode="json"),
        image={"requested": spec.image, "resolved": resolved}, created_at=now, updated_at=now,
    )


# ---- submit -------------------------------------------------------------------------------------


def test_submit_sends_everything_on_the_wire(backend: SageMakerBackend, fake: FakeSageMaker, bucket: str) -> None:
    spec = _spec(
        args=["--epochs", "3"], env={"BATCH_SIZE": "32"},
        compute={"accelerator": "H100", "accelerators_per_node": 8, "nodes": 2},
        storage_mounts=[{"source_uri": "s3://data-bucket/mnist", "read_only": True}],
        checkpointing={"enabled": True}, max_runtime="2h", spot={"enabled": True, "max_wait": "4h"},
        labels={"team": "research"},
    )
    job = _job(spec, resolved=DIGEST)
    submission = backend.submit(job)

    name = f"train-{job.id}-1"
    assert submission.native_id == name == backend.native_id_for(job)
    assert submission.cloud_job_identifier["job_arn"].endswith(f"training-job/{name}")
    [sent] = fake.calls("CreateTrainingJob")
    assert sent["TrainingJobName"] == name and sent["RoleArn"] == ROLE
    algorithm = sent["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == DIGEST
    assert algorithm["ContainerArguments"] == ["python", "train.py", "--epochs", "3"]
    assert algorithm["ContainerEntrypoint"][:2] == ["/bin/sh", "-c"]
    assert sent["ResourceConfig"]["InstanceType"] == "ml.p5.48xlarge"
    assert sent["ResourceConfig"]["InstanceCount"] == 2
    assert sent["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert sent["EnableManagedSpotTraining"] is True
    assert sent["CheckpointConfig"] == {
        "S3Uri": f"s3://{bucket}/train/{job.id}/checkpoints/", "LocalPath": "/opt/ml/checkpoints",
    }
    [channel] = sent["InputDataConfig"]
    assert channel["ChannelName"] == "mount0" and channel["InputMode"] == "FastFile"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == "s3://data-bucket/mnist"
    env = sent["Environment"]
    assert env["BATCH_SIZE"] == "32" and env["TRAIN_JOB_ID"] == job.id and env["TRAIN_ATTEMPT"] == "1"
    assert env["STORAGE_MOUNT_0_PATH"] == "/opt/ml/input/data/mount0"
    assert env["TRAIN_CHECKPOINT_DIR"] == "/opt/ml/checkpoints" and env["TRAIN_GPUS_PER_NODE"] == "8"
    assert {"Key": "team", "Value": "research"} in sent["Tags"]
    assert sent["OutputDataConfig"]["S3OutputPath"] == f"s3://{bucket}/train/{job.id}/output"


def test_a_retried_submit_meets_resource_in_use_and_returns_the_same_job(
    backend: SageMakerBackend, fake: FakeSageMaker
) -> None:
    job = _job(_spec())
    first = backend.submit(job)
    fake.advance(first.native_id, "InProgress", "Training")
    again = backend.submit(job)

    assert again.native_id == first.native_id
    assert again.cloud_job_identifier == first.cloud_job_identifier
    assert again.native_status == "InProgress/Training"
    assert list(fake.jobs) == [first.native_id]
    assert len(fake.calls("CreateTrainingJob")) == 2  # the second met ResourceInUse


def test_an_invalid_spec_is_refused_before_any_call(backend: SageMakerBackend, fake: FakeSageMaker) -> None:
    spec = _spec(storage_mounts=[{"source_uri": "gs://bucket/data", "read_only": True}])
    with pytest.raises(InvalidSpecError) as caught:
        backend.check_spec(spec)
    assert [e.field for e in caught.value.errors] == ["storage_mounts[0].source_uri"]
    assert fake.requests == []


# ---- errors at the boundary ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"), [(400, "ThrottlingException"), (500, "InternalFailure"), (503, "ServiceUnavailable")]
)
def test_throttling_and_server_errors_are_retryable(
    backend: SageMakerBackend, fake: FakeSageMaker, status: int, code: str
) -> None:
    fake.fail("CreateTrainingJob", status=status, code=code)
    with pytest.raises(UnavailableError) as caught:
        backend.submit(_job(_spec()))
    assert caught.value.retryable
    assert fake.jobs == {}


def test_a_refusal_is_not_retryable_and_keeps_the_aws_message(backend: SageMakerBackend, fake: FakeSageMaker) -> None:
    limit = "The account-level service limit is 0 Instances"
    fake.fail("CreateTrainingJob", code="ResourceLimitExceeded", message=limit)
    with pytest.raises(BackendError) as caught:
        backend.submit(_job(_spec()))
    assert not caught.value.retryable
    assert "account-level service limit" in caught.value.detail
    assert type(caught.value).__module__ == "core.errors"


def test_an_unreachable_endpoint_is_retryable(
    backend: SageMakerBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UnavailableError):
        backend.submit(_job(_spec()))


# ---- describe and cancel ------------------------------------------------------------------------


def test_describe_follows_a_scripted_progression(backend: SageMakerBackend, fake: FakeSageMaker) -> None:
    job = _job(_spec())
    job.native_id = backend.submit(job).native_id
    name = job.native_id

    seen = [backend.describe(job)]
    for status, secondary in [("InProgress", "Downloading"), ("InProgress", "Training"), ("InProgress", "Uploading")]:
        fake.advance(name, status, secondary)
        seen.append(backend.describe(job))
    fake.finish(name, "Completed")
    seen.append(backend.describe(job))

    assert [u.status for u in seen] == [
        Status.PENDING, Status.PENDING, Status.IN_PROGRESS, Status.IN_PROGRESS, Status.COMPLETED,
    ]
    assert seen[2].native_status == "InProgress/Training"
    assert all(u.attempt == 1 for u in seen)
    times = [u.event_time for u in seen]
    assert times == sorted(times) and len(set(times)) == len(times)


@pytest.mark.parametrize(
    ("status", "secondary", "reason", "expected"),
    [
        ("Failed", "Failed", "AlgorithmError: exit code 1", Status.FAILED),
        ("Stopped", "MaxRuntimeExceeded", None, Status.EXPIRED),
        ("Stopped", "MaxWaitTimeExceeded", None, Status.EXPIRED),
        ("Stopped", "Stopped", None, Status.CANCELED),
    ],
)
def test_describe_maps_the_ends(
    backend: SageMakerBackend, fake: FakeSageMaker, status: str, secondary: str, reason: str | None, expected: Status
) -> None:
    job = _job(_spec())
    job.native_id = backend.submit(job).native_id
    fake.finish(job.native_id, status, secondary, failure_reason=reason)
    update = backend.describe(job)
    assert update.status == expected
    if reason:
        assert update.reason == reason


def test_describe_of_a_missing_job_fails_it(backend: SageMakerBackend) -> None:
    update = backend.describe(_job(_spec()))
    assert update.status == Status.FAILED and "no training job" in (update.reason or "")


def test_cancel_stops_the_job_and_the_stopped_event_means_canceled(
    backend: SageMakerBackend, fake: FakeSageMaker
) -> None:
    job = _job(_spec())
    job.native_id = backend.submit(job).native_id
    fake.advance(job.native_id, "InProgress", "Training")

    backend.cancel(job)
    assert fake.calls("StopTrainingJob") == [{"TrainingJobName": job.native_id}]
    assert backend.describe(job).status == Status.IN_PROGRESS  # Stopping
    fake.finish(job.native_id, "Stopped")
    parsed = from_sagemaker_event(fake.event(job.native_id), "train")
    assert parsed is not None
    assert parsed[0] == job.native_id and parsed[1].status == Status.CANCELED

    backend.cancel(job)  # already stopped: a no-op
    backend.cancel(_job(_spec()))  # never created: a no-op


def test_cancel_of_a_finished_job_is_a_no_op(backend: SageMakerBackend, fake: FakeSageMaker) -> None:
    job = _job(_spec())
    job.native_id = backend.submit(job).native_id
    fake.finish(job.native_id, "Completed")
    backend.cancel(job)
    assert fake.jobs[job.native_id]["TrainingJobStatus"] == "Completed"


# ---- logs and checkpoints -----------------------------------------------------------------------


def _put_logs(endpoint: str, streams: dict[str, list[tuple[int, str]]]) -> None:
    import boto3

    logs = boto3.client("logs", endpoint_url=endpoint, **FAKE_AWS)
    try:
        logs.create_log_group(logGroupName=LOG_GROUP)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    for stream, events in streams.items():
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        logs.put_log_events(
            logGroupName=LOG_GROUP, logStreamName=stream,
            logEvents=[{"timestamp": t, "message": m} for t, m in events],
        )


def test_logs_of_two_hosts_are_merged_by_time_and_paged(backend: SageMakerBackend, aws_env: str) -> None:
    job = _job(_spec(compute={"nodes": 2}))
    job.native_id = backend.native_id_for(job)
    base = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp() * 1000)
    _put_logs(aws_env, {
        f"{job.native_id}/algo-1-1700000000": [(base, "a0"), (base + 20, "a2"), (base + 30, "a3"), (base + 30, "a4")],
        f"{job.native_id}/algo-2-1700000000": [(base + 10, "b1"), (base + 30, "b3"), (base + 40, "b5")],
        f"{job.native_id}0/algo-1-1700000000": [(base, "another job")],
    })

    lines, cursor, pages = [], None, 0
    while True:
        page = backend.logs(job, cursor=cursor, limit=2, since=None)
        pages += 1
        if not page.lines:
            break
        lines += page.lines
        cursor = page.next_cursor
    assert [line.message for line in lines] == ["a0", "b1", "a2", "a3", "a4", "b3", "b5"]
    assert [line.source for line in lines][:2] == ["algo-1", "algo-2"]
    assert pages == 5
    assert backend.logs(job, cursor=cursor, limit=10, since=None).lines == []  # a follower sees nothing new

    since = datetime.fromtimestamp((base + 30) / 1000, UTC)
    recent = backend.logs(job, cursor=None, limit=10, since=since)
    assert [line.message for line in recent.lines] == ["a3", "a4", "b3", "b5"]


def test_logs_before_any_stream_exists_are_empty(backend: SageMakerBackend) -> None:
    page = backend.logs(_job(_spec()), cursor=None, limit=10, since=None)
    assert page.lines == [] and page.next_cursor


def test_checkpoints_are_listed_from_the_checkpoint_prefix(
    backend: SageMakerBackend, bucket: str, aws_env: str
) -> None:
    import boto3

    job = _job(_spec(checkpointing={"enabled": True}))
    s3 = boto3.client("s3", endpoint_url=aws_env, **FAKE_AWS)
    prefix = f"train/{job.id}/checkpoints/"
    for key, size in [("step-100/model.pt", 10), ("step-100/optim.pt", 5), ("step-200/model.pt", 7), ("latest", 3)]:
        s3.put_object(Bucket=bucket, Key=prefix + key, Body=b"x" * size)
    s3.put_object(Bucket=bucket, Key=f"train/{job.id}/output/model.tar.gz", Body=b"not a checkpoint")

    found = {c.name: c for c in backend.checkpoints(job)}
    assert set(found) == {"step-100", "step-200", "latest"}
    assert found["step-100"].size_bytes == 15
    assert found["step-100"].uri == f"s3://{bucket}/{prefix}step-100/"
    assert found["latest"].uri == f"s3://{bucket}/{prefix}latest"
    assert backend.checkpoints(_job(_spec())) == []


# ---- with the service ---------------------------------------------------------------------------


def test_the_service_runs_a_job_to_completed_on_events(backend: SageMakerBackend, fake: FakeSageMaker) -> None:
    service = TrainService(InMemoryJobStore(), {"sagemaker": backend})
    job, created = service.submit("acct", _spec(compute={"accelerator": "A10G"}))
    assert created and job.status == Status.PENDING
    name = job.native_id
    assert name == f"train-{job.id}-1" and name in fake.jobs
    assert fake.calls("CreateTrainingJob")[0]["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"

    def deliver() -> None:
        parsed = from_sagemaker_event(fake.event(name), "train")
        assert parsed is not None
        service.apply_native_update("sagemaker", *parsed)

    fake.advance(name, "InProgress", "Training")
    deliver()
    assert service.get("acct", job.id).status == Status.IN_PROGRESS
    fake.finish(name, "Completed")
    deliver()
    deliver()  # a duplicate changes nothing
    done = service.get("acct", job.id)
    assert done.status == Status.COMPLETED and done.native_status == "Completed"
    assert done.ignored_updates == 1


def test_the_service_cancels_through_stop_training_job(backend: SageMakerBackend, fake: FakeSageMaker) -> None:
    service = TrainService(InMemoryJobStore(), {"sagemaker": backend})
    job, _ = service.submit("acct", _spec())
    fake.advance(job.native_id, "InProgress", "Training")
    service.cancel("acct", job.id)
    assert fake.jobs[job.native_id]["TrainingJobStatus"] == "Stopping"
    fake.finish(job.native_id, "Stopped")
    service.apply_update(service.get("acct", job.id), backend.describe(service.get("acct", job.id)))
    assert service.get("acct", job.id).status == Status.CANCELED


def test_a_throttled_submit_is_left_to_the_sweeper(backend: SageMakerBackend, fake: FakeSageMaker) -> None:
    service = TrainService(InMemoryJobStore(), {"sagemaker": backend}, submit_grace=timedelta(0))
    fake.fail("CreateTrainingJob")
    job, _ = service.submit("acct", _spec())
    assert job.status == Status.PENDING and not job.cloud_job_identifier
    service.sweep()
    job = service.get("acct", job.id)
    assert job.cloud_job_identifier["job_name"] == job.native_id and job.native_id in fake.jobs
