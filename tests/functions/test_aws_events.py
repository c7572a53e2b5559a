"""functions/aws/sagemaker_events.py: EventBridge "SageMaker Training Job State Change" events,
from the published sample and variants, applied exactly once to jobs submitted through the HTTP
function, over the real wiring (DynamoDB in moto, SageMaker through our fake endpoint)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from core import hosts
from core.bootstrap import Wiring, build
from core.errors import TrainError, UnavailableError
from core.lifecycle import Status
from core.model import JobRecord
from core.service import TrainService
from functions.aws import http, sagemaker_events
from tests.functions.conftest import Deployment
from tests.functions.shapes import auth, http_v2, response_json, sagemaker_event, shared, spec, variant

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in epoch milliseconds


def submit(deployment: Deployment) -> tuple[str, str]:
    """Submit through the HTTP function; returns the job id and its SageMaker training job name."""
    headers = {"content-type": "application/json", **auth(deployment.key, "acct-a")}
    job = response_json(http.handler(http_v2("POST", "/v1/jobs", spec(), headers=headers), None))
    return job["id"], job["cloud_job_identifier"]["job_name"]


def deliver(event: Any) -> str:
    return str(sagemaker_events.handler(event, None)["outcome"])


def stored(deployment: Deployment, job_id: str) -> JobRecord:
    job = deployment.store.get("acct-a", job_id)
    assert job is not None
    return job


def test_progression_with_a_duplicate_is_applied_exactly(deployment: Deployment) -> None:
    job_id, name = submit(deployment)
    training = sagemaker_event(name, "InProgress", "Training", modified_ms=T0 + 2000)
    outcomes = [
        deliver(sagemaker_event(name, "InProgress", "Starting", modified_ms=T0 + 1000)),
        deliver(training),
        deliver(dict(training)),  # SageMaker and EventBridge both may send an event twice
        deliver(sagemaker_event(name, "Completed", modified_ms=T0 + 3000)),
    ]

    assert outcomes == ["REFRESH", "TRANSITION", "DUPLICATE", "TRANSITION"]
    job = stored(deployment, job_id)  # read back through our own client: the writes are durable
    assert (job.status, job.native_status) == (Status.COMPLETED, "Completed")
    assert job.started_at is not None and int(job.started_at.timestamp() * 1000) == T0 + 2000
    assert job.ended_at is not None and int(job.ended_at.timestamp() * 1000) == T0 + 3000
    transitions = [e.status for e in job.events if e.kind == "transition"]
    assert transitions == [Status.PENDING, Status.IN_PROGRESS, Status.COMPLETED]
    assert job.ignored_updates == 1


def test_events_from_the_fake_endpoint_drive_the_job(deployment: Deployment) -> None:
    job_id, name = submit(deployment)
    fake = deployment.sagemaker
    fake.advance(name, "InProgress", "Training")
    assert deliver(fake.event(name)) == "TRANSITION"
    fake.finish(name, "Failed", failure_reason="AlgorithmError: exit code 1")
    assert deliver(fake.event(name)) == "TRANSITION"

    job = stored(deployment, job_id)
    assert job.status == Status.FAILED and job.status_reason == "AlgorithmError: exit code 1"


def test_reordered_events_cannot_regress_a_job(deployment: Deployment) -> None:
    job_id, name = submit(deployment)
    completed = sagemaker_event(name, "Completed", modified_ms=T0 + 3000)
    late_training = sagemaker_event(name, "InProgress", "Training", modified_ms=T0 + 2000)

    assert [deliver(completed), deliver(late_training)] == ["TRANSITION", "TERMINAL"]
    job = stored(deployment, job_id)
    assert job.status == Status.COMPLETED  # reached through IN_PROGRESS, though its event came late
    assert [e.status for e in job.events if e.kind == "transition"] == [
        Status.PENDING, Status.IN_PROGRESS, Status.COMPLETED,
    ]


def test_last_modified_time_orders_events_within_a_state(deployment: Deployment) -> None:
    job_id, name = submit(deployment)
    outcomes = [
        deliver(sagemaker_event(name, "InProgress", "Training", modified_ms=T0 + 2000)),
        deliver(sagemaker_event(name, "InProgress", "Downloading", modified_ms=T0 + 1000)),  # older, and behind
        deliver(sagemaker_event(name, "InProgress", "Uploading", modified_ms=T0 + 3000)),
        deliver(sagemaker_event(name, "InProgress", "Training", modified_ms=T0 + 2500)),  # older than Uploading
    ]
    assert outcomes == ["TRANSITION", "REGRESSION", "REFRESH", "STALE"]
    job = stored(deployment, job_id)
    assert (job.status, job.native_status) == (Status.IN_PROGRESS, "InProgress/Uploading")


def test_stopped_by_max_runtime_is_expired(deployment: Deployment) -> None:
    job_id, name = submit(deployment)
    deliver(sagemaker_event(name, "InProgress", "Training", modified_ms=T0 + 1000))
    assert deliver(sagemaker_event(name, "Stopped", "MaxRuntimeExceeded", modified_ms=T0 + 2000)) == "TRANSITION"

    job = stored(deployment, job_id)
    assert job.status == Status.EXPIRED and job.status_reason == "max_runtime exceeded"


def test_stopped_after_a_cancel_is_canceled(deployment: Deployment) -> None:
    job_id, name = submit(deployment)
    fake = deployment.sagemaker
    fake.advance(name, "InProgress", "Training")
    deliver(fake.event(name))
    cancel = http_v2("POST", f"/v1/jobs/{job_id}/cancel", headers=auth(deployment.key, "acct-a"))
    assert http.handler(cancel, None)["statusCode"] == 202
    assert deliver(fake.event(name)) == "REFRESH"  # Stopping: still running until SageMaker confirms
    fake.finish(name, "Stopped")
    assert deliver(fake.event(name)) == "TRANSITION"

    job = stored(deployment, job_id)
    assert job.status == Status.CANCELED and job.cancel_requested_at is not None


def test_unknown_training_jobs_are_ignored(deployment: Deployment) -> None:
    job_id, name = submit(deployment)
    unknown = name.replace(job_id, "01zzzzzzzzzzzzzzzzzzzzzzzz")
    other_attempt = name.removesuffix("-1") + "-2"

    assert deliver(sagemaker_event(unknown, "Completed", modified_ms=T0)) == hosts.UNKNOWN_JOB
    assert deliver(sagemaker_event(other_attempt, "Completed", modified_ms=T0)) == hosts.UNKNOWN_JOB
    assert stored(deployment, job_id).status == Status.PENDING


def _without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return event


def _with(event: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    event[key] = value
    return event


POISON = {
    "published sample (not our job name prefix)": lambda: shared("sagemaker_state_change_completed.json"),
    "endpoint state change": lambda: variant("sagemaker_endpoint_state_change.json"),
    "detail is a string": lambda: variant("sagemaker_state_change_detail_not_object.json"),
    "no detail": lambda: _without(sagemaker_event("train-x-1", "Completed", modified_ms=T0), "detail"),
    "no status": lambda: _without(sagemaker_event("train-x-1", "Completed", modified_ms=T0), "detail",
                                  "TrainingJobStatus"),
    "no usable time": lambda: _with(
        _with(sagemaker_event("train-x-1", "Completed", modified_ms=T0), "time", "yesterday"), "detail",
        {**sagemaker_event("train-x-1", "Completed", modified_ms=T0)["detail"], "LastModifiedTime": "soon"},
    ),
    "another source": lambda: _with(sagemaker_event("train-x-1", "Completed", modified_ms=T0), "source", "aws.batch"),
    "scheduled event": lambda: shared("eventbridge_scheduled.json"),
    "not an object": lambda: ["train-x-1", "Completed"],
}


@pytest.mark.parametrize("case", list(POISON))
def test_malformed_and_foreign_events_are_logged_once_and_dropped(
    deployment: Deployment, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    job_id, _ = submit(deployment)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="train"):
        assert deliver(POISON[case]()) == hosts.DROPPED
    dropped = [r for r in caplog.records if r.name == "train.functions" and r.levelno >= logging.WARNING]
    assert len(dropped) == 1 and "dropped" in dropped[0].getMessage()
    assert stored(deployment, job_id).status == Status.PENDING


class ThrottledWrites:
    """The deployment's real store, except that writes fail as DynamoDB throttling does while
    ``throttled`` is set (and reads too with ``reads`` set)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.throttled = True
        self.reads = False

    def find_by_native_id(self, backend: str, native_id: str) -> JobRecord | None:
        if self.throttled and self.reads:
            raise UnavailableError("DynamoDB is unavailable or throttling, retry later: ThrottlingException")
        found: JobRecord | None = self._store.find_by_native_id(backend, native_id)
        return found

    def update(self, job: JobRecord, *, expected_version: int, expected_status: Status) -> JobRecord:
        if self.throttled:
            raise UnavailableError("DynamoDB is unavailable or throttling, retry later: ProvisionedThroughputExceeded")
        updated: JobRecord = self._store.update(job, expected_version=expected_version, expected_status=expected_status)
        return updated

    def get(self, account_id: str, job_id: str) -> JobRecord | None:
        found: JobRecord | None = self._store.get(account_id, job_id)
        return found


