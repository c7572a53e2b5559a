"""Preemption recovery on AWS through the Lambda handlers (SPEC §6): a managed-spot training job
reports SecondaryStatus Interrupted through EventBridge; the event function resubmits the job as
attempt 2, a second training job restoring the same checkpoint prefix, and stops the first; the
first job's late events are dropped; attempt 2 completes, and the signed webhook reports it."""

from __future__ import annotations

from typing import Any

import pytest

from functions.aws import http, sagemaker_events
from tests.functions.conftest import OUTPUT, Deployment
from tests.functions.shapes import auth, http_v2, response_json, spec
from tests.webhook_receiver import WebhookReceiver

SECRET = "aws-preemption-webhook-secret"


def api(deployment: Deployment, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = auth(deployment.key, "acct-a")
    if body is not None:
        headers["content-type"] = "application/json"
    response = http.handler(http_v2(method, path, body, headers=headers), None)
    return response["statusCode"], response_json(response)


def test_an_interrupted_spot_job_is_resubmitted_from_its_checkpoints_and_completes(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAIN_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("TRAIN_WEBHOOK_ALLOW_PRIVATE", "true")  # the receiver is on 127.0.0.1
    fake = deployment.sagemaker
    with WebhookReceiver(SECRET.encode()) as receiver:
        status, job = api(deployment, "POST", "/v1/jobs", spec(
            max_runtime="2h", spot={"enabled": True}, checkpointing={"enabled": True},
            retries={"on_preemption": 1}, notify={"url": receiver.url, "on": ["IN_PROGRESS", "COMPLETED"]},
        ))
        assert status == 201, job
        job_id, first = job["id"], job["cloud_job_identifier"]["job_name"]

        fake.advance(first, "InProgress", "Training")
        assert sagemaker_events.handler(fake.event(first), None) == {"outcome": "TRANSITION"}
        fake.advance(first, "InProgress", "Interrupted")
        interrupted = fake.event(first)
        assert sagemaker_events.handler(interrupted, None) == {"outcome": "PREEMPTED"}

        status, job = api(deployment, "GET", f"/v1/jobs/{job_id}")
        second = job["cloud_job_identifier"]["job_name"]
        assert (job["status"], job["attempt"], second) == ("IN_PROGRESS", 2, f"train-{job_id}-2")
        created = fake.calls("CreateTrainingJob")
        assert [c["TrainingJobName"] for c in created] == [first, second]
        checkpoint = {"S3Uri": f"{OUTPUT}/{job_id}/checkpoints/", "LocalPath": "/opt/ml/checkpoints"}
        assert created[0]["CheckpointConfig"] == created[1]["CheckpointConfig"] == checkpoint
        assert created[1]["Environment"]["TRAIN_ATTEMPT"] == "2"
        assert created[1]["Environment"]["TRAIN_LOAD_CHECKPOINT_DIR"] == "/opt/ml/checkpoints"
        assert "TRAIN_LOAD_CHECKPOINT_DIR" not in created[0]["Environment"]
        assert "RetryStrategy" not in created[1] and created[1]["EnableManagedSpotTraining"] is True
        assert [c["TrainingJobName"] for c in fake.calls("StopTrainingJob")] == [first]  # no double run

        # the first job's events, late or redelivered: no job runs as it any more
        assert sagemaker_events.handler(interrupted, None) == {"outcome": "UNKNOWN_JOB"}
        fake.finish(first, "Stopped", "Stopped")
        assert sagemaker_events.handler(fake.event(first), None) == {"outcome": "UNKNOWN_JOB"}

        fake.advance(second, "InProgress", "Training")
        assert sagemaker_events.handler(fake.event(second), None) == {"outcome": "REFRESH"}
        fake.finish(second, "Completed")
        assert sagemaker_events.handler(fake.event(second), None) == {"outcome": "TRANSITION"}

        status, job = api(deployment, "GET", f"/v1/jobs/{job_id}")
        assert (job["status"], job["attempt"], job["native_status"]) == ("COMPLETED", 2, "Completed")
        status, events = api(deployment, "GET", f"/v1/jobs/{job_id}/events")
        notes = [e["reason"] for e in events["events"] if e["kind"] == "note"]
        assert "preempted: resubmitting attempt 2" in notes
        assert [e["status"] for e in events["events"] if e["kind"] == "transition"] == [
            "PENDING", "IN_PROGRESS", "COMPLETED"
        ]
        assert len(fake.calls("CreateTrainingJob")) == 2

        sent = sorted((p["status"], p["attempt"]) for p in receiver.unique.values())
        assert sent == [("COMPLETED", 2), ("IN_PROGRESS", 1)] and receiver.bad_signatures == 0
        stored = deployment.store.get("acct-a", job_id)
        assert stored is not None and stored.outbox == [] and SECRET not in stored.model_dump_json()
