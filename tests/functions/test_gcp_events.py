"""The ``vertex_events`` Cloud Function: log-sink CloudEvents, in both CloudEvents modes, through
the framework's test client. The entry is a hint; the job's state comes from GetCustomJob on the
fake Vertex AI, so duplicates and reordered deliveries converge on the real state. Bad input is
acknowledged (200) and changes nothing; an unavailable dependency answers 500 so Pub/Sub redelivers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from core import hosts
from core.bootstrap import Wiring, build_backend
from core.config import Settings
from core.errors import TrainError
from core.lifecycle import Status
from core.service import TrainService
from core.stores.firestore import FirestoreJobStore
from tests.firestore_emulator import PROJECT, emulator_client
from tests.functions.gcp_deployment import (
    FIRST_VERTEX_JOB,
    GcpDeployment,
    app,
    binary_mode,
    gcp,
    gcp_variant,
    log_entry,
    pubsub_event,
    spec,
    structured_mode,
)
from tests.functions.shapes import shared
from tests.servers import free_port

__all__ = ["gcp"]


def submit(gcp: GcpDeployment) -> tuple[str, str]:
    created = app("http").post("/v1/jobs", json=spec(), headers=gcp.auth())
    assert created.status_code == 201, created.get_data(as_text=True)
    job = created.get_json()
    return job["id"], job["cloud_job_identifier"]["job_name"]


def deliver(client: Any, event: dict[str, Any], *, binary: bool = True) -> int:
    return int(post(client, event, binary=binary).status_code)


def post(client: Any, event: dict[str, Any], *, binary: bool = True) -> Any:
    headers, body = binary_mode(event) if binary else structured_mode(event)
    return client.post("/", data=body, headers=headers)


def raised(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The retryable errors the function raised (Flask logs each with its exception)."""
    return [str(r.exc_info[1]) for r in caplog.records
            if r.exc_info and isinstance(r.exc_info[1], TrainError) and r.exc_info[1].retryable]


def status_of(gcp: GcpDeployment, job_id: str) -> tuple[Status, list[str], int]:
    job = gcp.store.get("acct-a", job_id)
    assert job is not None
    return job.status, [e.status for e in job.events if e.kind == "transition"], job.ignored_updates


def test_captured_log_sink_event_completes_the_job(gcp: GcpDeployment) -> None:
    job_id, name = submit(gcp)
    assert name.endswith(f"/customJobs/{FIRST_VERTEX_JOB}")  # the job the captured entry is about
    gcp.vertex.set_state(name, "JOB_STATE_RUNNING")
    gcp.vertex.set_state(name, "JOB_STATE_SUCCEEDED")
    client = app("vertex_events")
    captured = shared("pubsub_cloudevent_vertex_log_entry.json")
    assert deliver(client, captured, binary=False) == 200
    status, transitions, _ = status_of(gcp, job_id)
    assert status == Status.COMPLETED and transitions == ["PENDING", "IN_PROGRESS", "COMPLETED"]
    job = gcp.store.get("acct-a", job_id)
    assert job is not None and job.native_status == "JOB_STATE_SUCCEEDED"
    assert job.native_time is not None and job.native_time.microsecond != 0  # from updateTime's 9 digits

    assert deliver(client, captured) == 200  # Pub/Sub delivers at least once
    status, transitions, ignored = status_of(gcp, job_id)
    assert status == Status.COMPLETED and len(transitions) == 3 and ignored == 1


def test_reordered_events_follow_the_real_state(gcp: GcpDeployment) -> None:
    job_id, name = submit(gcp)
    client = app("vertex_events")
    gcp.vertex.set_state(name, "JOB_STATE_RUNNING")
    running = pubsub_event(log_entry(state="RUNNING", text="Job is running."))
    gcp.vertex.set_state(name, "JOB_STATE_SUCCEEDED")
    succeeded = pubsub_event(log_entry(state="SUCCEEDED", text_payload=True))
    # The SUCCEEDED entry arrives first, the RUNNING one late: each re-reads the job.
    assert deliver(client, succeeded) == 200
    assert status_of(gcp, job_id)[0] == Status.COMPLETED
    assert deliver(client, running) == 200
    status, transitions, _ = status_of(gcp, job_id)
    assert status == Status.COMPLETED and transitions == ["PENDING", "IN_PROGRESS", "COMPLETED"]