class BrokenStore:
    """A store failing with an error no retry can fix."""

    def find_by_native_id(self, backend: str, native_id: str) -> JobRecord | None:
        raise TrainError("DynamoDB ValidationException: One or more parameter values were invalid")


def _use_store(store: Any) -> None:
    real = build()
    service = TrainService(store, real.backends)
    hosts.set_wiring_for_tests(Wiring(real.settings, store, real.keys, real.backends, service))


@pytest.mark.parametrize("reads", [False, True])
def test_store_throttling_raises_so_the_event_is_delivered_again(deployment: Deployment, reads: bool) -> None:
    job_id, name = submit(deployment)
    throttled = ThrottledWrites(deployment.store)
    throttled.reads = reads
    _use_store(throttled)
    event = sagemaker_event(name, "InProgress", "Training", modified_ms=T0 + 1000)

    with pytest.raises(UnavailableError):
        sagemaker_events.handler(event, None)
    assert stored(deployment, job_id).status == Status.PENDING  # nothing acknowledged, nothing written

    throttled.throttled = False
    assert deliver(event) == "TRANSITION"  # the redelivery
    assert stored(deployment, job_id).status == Status.IN_PROGRESS


def test_store_errors_no_retry_can_fix_are_dropped(deployment: Deployment, caplog: pytest.LogCaptureFixture) -> None:
    _, name = submit(deployment)
    _use_store(BrokenStore())
    with caplog.at_level(logging.INFO, logger="train"):
        assert deliver(sagemaker_event(name, "Completed", modified_ms=T0)) == hosts.DROPPED
    assert any(r.levelno == logging.ERROR and "dropped" in r.getMessage() for r in caplog.records)
