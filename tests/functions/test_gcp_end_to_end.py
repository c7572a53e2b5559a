"""Issue 4's local end-to-end: the GCP functions as real ``functions-framework`` processes on
127.0.0.1, Firestore in the emulator, Vertex AI through the real JobServiceClient to our fake
endpoint. A portable spec submitted through ``http`` runs on ``vertex-ai``; the fake moves the
custom job to SUCCEEDED; the captured log-sink CloudEvent (and a duplicate, and a late RUNNING
entry) reaches ``vertex_events``; the job reads COMPLETED through ``http``. With the event lost,
the sweeper gets it there."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.functions.gcp_deployment import (
    FIRST_VERTEX_JOB,
    FunctionsFramework,
    GcpDeployment,
    app,
    binary_mode,
    gcp,
    log_entry,
    pubsub_event,
    spec,
    structured_mode,
)
from tests.functions.shapes import shared

__all__ = ["gcp"]


def call(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, data = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, data = error.code, error.read()
    try:
        return status, json.loads(data) if data else None
    except ValueError:
        return status, data.decode(errors="replace")


def test_submit_event_and_read_completed_through_real_functions(gcp: GcpDeployment) -> None:
    json_auth = {**gcp.auth(), "Content-Type": "application/json"}
    with FunctionsFramework("http", gcp.env) as http, FunctionsFramework("vertex_events", gcp.env) as events:
        body = json.dumps(spec(max_runtime="2h", checkpointing={"enabled": True})).encode()
        status, job = call(f"{http.url}/v1/jobs", "POST", body, json_auth)
        assert status == 201, http.output()[-2000:]
        name = job["cloud_job_identifier"]["job_name"]
        assert name == gcp.vertex.name(FIRST_VERTEX_JOB)
        (sent,) = gcp.vertex.created()
        assert sent["jobSpec"]["scheduling"]["timeout"] == "7200s"
        assert sent["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"].startswith("gs://train-staging-test/")

        gcp.vertex.set_state(name, "JOB_STATE_RUNNING")
        late_running = pubsub_event(log_entry(state="RUNNING"))
        gcp.vertex.set_state(name, "JOB_STATE_SUCCEEDED")
        captured = shared("pubsub_cloudevent_vertex_log_entry.json")
        for event, mode in ((captured, binary_mode), (captured, structured_mode), (late_running, binary_mode)):
            headers, data = mode(event)
            status, _ = call(events.url, "POST", data, headers)
            assert status == 200, events.output()[-2000:]

        status, done = call(f"{http.url}/v1/jobs/{job['id']}", headers=gcp.auth())
        assert status == 200 and done["status"] == "COMPLETED" and done["native_status"] == "JOB_STATE_SUCCEEDED"
        status, history = call(f"{http.url}/v1/jobs/{job['id']}/events", headers=gcp.auth())
        assert [e["status"] for e in history["events"] if e["kind"] == "transition"] == [
            "PENDING", "IN_PROGRESS", "COMPLETED"]
        assert history["ignored_updates"] == 2  # the duplicate and the late RUNNING entry


def test_lost_event_is_reconciled_by_the_sweeper(gcp: GcpDeployment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAIN_STALE_AFTER_SECONDS", "0")
    http = app("http")
    created = http.post("/v1/jobs", json=spec(), headers=gcp.auth())
    assert created.status_code == 201
    job = created.get_json()
    gcp.vertex.set_state(job["cloud_job_identifier"]["job_name"], "JOB_STATE_RUNNING")
    gcp.vertex.set_state(job["cloud_job_identifier"]["job_name"], "JOB_STATE_SUCCEEDED")  # no event arrives

    assert http.get(f"/v1/jobs/{job['id']}", headers=gcp.auth()).get_json()["status"] == "PENDING"
    report = app("sweeper").post("/", headers={"User-Agent": "Google-Cloud-Scheduler"}).get_json()
    assert report["reconciled"] == 1 and report["errors"] == 0

    done = http.get(f"/v1/jobs/{job['id']}", headers=gcp.auth()).get_json()
    assert done["status"] == "COMPLETED" and done["native_status"] == "JOB_STATE_SUCCEEDED"