def test_running_then_a_newer_update_time_refreshes(gcp: GcpDeployment) -> None:
    job_id, name = submit(gcp)
    client = app("vertex_events")
    gcp.vertex.set_state(name, "JOB_STATE_RUNNING")
    assert deliver(client, pubsub_event(log_entry(state="RUNNING"))) == 200
    first = gcp.store.get("acct-a", job_id)
    gcp.vertex.set_state(name, "JOB_STATE_CANCELLING")  # still IN_PROGRESS, later updateTime
    assert deliver(client, pubsub_event(log_entry(state="CANCELLING"))) == 200
    later = gcp.store.get("acct-a", job_id)
    assert first is not None and later is not None and first.native_time is not None
    assert later.status == Status.IN_PROGRESS and later.native_status == "JOB_STATE_CANCELLING"
    assert later.native_time is not None and later.native_time > first.native_time


@pytest.mark.parametrize("event", [
    pytest.param(lambda: shared("pubsub_cloudevent_messagepublished_reference.json"), id="not-json"),
    pytest.param(lambda: pubsub_event(None, raw=b"\xff\xfe not base64 json"), id="undecodable"),
    pytest.param(lambda: pubsub_event([1, 2]), id="json-not-object"),
    pytest.param(lambda: pubsub_event(gcp_variant("gcp_storage_notification.json")), id="not-a-log-entry"),
    pytest.param(lambda: pubsub_event(gcp_variant("gcp_log_entry_cloud_run.json")), id="other-resource"),
    pytest.param(lambda: pubsub_event(log_entry("4000000000000000001")), id="not-our-job"),
    pytest.param(lambda: pubsub_event(log_entry("../../etc")), id="bad-job-id"),
    pytest.param(lambda: gcp_variant("gcp_audit_log_cloudevent.json"), id="not-pubsub"),
])
def test_bad_input_is_acknowledged_and_changes_nothing(gcp: GcpDeployment, event: Any) -> None:
    job_id, name = submit(gcp)
    gcp.vertex.set_state(name, "JOB_STATE_RUNNING")
    reads = len([r for r in gcp.vertex.requests if r.method == "GET"])
    assert deliver(app("vertex_events"), event()) == 200
    assert status_of(gcp, job_id) == (Status.PENDING, ["PENDING"], 0)
    assert len([r for r in gcp.vertex.requests if r.method == "GET"]) == reads  # no GetCustomJob for them


def test_vertex_unavailable_answers_500_then_the_redelivery_applies(
    gcp: GcpDeployment, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, name = submit(gcp)
    gcp.vertex.set_state(name, "JOB_STATE_SUCCEEDED")
    client = app("vertex_events")
    event = pubsub_event(log_entry())
    gcp.vertex.fail("get", status=503, times=100)
    assert deliver(client, event) == 500  # Pub/Sub redelivers
    assert raised(caplog) == ["Vertex AI is unavailable or throttling (503); retry later"]
    assert status_of(gcp, job_id)[0] == Status.PENDING
    gcp.vertex._failures.clear()
    assert deliver(client, event) == 200
    assert status_of(gcp, job_id)[0] == Status.COMPLETED


def test_vertex_refusal_is_dropped(gcp: GcpDeployment) -> None:
    job_id, name = submit(gcp)
    gcp.vertex.set_state(name, "JOB_STATE_SUCCEEDED")
    gcp.vertex.fail("get", status=403, times=1)  # not retryable: redelivering fails the same way
    assert deliver(app("vertex_events"), pubsub_event(log_entry())) == 200
    assert status_of(gcp, job_id)[0] == Status.PENDING


def test_firestore_unavailable_answers_500(gcp: GcpDeployment, caplog: pytest.LogCaptureFixture) -> None:
    submit(gcp)
    settings = Settings()
    dead = emulator_client(f"127.0.0.1:{free_port()}", PROJECT)
    store = FirestoreJobStore(gcp.prefix, client=dead, timeout=1.0)
    backends = {"vertex-ai": build_backend("vertex-ai", settings)}
    service = TrainService(store, backends, stale_after=timedelta(seconds=0))
    hosts.set_wiring_for_tests(Wiring(settings, store, store, backends, service))
    try:
        assert deliver(app("vertex_events"), pubsub_event(log_entry())) == 500
        (error,) = raised(caplog)
        assert error.startswith("Firestore ")  # unreachable: UnavailableError, retryable
    finally:
        dead.close()
