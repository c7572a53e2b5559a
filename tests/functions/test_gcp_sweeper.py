"""The ``sweeper`` (Cloud Scheduler by HTTP POST) and ``sweeper_pubsub`` (Pub/Sub CloudEvent)
Cloud Functions over the real wiring: a job whose Vertex AI job ended without an event reaching
us is reconciled by either trigger; a store outage fails the invocation so the scheduler retries."""

from __future__ import annotations

import json
import urllib.request

import pytest

from core import hosts
from core.bootstrap import Wiring, build_backend
from core.config import Settings
from core.lifecycle import Status
from core.service import TrainService
from core.stores.firestore import FirestoreJobStore
from tests.firestore_emulator import PROJECT, emulator_client
from tests.functions.gcp_deployment import (
    FunctionsFramework,
    GcpDeployment,
    app,
    binary_mode,
    gcp,
    gcp_variant,
    spec,
    structured_mode,
)
from tests.servers import free_port

__all__ = ["gcp"]
SCHEDULER = {"User-Agent": "Google-Cloud-Scheduler", "Content-Type": "application/octet-stream"}


def finished_job(gcp: GcpDeployment, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TRAIN_STALE_AFTER_SECONDS", "0")
    job = app("http").post("/v1/jobs", json=spec(), headers=gcp.auth()).get_json()
    gcp.vertex.set_state(job["cloud_job_identifier"]["job_name"], "JOB_STATE_SUCCEEDED")
    return str(job["id"])


def status(gcp: GcpDeployment, job_id: str) -> Status:
    job = gcp.store.get("acct-a", job_id)
    assert job is not None
    return job.status


def test_scheduler_http_post_reconciles(gcp: GcpDeployment, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = finished_job(gcp, monkeypatch)
    response = app("sweeper").post("/", data=b"sweep", headers=SCHEDULER)
    assert response.status_code == 200 and response.is_json
    report = response.get_json()
    assert report["trigger"] == "cloud-scheduler"
    assert (report["scanned"], report["reconciled"], report["errors"], report["changed"]) == (1, 1, 0, 1)
    assert status(gcp, job_id) == Status.COMPLETED


def test_pubsub_cloud_event_reconciles(gcp: GcpDeployment, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = finished_job(gcp, monkeypatch)
    headers, body = structured_mode(gcp_variant("gcp_scheduler_pubsub.json"))
    assert app("sweeper_pubsub").post("/", data=body, headers=headers).status_code == 200
    assert status(gcp, job_id) == Status.COMPLETED


def test_eventarc_delivery_to_the_http_sweeper(gcp: GcpDeployment) -> None:
    headers, body = binary_mode(gcp_variant("gcp_scheduler_pubsub.json"))
    report = app("sweeper").post("/", data=body, headers=headers).get_json()
    assert report["trigger"] == "pubsub-eventarc" and report["scanned"] == 0


def test_only_post_runs_a_sweep(gcp: GcpDeployment) -> None:
    response = app("sweeper").get("/")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


def test_store_outage_fails_the_invocation(gcp: GcpDeployment) -> None:
    settings = Settings()
    dead = emulator_client(f"127.0.0.1:{free_port()}", PROJECT)
    store = FirestoreJobStore(gcp.prefix, client=dead, timeout=1.0)
    backends = {"vertex-ai": build_backend("vertex-ai", settings)}
    hosts.set_wiring_for_tests(Wiring(settings, store, store, backends, TrainService(store, backends)))
    try:
        assert app("sweeper").post("/", headers=SCHEDULER).status_code == 500  # Cloud Scheduler retries
    finally:
        dead.close()


def test_real_functions_framework_process(gcp: GcpDeployment, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = finished_job(gcp, monkeypatch)
    with FunctionsFramework("sweeper", {**gcp.env, "TRAIN_STALE_AFTER_SECONDS": "0"}) as server:
        request = urllib.request.Request(server.url, data=b"", method="POST", headers=SCHEDULER)
        with urllib.request.urlopen(request, timeout=30) as answer:
            report = json.loads(answer.read())
    assert report["reconciled"] == 1
    assert status(gcp, job_id) == Status.COMPLETED
