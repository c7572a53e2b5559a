"""The Azure function app with its real wiring, in-process: ``core.bootstrap.build()`` reads
``TRAIN_*`` as on Azure, the store is SQLite in a temporary directory, and the Azure ML backend's
real ``MLClient`` talks to our fake Azure ML endpoint (tests/fake_azureml.py) over TLS. Credentials
come the way a Function App with a managed identity gets them: ``DefaultAzureCredential`` finds
``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` and asks that endpoint, here a small fake on 127.0.0.1.

Functions are reached through the indexer the Python worker uses (``app.get_functions()``, then
each function's ``get_user_function()``), and triggers are the ``azure.functions`` objects the
worker would pass: Event Grid events decoded by the library's own converter from the published
samples in ``../shared/fixtures/events/``.

Test modules take the ``azure_deployment`` fixture by importing ``azure_deployment_fixture``.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
import pytest
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.timer import TimerRequestConverter

from core.auth import create_key
from core.stores.sqlite import SQLiteJobStore
from functions.azure import function_app
from tests.fake_azureml import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE, FakeAzureML
from tests.functions.shapes import shared

HOST = "https://train-func.azurewebsites.net"
TOPIC = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
         f"/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE}")
IMAGE = "trainacr.azurecr.io/acct/pytorch@sha256:" + "cd" * 32
RUN_STATUS_CHANGED = "Microsoft.MachineLearningServices.RunStatusChanged"
RUN_COMPLETED = "Microsoft.MachineLearningServices.RunCompleted"
# Credentials Azure SDKs would pick up before the managed identity: none may leak in from outside.
OTHER_CREDENTIALS = (
    "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME",
    "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
)


class FakeManagedIdentity:
    """The App Service managed-identity endpoint: GET ``?api-version=2019-08-01&resource=…`` with
    the ``X-IDENTITY-HEADER`` secret → a bearer token for the resource."""

    def __init__(self) -> None:
        self.secret = uuid.uuid4().hex
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("X-IDENTITY-HEADER") != owner.secret:
                    self._send(401, {"error": "bad identity header"})
                    return
                owner.requests.append(self.path)
                self._send(200, {"access_token": "fake-managed-identity-token", "token_type": "Bearer",
                                 "expires_on": str(int(time.time()) + 3600), "resource": "fake"})

            def _send(self, status: int, document: dict[str, str]) -> None:
                data = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-managed-identity", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/msi/token"

    def __enter__(self) -> FakeManagedIdentity:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class AzureDeployment:
    azureml: FakeAzureML
    identity: FakeManagedIdentity
    store: SQLiteJobStore  # our own connection to the database: reads what the functions made durable
    key: str  # an API key of account "acct-a"
    other_key: str  # an API key of account "acct-b"
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def api(self, method: str, path: str, body: Any = None, *, key: str | None = None,
            account: str = "acct-a", query: dict[str, str] | None = None) -> tuple[int, Any]:
        headers = {"x-api-key": key or self.key, "x-selected-account-id": account}
        if body is not None:
            headers["content-type"] = "application/json"
        response = self.functions["http_api"](http_request(method, path, body, headers=headers, query=query))
        return response.status_code, response_json(response)

    def submit(self, **fields: Any) -> tuple[str, str]:
        """Submit a portable spec through the HTTP function; the job id and its Azure ML job name."""
        status, job = self.api("POST", "/v1/jobs", spec(**fields))
        assert status == 201, job
        return job["id"], job["cloud_job_identifier"]["job_name"]

    def deliver(self, payload: dict[str, Any]) -> None:
        """One event through the Event Grid trigger, as the worker decodes it."""
        self.functions["azureml_events"](trigger_event(payload))


@pytest.fixture(name="azure_deployment")
def azure_deployment_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[AzureDeployment]:
    database = tmp_path / "train.db"
    store = SQLiteJobStore(database)
    key, _ = create_key(store, ["acct-a"])
    other_key, _ = create_key(store, ["acct-b"])
    for name in OTHER_CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    with FakeAzureML() as azureml, FakeManagedIdentity() as identity:
        settings = {
            "TRAIN_STORE": f"sqlite:///{database}",
            "TRAIN_DATA_DIR": str(tmp_path / "data"),
            "TRAIN_BACKENDS": "azure-ml",
            "TRAIN_JOB_PREFIX": "train",
            "TRAIN_AZUREML_SUBSCRIPTION_ID": SUBSCRIPTION,
            "TRAIN_AZUREML_RESOURCE_GROUP": RESOURCE_GROUP,
            "TRAIN_AZUREML_WORKSPACE": WORKSPACE,
            "TRAIN_AZUREML_BASE_URL": azureml.url,
            "TRAIN_AZUREML_BLOB_ENDPOINT": azureml.blob_endpoint,
            "REQUESTS_CA_BUNDLE": azureml.ca_file,  # the fake's self-signed certificate
            "AZUREML_CURRENT_CLOUD": "AzureCloud",  # MLClient rewrites it; restored after the test
            "IDENTITY_ENDPOINT": identity.url,
            "IDENTITY_HEADER": identity.secret,
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        yield AzureDeployment(azureml, identity, store, key, other_key, user_functions())
    store.close()


@functools.cache
def indexed() -> tuple[func.Function, ...]:
    """The app's functions as the worker's indexer builds them. The worker indexes an app once
    per process (a second ``get_functions()`` refuses the names it has seen), and so do the tests."""
    return tuple(function_app.app.get_functions())


def user_functions() -> dict[str, Callable[..., Any]]:
    """Each indexed function's Python callable, by function name, after the check the worker
    makes when it loads them: the trigger parameter's annotation must suit the binding type."""
    found: dict[str, Callable[..., Any]] = {}
    for function in indexed():
        user = function.get_user_function()
        hints = typing.get_type_hints(user)
        trigger = function.get_trigger()
        converter = meta.get_binding_registry().get(trigger.get_binding_name())
        assert converter.check_input_type_annotation(hints[trigger.name]), function.get_function_name()
        found[function.get_function_name()] = user
    return found


