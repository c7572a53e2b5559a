"""functions/aws/sweeper.py: both schedule triggers run one sweep over the real wiring and return
its counts; lost events are reconciled from SageMaker."""

from __future__ import annotations

from typing import Any

import pytest

from core import hosts
from core.bootstrap import Wiring, build
from core.errors import UnavailableError
from core.lifecycle import Status
from core.service import TrainService
from functions.aws import http, sweeper
from tests.functions.conftest import Deployment
from tests.functions.shapes import auth, http_v2, response_json, shared, spec, variant

COUNTS = {"scanned", "submitted", "expired", "reconciled", "notified", "errors", "changed"}


def submit(deployment: Deployment) -> tuple[str, str]:
    headers = {"content-type": "application/json", **auth(deployment.key, "acct-a")}
    job = response_json(http.handler(http_v2("POST", "/v1/jobs", spec(), headers=headers), None))
    return job["id"], job["cloud_job_identifier"]["job_name"]


@pytest.mark.parametrize(
    ("event", "trigger"),
    [
        (lambda: shared("eventbridge_scheduled.json"), "eventbridge-rule"),
        (lambda: variant("scheduler_sweep.json"), "eventbridge-scheduler"),
        (lambda: {}, "direct"),
    ],
)
def test_each_trigger_runs_one_sweep(deployment: Deployment, event: Any, trigger: str) -> None:
    submit(deployment)
    report = sweeper.handler(event(), None)
    assert report["trigger"] == trigger
    assert set(report) == COUNTS | {"trigger"}
    assert report["scanned"] == 1 and report["errors"] == 0


def test_lost_events_are_reconciled_from_sagemaker(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAIN_STALE_AFTER_SECONDS", "0")  # every active job counts as not heard from
    job_id, name = submit(deployment)
    deployment.sagemaker.advance(name, "InProgress", "Training")
    deployment.sagemaker.finish(name, "Completed")  # neither event reached the event function

    report = sweeper.handler(shared("eventbridge_scheduled.json"), None)

    assert (report["scanned"], report["changed"], report["errors"]) == (1, 1, 0)
    job = deployment.store.get("acct-a", job_id)
    assert job is not None and job.status == Status.COMPLETED
    assert sweeper.handler(shared("eventbridge_scheduled.json"), None)["scanned"] == 0  # the index is sparse


class ThrottledIndex:
    def list_active(self, *, limit: int = 100, cursor: str | None = None) -> Any:
        raise UnavailableError("DynamoDB is unavailable or throttling, retry later: ThrottlingException")


def test_a_throttled_index_fails_the_invocation(deployment: Deployment) -> None:
    real = build()
    store: Any = ThrottledIndex()
    service = TrainService(store, real.backends)
    hosts.set_wiring_for_tests(Wiring(real.settings, store, real.keys, real.backends, service))
    with pytest.raises(UnavailableError):
        sweeper.handler(shared("eventbridge_scheduled.json"), None)
