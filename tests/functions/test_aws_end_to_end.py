"""Issue 3's local end-to-end: everything through the Lambda handlers in-process, DynamoDB in
moto, SageMaker through the real boto3 client to our fake endpoint. A job submitted through the
HTTP function is driven Training → Completed by EventBridge events fed to the event function and
read back COMPLETED through the HTTP function; with the events lost, the sweeper gets it there."""

from __future__ import annotations

from typing import Any

import pytest

from functions.aws import http, sagemaker_events, sweeper
from tests.functions.conftest import Deployment
from tests.functions.shapes import auth, http_v2, response_json, shared, spec


def api(deployment: Deployment, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = auth(deployment.key, "acct-a")
    if body is not None:
        headers["content-type"] = "application/json"
    response = http.handler(http_v2(method, path, body, headers=headers), None)
    return response["statusCode"], response_json(response)


def submit(deployment: Deployment) -> tuple[str, str]:
    status, job = api(deployment, "POST", "/v1/jobs", spec(max_runtime="2h", checkpointing={"enabled": True}))
    assert status == 201, job
    assert job["status"] == "PENDING"
    return job["id"], job["cloud_job_identifier"]["job_name"]


def test_submit_events_and_read_completed_through_the_functions(deployment: Deployment) -> None:
    job_id, name = submit(deployment)
    (create,) = deployment.sagemaker.calls("CreateTrainingJob")
    assert create["StoppingCondition"]["MaxRuntimeInSeconds"] == 7200
    assert create["AlgorithmSpecification"]["TrainingImage"].endswith("@sha256:" + "ab" * 32)

    deployment.sagemaker.advance(name, "InProgress", "Training")
    assert sagemaker_events.handler(deployment.sagemaker.event(name), None) == {"outcome": "TRANSITION"}
    assert api(deployment, "GET", f"/v1/jobs/{job_id}")[1]["status"] == "IN_PROGRESS"

    deployment.sagemaker.finish(name, "Completed")
    completed = deployment.sagemaker.event(name)
    assert sagemaker_events.handler(completed, None) == {"outcome": "TRANSITION"}
    assert sagemaker_events.handler(completed, None)["outcome"] != "TRANSITION"  # a redelivery changes nothing

    status, job = api(deployment, "GET", f"/v1/jobs/{job_id}")
    assert status == 200 and job["status"] == "COMPLETED" and job["native_status"] == "Completed"
    status, events = api(deployment, "GET", f"/v1/jobs/{job_id}/events")
    transitions = [e["status"] for e in events["events"] if e["kind"] == "transition"]
    assert transitions == ["PENDING", "IN_PROGRESS", "COMPLETED"]
    assert events["ignored_updates"] == 1


def test_lost_events_are_reconciled_by_the_sweeper(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAIN_STALE_AFTER_SECONDS", "0")
    job_id, name = submit(deployment)
    deployment.sagemaker.advance(name, "InProgress", "Training")
    deployment.sagemaker.finish(name, "Completed")  # no event reaches the event function

    assert api(deployment, "GET", f"/v1/jobs/{job_id}")[1]["status"] == "PENDING"
    report = sweeper.handler(shared("eventbridge_scheduled.json"), None)
    assert report["reconciled"] == 1 and report["errors"] == 0

    status, job = api(deployment, "GET", f"/v1/jobs/{job_id}")
    assert status == 200 and job["status"] == "COMPLETED"