# ---- trigger objects ----------------------------------------------------------------------------


def http_request(method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
                 query: dict[str, str] | None = None) -> func.HttpRequest:
    """What the worker hands the ``{*path}`` route (``routePrefix`` is empty in host.json)."""
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    url = HOST + path + (f"?{urlencode(query)}" if query else "")
    return func.HttpRequest(method, url, headers={"x-forwarded-for": "203.0.113.7:50412", **(headers or {})},
                            params=query or {}, route_params={"path": path.lstrip("/")}, body=raw)


def trigger_event(payload: dict[str, Any]) -> Any:
    """The ``func.EventGridEvent`` (or ``func.CloudEvent``) the worker decodes from one event."""
    return EventGridEventInConverter.decode(meta.Datum(json.dumps(payload), "json"), trigger_metadata={})


def timer(*, past_due: bool = False) -> func.TimerRequest:
    """The timer trigger's payload as the host sends it, decoded by the worker's converter."""
    payload = {"Schedule": {"AdjustForDST": True}, "IsPastDue": past_due,
               "ScheduleStatus": {"Last": "2026-01-01T00:00:00+00:00", "Next": "2026-01-01T00:05:00+00:00",
                                  "LastUpdated": "2026-01-01T00:00:00+00:00"}}
    request: func.TimerRequest = TimerRequestConverter.decode(meta.Datum(json.dumps(payload), "json"),
                                                             trigger_metadata={})
    return request


# ---- payloads -----------------------------------------------------------------------------------


def run_event(run_id: str, status: str | None, *, kind: str = RUN_STATUS_CHANGED, workspace: str = WORKSPACE,
              event_time: str = "2026-01-01T00:00:01.1234567Z") -> dict[str, Any]:
    """The published ``RunStatusChanged`` sample (Event Grid schema) for run ``run_id`` of
    ``workspace``; ``status`` None leaves ``runStatus`` out, as ``RunCompleted`` does."""
    sample = "eventgrid_ml_run_completed.json" if kind == RUN_COMPLETED else "eventgrid_ml_run_status_changed.json"
    (event,) = shared_events(sample)
    experiment = event["data"]["experimentId"]
    event.update(id=str(uuid.uuid4()), eventTime=event_time, eventType=kind,
                 topic=TOPIC.replace(f"/workspaces/{WORKSPACE}", f"/workspaces/{workspace}"),
                 subject=f"experiments/{experiment}/runs/{run_id}")
    event["data"]["runId"] = run_id
    event["data"].pop("runStatus", None)
    if status is not None:
        event["data"]["runStatus"] = status
    return dict(event)


def shared_events(name: str) -> list[dict[str, Any]]:
    """A published Event Grid sample: an array of events."""
    events: list[dict[str, Any]] = copy.deepcopy(shared(name))  # type: ignore[arg-type]
    return events


def as_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    """The same event in the CloudEvents 1.0 schema, as Event Grid delivers it to a subscription
    set to ``CloudEventSchemaV1_0``."""
    return {
        "specversion": "1.0", "id": event["id"], "source": event["topic"], "subject": event["subject"],
        "type": event["eventType"], "time": event["eventTime"], "datacontenttype": "application/json",
        "data": copy.deepcopy(event["data"]),
    }


def spec(name: str = "mnist", **extra: Any) -> dict[str, Any]:
    return {"name": name, "backend": "azure-ml", "image": IMAGE, "command": ["python", "train.py"], **extra}


def response_json(response: func.HttpResponse) -> Any:
    body = response.get_body()
    return json.loads(body) if body else None
