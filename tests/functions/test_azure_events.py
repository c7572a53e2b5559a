"""The Event Grid trigger of functions/azure/function_app.py: Azure ML run events from the
published samples and variants, decoded by the worker's own converter and applied over the real
wiring (SQLite, Azure ML through the real MLClient to our fake endpoint). The event is a hint: a
running job is re-read from Azure ML, whatever the event says and however it spells it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from core import hosts
from core.bootstrap import Wiring, build
from core.errors import UnavailableError
from core.lifecycle import Status
from core.model import JobRecord
from core.service import TrainService
from tests.functions.azure_deployment import (
    RUN_COMPLETED,
    AzureDeployment,
    as_cloud_event,
    azure_deployment_fixture,  # noqa: F401
    run_event,
    shared_events,
    trigger_event,
)
from tests.functions.shapes import variant

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # azure-ai-ml's marshmallow use


def stored(deployment: AzureDeployment, job_id: str) -> JobRecord:
    job = deployment.store.get("acct-a", job_id)
    assert job is not None
    return job


def job_reads(deployment: AzureDeployment) -> int:
    return len(deployment.azureml.calls("GET", "/jobs/"))


def test_the_real_state_wins_over_the_event_whatever_its_case(azure_deployment: AzureDeployment) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Running")
    azure_deployment.deliver(run_event(name, "failed"))  # the doc sample's lower-case hint

    job = stored(azure_deployment, job_id)
    assert (job.status, job.native_status) == (Status.IN_PROGRESS, "Running")

    azure_deployment.azureml.advance(name, "Completed")
    azure_deployment.deliver(run_event(name, "COMPLETED"))
    job = stored(azure_deployment, job_id)
    assert (job.status, job.native_status) == (Status.COMPLETED, "Completed")
    assert job.ended_at == azure_deployment.azureml.jobs[name].modified  # Azure ML's own time, not the event's


def test_a_cloudevents_delivery_is_read_like_an_event_grid_one(azure_deployment: AzureDeployment) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Running")
    event = variant("azure_ml_run_status_changed_cloudevent.json")
    event["source"] = run_event(name, "Running")["topic"]
    event["subject"] = event["subject"].rsplit("/", 1)[0] + "/" + name
    event["data"].update(runId=name, runStatus="Running")

    assert type(trigger_event(event)).__name__ == "CloudEvent"
    azure_deployment.deliver(event)
    assert stored(azure_deployment, job_id).status == Status.IN_PROGRESS


def test_events_for_an_ended_job_are_recorded_without_asking_azure_ml(azure_deployment: AzureDeployment) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Completed")
    azure_deployment.deliver(run_event(name, None, kind=RUN_COMPLETED))
    reads = job_reads(azure_deployment)

    late = run_event(name, "Running", event_time="2026-01-01T00:00:09.9999999Z")  # 7 fractional digits
    azure_deployment.deliver(late)
    azure_deployment.deliver(as_cloud_event(run_event(name, "completed")))

    assert job_reads(azure_deployment) == reads  # an ended job is not re-read
    job = stored(azure_deployment, job_id)
    assert job.status == Status.COMPLETED and job.ignored_updates == 2
    ignored = [e for e in job.events if e.kind == "ignored"]
    assert ignored[0].native_status == "Running"
    assert ignored[0].event_time == datetime(2026, 1, 1, 0, 0, 9, 999999, tzinfo=UTC)


def test_a_duplicate_changes_nothing(azure_deployment: AzureDeployment) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Running")
    event = run_event(name, "Running")
    azure_deployment.deliver(event)
    before = stored(azure_deployment, job_id)
    azure_deployment.deliver(dict(event))

    after = stored(azure_deployment, job_id)
    assert after.status == Status.IN_PROGRESS
    assert [e.kind for e in after.events] == [e.kind for e in before.events] + ["ignored"]
    assert after.events[-1].reason == "duplicate"


def test_events_of_other_workspaces_and_other_runs_are_ignored_without_a_call(
    azure_deployment: AzureDeployment, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Completed")
    reads = job_reads(azure_deployment)
    foreign = name.replace(job_id, "01zzzzzzzzzzzzzzzzzzzzzzzz")

    with caplog.at_level(logging.INFO, logger="train"):
        azure_deployment.deliver(run_event(name, "Completed", workspace="someone-elses-ws"))
        azure_deployment.deliver(shared_events("eventgrid_ml_run_status_changed.json")[0])  # placeholder topic
        azure_deployment.deliver(run_event("AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5", "Completed"))
        azure_deployment.deliver(run_event(foreign, "Completed"))
        azure_deployment.deliver(run_event(name.removesuffix("-1") + "-2", "Completed"))  # not the current attempt

    assert job_reads(azure_deployment) == reads
    assert stored(azure_deployment, job_id).status == Status.PENDING
    messages = [r.getMessage() for r in caplog.records if r.name == "train.functions"]
    assert sum("dropped" in m for m in messages) == 2
    assert sum("ignored" in m for m in messages) == 3


def _with(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**event, **fields}


def _data(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    data = {k: v for k, v in event["data"].items() if k not in fields}
    data.update({k: v for k, v in fields.items() if v is not None})
    return {**event, "data": data}


POISON = {
    "data is a string": lambda name: variant("azure_ml_run_status_changed_data_not_object.json")[0],
    "model registered": lambda name: variant("azure_ml_model_registered.json")[0],
    "blob created": lambda name: variant("azure_storage_blob_created.json")[0],
    "subscription validation": lambda name: shared_events("eventgrid_subscription_validation.json")[0],
    "no status": lambda name: run_event(name, None),
    "blank status": lambda name: run_event(name, "  "),
    "no run id": lambda name: _with(_data(run_event(name, "Completed"), runId=None), subject=""),
    "no topic": lambda name: _with(run_event(name, "Completed"), topic=None),
}


@pytest.mark.parametrize("case", list(POISON))
def test_malformed_and_foreign_events_are_logged_once_and_dropped(
    azure_deployment: AzureDeployment, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    job_id, name = azure_deployment.submit()
    reads = job_reads(azure_deployment)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="train"):
        azure_deployment.deliver(POISON[case](name))
    dropped = [r for r in caplog.records if r.name == "train.functions" and r.levelno >= logging.WARNING]
    assert len(dropped) == 1 and "dropped" in dropped[0].getMessage()
    assert job_reads(azure_deployment) == reads
    assert stored(azure_deployment, job_id).status == Status.PENDING


class ThrottledStore:
    """The deployment's real store, except that it fails as a throttled or unreachable database
    does while ``down`` is set (writes only, or reads too with ``reads``)."""

    def __init__(self, store: Any, *, reads: bool) -> None:
        self._store = store
        self.down = True
        self.reads = reads

    def find_by_native_id(self, backend: str, native_id: str) -> JobRecord | None:
        if self.down and self.reads:
            raise UnavailableError("the job store is unavailable, retry later")
        found: JobRecord | None = self._store.find_by_native_id(backend, native_id)
        return found

    def update(self, job: JobRecord, *, expected_version: int, expected_status: Status) -> JobRecord:
        if self.down:
            raise UnavailableError("the job store is unavailable, retry later")
        updated: JobRecord = self._store.update(job, expected_version=expected_version, expected_status=expected_status)
        return updated

    def get(self, account_id: str, job_id: str) -> JobRecord | None:
        found: JobRecord | None = self._store.get(account_id, job_id)
        return found


@pytest.mark.parametrize("reads", [False, True])
def test_a_store_outage_raises_so_event_grid_delivers_again(azure_deployment: AzureDeployment, reads: bool) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Running")
    real = build()
    throttled = ThrottledStore(real.store, reads=reads)
    service = TrainService(throttled, real.backends)  # type: ignore[arg-type]
    hosts.set_wiring_for_tests(Wiring(real.settings, throttled, real.keys, real.backends, service))  # type: ignore[arg-type]
    event = run_event(name, "Running")

    with pytest.raises(UnavailableError):
        azure_deployment.deliver(event)
    assert stored(azure_deployment, job_id).status == Status.PENDING  # nothing acknowledged, nothing written

    throttled.down = False
    azure_deployment.deliver(event)  # the redelivery
    assert stored(azure_deployment, job_id).status == Status.IN_PROGRESS


def test_azure_ml_throttling_raises_so_event_grid_delivers_again(azure_deployment: AzureDeployment) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Running")
    hosts.set_wiring_for_tests(None)  # a cold container whose client gives up at once, not after azure-core's 10 tries
    hosts.wiring().backends["azure-ml"].retry_total = 0  # type: ignore[attr-defined]
    azure_deployment.azureml.fail("GET", f"/jobs/{name}", status=503, code="ServiceUnavailable")

    with pytest.raises(UnavailableError):
        azure_deployment.deliver(run_event(name, "Running"))
    assert stored(azure_deployment, job_id).status == Status.PENDING
    azure_deployment.deliver(run_event(name, "Running"))  # the redelivery
    assert stored(azure_deployment, job_id).status == Status.IN_PROGRESS
