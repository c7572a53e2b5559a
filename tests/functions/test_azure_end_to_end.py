"""Issue 5's local end-to-end: everything through the Azure functions in-process, found by the
function indexer, with the real wiring (SQLite, and Azure ML through the real MLClient to our
fake endpoint). A job submitted through the HTTP function is moved to Completed by the fake;
Event Grid events reach the event function, which re-reads the job, and the job reads COMPLETED
through the HTTP function. With the events lost, the timer's sweeper gets it there."""

from __future__ import annotations

import pytest

from tests.functions.azure_deployment import (
    RUN_COMPLETED,
    AzureDeployment,
    azure_deployment_fixture,  # noqa: F401
    run_event,
    timer,
)

# azure-ai-ml's schemas use marshmallow APIs that marshmallow 3.2x deprecates: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_submit_events_and_read_completed_through_the_functions(azure_deployment: AzureDeployment) -> None:
    deployment = azure_deployment
    job_id, name = deployment.submit(max_runtime="2h", checkpointing={"enabled": True})
    (put,) = deployment.azureml.calls("PUT", f"/jobs/{name}")
    assert put.body["properties"]["limits"]["timeout"] == "PT2H"
    assert deployment.identity.requests  # the managed identity's token reached the real client

    deployment.azureml.advance(name, "Running")
    deployment.deliver(run_event(name, "running"))
    assert deployment.api("GET", f"/v1/jobs/{job_id}")[1]["status"] == "IN_PROGRESS"

    deployment.azureml.advance(name, "Completed")
    completed = run_event(name, None, kind=RUN_COMPLETED)
    deployment.deliver(completed)
    deployment.deliver(completed)  # Event Grid delivers at least once

    status, job = deployment.api("GET", f"/v1/jobs/{job_id}")
    assert status == 200 and job["status"] == "COMPLETED" and job["native_status"] == "Completed"
    status, events = deployment.api("GET", f"/v1/jobs/{job_id}/events")
    transitions = [e["status"] for e in events["events"] if e["kind"] == "transition"]
    assert transitions == ["PENDING", "IN_PROGRESS", "COMPLETED"]
    assert events["ignored_updates"] == 1


def test_lost_events_are_reconciled_by_the_timer_sweeper(
    azure_deployment: AzureDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = azure_deployment
    monkeypatch.setenv("TRAIN_STALE_AFTER_SECONDS", "0")
    job_id, name = deployment.submit()
    deployment.azureml.advance(name, "Running")
    deployment.azureml.advance(name, "Completed")  # no event reaches the event function

    assert deployment.api("GET", f"/v1/jobs/{job_id}")[1]["status"] == "PENDING"
    deployment.functions["sweeper"](timer())

    status, job = deployment.api("GET", f"/v1/jobs/{job_id}")
    assert status == 200 and job["status"] == "COMPLETED"
    stored = deployment.store.get("acct-a", job_id)
    assert stored is not None and stored.native_status == "Completed"
