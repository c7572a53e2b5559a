"""The Event Grid webhook variant (``azureml_events_webhook``): the raw delivery as Event Grid
POSTs it. The two handshakes are answered before anything else, even by a deployment whose
configuration is broken; then events (an Event Grid array, one CloudEvent, a CloudEvents batch)
are applied like the trigger's, with 503 when a retry can help."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core import hosts
from core.bootstrap import Wiring, build
from core.lifecycle import Status
from core.service import TrainService
from tests.functions.azure_deployment import (
    RUN_COMPLETED,
    AzureDeployment,
    as_cloud_event,
    azure_deployment_fixture,  # noqa: F401
    http_request,
    response_json,
    run_event,
    shared_events,
)
from tests.functions.test_azure_events import ThrottledStore

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # azure-ai-ml's marshmallow use
PATH = "/eventgrid/azureml"


def post(deployment: AzureDeployment, body: Any, *, event_type: str = "Notification",
         content_type: str = "application/json") -> tuple[int, Any, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": content_type, "aeg-event-type": event_type, "aeg-delivery-count": "0"}
    response = deployment.functions["azureml_events_webhook"](http_request("POST", PATH, raw, headers=headers))
    return response.status_code, response_json(response), {k.lower(): v for k, v in response.headers.items()}


def test_subscription_validation_is_answered_before_any_other_check(
    azure_deployment: AzureDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAIN_STORE", "cosmos://not-a-store-this-build-has")  # building the wiring would fail
    handshake = shared_events("eventgrid_subscription_validation.json")
    status, body, headers = post(azure_deployment, handshake, event_type="SubscriptionValidation")

    assert status == 200 and body == {"validationResponse": handshake[0]["data"]["validationCode"]}
    assert headers["content-type"].startswith("application/json")
    assert hosts._wiring is None  # nothing was built to answer it


def test_cloudevents_options_handshake_is_answered_before_any_other_check(
    azure_deployment: AzureDeployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAIN_STORE", "cosmos://not-a-store-this-build-has")
    webhook = azure_deployment.functions["azureml_events_webhook"]
    response = webhook(http_request("OPTIONS", PATH, headers={"WebHook-Request-Origin": "eventgrid.azure.net"}))
    assert response.status_code == 200
    assert {k.lower(): v for k, v in response.headers.items()}["webhook-allowed-origin"] == "eventgrid.azure.net"
    assert webhook(http_request("OPTIONS", PATH)).status_code == 400  # not a handshake
    assert hosts._wiring is None


def test_a_validation_delivery_without_a_code_is_refused(azure_deployment: AzureDeployment) -> None:
    handshake = shared_events("eventgrid_subscription_validation.json")
    del handshake[0]["data"]["validationCode"]
    status, _, _ = post(azure_deployment, handshake, event_type="SubscriptionValidation")
    assert status == 400


def test_an_event_grid_array_is_applied_in_order(azure_deployment: AzureDeployment) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Running")
    azure_deployment.azureml.advance(name, "Completed")
    batch = [
        run_event(name, "running"),
        run_event(name, None, kind=RUN_COMPLETED),
        shared_events("eventgrid_ml_run_completed.json")[0],  # someone else's run: acknowledged, ignored
    ]
    status, body, _ = post(azure_deployment, batch)

    assert status == 200
    assert body["outcomes"] == ["TRANSITION", "TERMINAL", hosts.DROPPED]
    job = azure_deployment.store.get("acct-a", job_id)
    assert job is not None and job.status == Status.COMPLETED


@pytest.mark.parametrize("batch", [False, True])
def test_cloudevents_single_and_batch(azure_deployment: AzureDeployment, batch: bool) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Running")
    event = as_cloud_event(run_event(name, "Running"))
    body = [event] if batch else event
    kind = "application/cloudevents-batch+json" if batch else "application/cloudevents+json; charset=utf-8"
    status, answer, _ = post(azure_deployment, body, content_type=kind)

    assert status == 200 and answer["outcomes"] == ["TRANSITION"]
    job = azure_deployment.store.get("acct-a", job_id)
    assert job is not None and job.status == Status.IN_PROGRESS


@pytest.mark.parametrize("body", [b"not json", b"", b"42", b'"text"'])
def test_a_body_that_is_no_delivery_is_refused(azure_deployment: AzureDeployment, body: bytes) -> None:
    status, answer, _ = post(azure_deployment, body)
    assert status == 400 and "error" in answer


def test_a_store_outage_answers_503_and_the_redelivery_applies(azure_deployment: AzureDeployment) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Running")
    real = build()
    throttled = ThrottledStore(real.store, reads=True)
    service = TrainService(throttled, real.backends)  # type: ignore[arg-type]
    hosts.set_wiring_for_tests(Wiring(real.settings, throttled, real.keys, real.backends, service))  # type: ignore[arg-type]
    batch = [run_event(name, "Running"), shared_events("eventgrid_ml_run_completed.json")[0]]

    status, body, headers = post(azure_deployment, batch)
    assert status == 503 and body["outcomes"] == ["RETRY", hosts.DROPPED]
    assert headers["retry-after"]

    throttled.down = False
    status, body, _ = post(azure_deployment, batch)
    assert status == 200 and body["outcomes"] == ["TRANSITION", hosts.DROPPED]
    job = azure_deployment.store.get("acct-a", job_id)
    assert job is not None and job.status == Status.IN_PROGRESS
