"""The route table driven with API Gateway HTTP API v2 events, over the service and in-memory fakes."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from core.api import MAX_BODY_BYTES, TrainResolver, create_app
from core.auth import create_key
from core.model import Checkpoint, JobRecord
from core.service import TrainService
from tests.fakes import FakeBackend, FakeClock, InMemoryJobStore, InMemoryKeyStore

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "events"
SPEC: dict[str, Any] = {"name": "mnist", "backend": "local", "command": ["python", "train.py"]}


def v2_event(
    method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None, query: str = "",
    base64_body: bool = False,
) -> dict[str, Any]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "req-1", "routeKey": "$default", "stage": "$default",
        },
        "isBase64Encoded": False,
    }
    if params:
        event["queryStringParameters"] = params
    if body is not None:
        text = body if isinstance(body, (str, bytes)) else json.dumps(body)
        raw = text if isinstance(text, bytes) else text.encode()
        if base64_body or isinstance(text, bytes):
            event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
        else:
            event["body"] = text
    return event


class Client:
    def __init__(self, app: TrainResolver, key: str, account: str) -> None:
        self.app, self.key, self.account = app, key, account

    def call(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None, query: str = "",
        auth: bool = True, base64_body: bool = False,
    ) -> tuple[int, dict[str, str], Any]:
        sent = {"content-type": "application/json"} if body is not None else {}
        if auth:
            sent |= {"x-api-key": self.key, "x-selected-account-id": self.account}
        sent |= headers or {}
        event = v2_event(method, path, body, headers=sent, query=query, base64_body=base64_body)
        result = self.app.resolve(event, None)
        out_headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        text = result["body"]
        return result["statusCode"], out_headers, json.loads(text) if text else None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> InMemoryJobStore:
    return InMemoryJobStore()


@pytest.fixture
def keys() -> InMemoryKeyStore:
    return InMemoryKeyStore()


@pytest.fixture
def service(store: InMemoryJobStore, clock: FakeClock) -> TrainService:
    return TrainService(store, {"local": FakeBackend("local"), "sagemaker": FakeBackend("sagemaker")}, clock=clock)


@pytest.fixture
def app(service: TrainService, keys: InMemoryKeyStore) -> TrainResolver:
    return create_app(service, keys)


@pytest.fixture
def client(app: TrainResolver, keys: InMemoryKeyStore) -> Client:
    plaintext, _ = create_key(keys, ["acct-1"])
    return Client(app, plaintext, "acct-1")


def assert_problem(status: int, headers: dict[str, str], body: Any, expected: int, field: str | None = None) -> None:
    assert status == expected, body
    assert headers["content-type"] == "application/problem+json"
    assert body["status"] == expected and body["type"].startswith("https://train.dev/problems/")
    assert body["title"] and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body


# ---- happy paths --------------------------------------------------------------------------------


def test_health_needs_no_auth(client: Client) -> None:
    status, _, body = client.call("GET", "/health", auth=False)
    assert status == 200 and body["status"] == "ok"


def test_submit_get_cancel_events_logs_checkpoints(client: Client, store: InMemoryJobStore) -> None:
    status, headers, job = client.call("POST", "/v1/jobs", {**SPEC, "labels": {"team": "vision"}})
    assert status == 201 and headers["content-type"] == "application/json"
    assert job["name"] == "mnist" and job["account_id"] == "acct-1" and job["job_type"] == "local"
    assert job["status"] == "PENDING" and job["spec"]["command"] == ["python", "train.py"]
    assert job["created_at"].endswith("Z")
    assert "version" not in job and "events" not in job

    status, _, got = client.call("GET", f"/v1/jobs/{job['id']}")
    assert status == 200 and got["id"] == job["id"]

    status, _, canceled = client.call("POST", f"/v1/jobs/{job['id']}/cancel")
    assert status == 202 and canceled["id"] == job["id"]
    assert client.call("POST", f"/v1/jobs/{job['id']}/cancel")[0] == 202

    status, _, events = client.call("GET", f"/v1/jobs/{job['id']}/events")
    assert status == 200 and events["job_id"] == job["id"]
    assert [e["reason"] for e in events["events"]][:2] == ["submitted", "cancel requested"]

    status, _, logs = client.call("GET", f"/v1/jobs/{job['id']}/logs", query="limit=10&since=2025-01-01T00:00:00Z")
    assert status == 200 and logs["lines"][0]["message"] == "hello from mnist"

    status, _, ckpts = client.call("GET", f"/v1/jobs/{job['id']}/checkpoints")
    assert status == 200 and ckpts["checkpoints"][0]["name"] == "ckpt-1"
    assert len(store._jobs) == 1


def test_native_submit(client: Client) -> None:
    request = {"name": "native", "job_config": {"command": ["python", "x.py"]}}
    status, _, job = client.call("POST", "/v1/sagemaker/jobs", request)
    assert status == 201 and job["backend"] == "sagemaker" and job["job_type"] == "sagemaker"
    assert job["spec"] == {"job_config": {"command": ["python", "x.py"]}}


def test_list_pages_newest_first_and_filters(client: Client, clock: FakeClock, service: TrainService) -> None:
    made = []
    for i, (project, backend) in enumerate([("a", "local"), ("b", "local"), ("a", "sagemaker"), ("b", "local"),
                                            ("a", "local")]):
        clock.advance(seconds=1)
        _, _, job = client.call("POST", "/v1/jobs", {**SPEC, "name": f"job-{i}", "project": project,
                                                     "backend": backend})
        made.append(job["id"])
    seen, cursor, pages = [], None, 0
    while True:
        status, _, page = client.call("GET", "/v1/jobs", query="limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200 and len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made)) and pages == 3

    def ids(query: str) -> list[str]:
        status, _, page = client.call("GET", "/v1/jobs", query=query)
        assert status == 200, page
        return [j["id"] for j in page["jobs"]]

    assert ids("project=a") == [made[4], made[2], made[0]]
    assert ids("backend=sagemaker") == [made[2]]
    assert ids("name=job-3") == [made[3]]
    client.call("POST", f"/v1/jobs/{made[1]}/cancel")
    service.sweep(reconcile_all=True)  # the fake backend confirms the stop
    assert ids("status=CANCELED") == [made[1]]
    assert ids("status=CANCELED,PENDING") == list(reversed(made))
    assert ids("status=CANCELED&status=COMPLETED") == [made[1]]


# ---- idempotency ----------------------------------------------------------------------------------


def test_idempotent_replay_returns_the_first_job(client: Client, store: InMemoryJobStore) -> None:
    key = {"Idempotency-Key": "submit-1"}
    status, _, first = client.call("POST", "/v1/jobs", SPEC, headers=key)
    assert status == 201
    status, _, replay = client.call("POST", "/v1/jobs", SPEC, headers=key)
    assert status == 200 and replay["id"] == first["id"]
    status, headers, problem = client.call("POST", "/v1/jobs", {**SPEC, "name": "other"}, headers=key)
    assert_problem(status, headers, problem, 422)
    assert len(store._jobs) == 1


def test_idempotency_key_over_255_chars_is_refused(client: Client, store: InMemoryJobStore) -> None:
    status, headers, problem = client.call("POST", "/v1/jobs", SPEC, headers={"Idempotency-Key": "k" * 256})
    assert_problem(status, headers, problem, 422, "idempotency-key")
    assert store.writes == 0


# ---- auth ---------------------------------------------------------------------------------------


def test_missing_key_is_401(client: Client) -> None:
    status, headers, problem = client.call("GET", "/v1/jobs", auth=False)
    assert_problem(status, headers, problem, 401)
    assert "x-api-key" in problem["detail"]


def test_unknown_key_is_401(client: Client) -> None:
    bad = {"x-api-key": "trn_aaaaaaaaaaaa_" + "b" * 43, "x-selected-account-id": "acct-1"}
    status, headers, problem = client.call("GET", "/v1/jobs", auth=False, headers=bad)
    assert_problem(status, headers, problem, 401)


def test_missing_account_header_is_401_naming_it(client: Client) -> None:
    status, headers, problem = client.call("GET", "/v1/jobs", auth=False, headers={"x-api-key": client.key})
    assert_problem(status, headers, problem, 401)
    assert "x-selected-account-id" in problem["detail"]


def test_account_not_granted_is_403(client: Client) -> None:
    status, headers, problem = client.call("GET", "/v1/jobs", headers={"x-selected-account-id": "acct-2"})
    assert_problem(status, headers, problem, 403)


def test_auth_comes_before_validation(client: Client, store: InMemoryJobStore) -> None:
    status, _, _ = client.call("POST", "/v1/jobs", {"bogus": 1}, auth=False)
    assert status == 401 and store.writes == 0


def test_job_of_another_account_is_404(client: Client, keys: InMemoryKeyStore) -> None:
    _, _, job = client.call("POST", "/v1/jobs", SPEC)
    other_key, _ = create_key(keys, ["acct-2"])
    other = Client(client.app, other_key, "acct-2")
    for method, path in [("GET", ""), ("POST", "/cancel"), ("GET", "/events"), ("GET", "/logs"),
                         ("GET", "/checkpoints")]:
        status, headers, problem = other.call(method, f"/v1/jobs/{job['id']}{path}")
        assert_problem(status, headers, problem, 404)
    assert other.call("GET", "/v1/jobs")[2]["jobs"] == []
    assert client.call("GET", f"/v1/jobs/{job['id']}")[2]["status"] == "PENDING"


# ---- bad input ----------------------------------------------------------------------------------

BIG = {**SPEC, "args": ["x" * 4000] * 256, "env": {f"K{i}": "v" * 32768 for i in range(40)}}

BAD_SUBMISSIONS = [
    ("unknown field", {**SPEC, "bogus": 1}, 422, "bogus"),
    ("bad duration", {**SPEC, "max_runtime": "forever"}, 422, "max_runtime"),
    ("bad name", {**SPEC, "name": "Bad_Name"}, 422, "name"),
    ("name too long", {**SPEC, "name": "a" * 64}, 422, "name"),
    ("bad mount scheme", {**SPEC, "storage_mounts": [{"source_uri": "ftp://host/data"}]}, 422,
     "storage_mounts[0].source_uri"),
    ("relative mount path", {**SPEC, "storage_mounts": [{"source_uri": "data/x"}]}, 422,
     "storage_mounts[0].source_uri"),
    ("reserved TRAIN_ env", {**SPEC, "env": {"TRAIN_X": "1"}}, 422, "env.TRAIN_X"),
    ("reserved mount env", {**SPEC, "env": {"STORAGE_MOUNT_0_PATH": "/x"}}, 422, "env.STORAGE_MOUNT_0_PATH"),
    ("bad secret ref", {**SPEC, "env": {"TOKEN": {"secret": "has space"}}}, 422, "env.TOKEN.secret"),
    ("unknown backend", {**SPEC, "backend": "mainframe"}, 422, "backend"),
    ("missing name", {k: v for k, v in SPEC.items() if k != "name"}, 422, "name"),
    ("not an object", [1, 2], 422, "body"),
    ("empty body", "", 422, "body"),
]


@pytest.mark.parametrize(("case", "body", "expected", "field"), BAD_SUBMISSIONS, ids=[c[0] for c in BAD_SUBMISSIONS])
def test_bad_submission_is_a_problem_and_writes_nothing(
    client: Client, store: InMemoryJobStore, case: str, body: Any, expected: int, field: str
) -> None:
    status, headers, problem = client.call("POST", "/v1/jobs", body)
    assert_problem(status, headers, problem, expected, field)
    assert store.writes == 0 and client.call("GET", "/v1/jobs")[2]["jobs"] == []


def test_body_over_1_mib_is_413(client: Client, store: InMemoryJobStore) -> None:
    body = json.dumps({**SPEC, "backend_options": {"pad": "x" * MAX_BODY_BYTES}})
    status, headers, problem = client.call("POST", "/v1/jobs", body)
    assert_problem(status, headers, problem, 413, "body")
    status, headers, problem = client.call("POST", "/v1/jobs", body, base64_body=True)
    assert_problem(status, headers, problem, 413, "body")
    assert store.writes == 0


def test_body_of_exactly_1_mib_passes_the_size_check(client: Client) -> None:
    prefix = json.dumps({**SPEC, "backend_options": {"pad": ""}})
    body = prefix.replace('"pad": ""', '"pad": "' + "x" * (MAX_BODY_BYTES - len(prefix)) + '"')
    assert len(body.encode()) == MAX_BODY_BYTES
    assert client.call("POST", "/v1/jobs", body)[0] == 201


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"])
def test_wrong_content_type_is_415(client: Client, store: InMemoryJobStore, content_type: str) -> None:
    status, headers, problem = client.call("POST", "/v1/jobs", SPEC, headers={"content-type": content_type})
    assert_problem(status, headers, problem, 415, "content-type")
    assert store.writes == 0


def test_json_with_charset_is_accepted(client: Client) -> None:
    headers = {"content-type": "application/json; charset=utf-8"}
    assert client.call("POST", "/v1/jobs", SPEC, headers=headers)[0] == 201


@pytest.mark.parametrize("body", ['{"name": "x",', "not json", b"\xff\xfe{}"])
def test_invalid_json_is_400_naming_body(client: Client, store: InMemoryJobStore, body: str | bytes) -> None:
    status, headers, problem = client.call("POST", "/v1/jobs", body)
    assert_problem(status, headers, problem, 400, "body")
    assert store.writes == 0


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [("/v1/jobs", "limit=500", "limit"), ("/v1/jobs", "limit=0", "limit"), ("/v1/jobs", "status=DONE", "status[0]"),
     ("/v1/jobs", "backend=mainframe", "backend"), ("/v1/jobs", "cursor=!!!", "cursor")],
)
def test_bad_query_names_the_field(client: Client, path: str, query: str, field: str) -> None:
    status, headers, problem = client.call("GET", path, query=query)
    assert status in (400, 422)
    assert_problem(status, headers, problem, status, field)


def test_log_limit_over_1000_is_refused(client: Client) -> None:
    _, _, job = client.call("POST", "/v1/jobs", SPEC)
    status, headers, problem = client.call("GET", f"/v1/jobs/{job['id']}/logs", query="limit=1001")
    assert_problem(status, headers, problem, 422, "limit")


def test_native_submit_to_unknown_backend_is_404(client: Client, store: InMemoryJobStore) -> None:
    status, headers, problem = client.call("POST", "/v1/mainframe/jobs", {"name": "x", "job_config": {"a": 1}})
    assert_problem(status, headers, problem, 404)
    status, headers, problem = client.call("POST", "/v1/local/jobs", {"name": "x", "job_config": {}})
    assert_problem(status, headers, problem, 422, "job_config")
    assert store.writes == 0


def test_backend_not_enabled_is_422_naming_backend(client: Client, store: InMemoryJobStore) -> None:
    status, headers, problem = client.call("POST", "/v1/jobs", {**SPEC, "backend": "vertex-ai"})
    assert_problem(status, headers, problem, 422, "backend")
    assert store.writes == 0


# ---- routing ------------------------------------------------------------------------------------


def test_unknown_route_is_404_problem(client: Client) -> None:
    assert_problem(*client.call("GET", "/nothing/here"), 404)
    assert_problem(*client.call("GET", "/v1/nothing"), 404)


def test_wrong_method_is_405_with_allow(client: Client) -> None:
    status, headers, problem = client.call("DELETE", "/v1/jobs")
    assert_problem(status, headers, problem, 405)
    assert headers["allow"] == "GET, POST"


@pytest.mark.parametrize("name", ["apigw_http_v2.json", "apigw_http_v2_captured.json"])
def test_captured_gateway_payloads_reach_a_404_problem(app: TrainResolver, name: str) -> None:
    event = json.loads((FIXTURES / name).read_text())
    result = app.resolve(event, None)
    assert result["statusCode"] == 404
    assert result["headers"]["Content-Type"] == "application/problem+json"
    assert json.loads(result["body"])["status"] == 404


def test_each_resolver_keeps_its_own_request(store: InMemoryJobStore, keys: InMemoryKeyStore) -> None:
    service = TrainService(store, {"local": FakeBackend("local")})
    first, second = create_app(service, keys), create_app(service, keys)
    first.resolve(v2_event("GET", "/health"), None)
    second.resolve(v2_event("GET", "/openapi.json"), None)
    # Powertools keeps the current event on a class attribute; ours must not see the other's request
    assert first.current_event.path == "/health"


class ExplodingBackend(FakeBackend):
    def checkpoints(self, job: JobRecord) -> list[Checkpoint]:
        raise RuntimeError(f"listing failed for token {job.spec['env']['TOKEN']}")


def test_unexpected_error_is_a_generic_500_logged_without_its_message(
    store: InMemoryJobStore, keys: InMemoryKeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    plaintext, _ = create_key(keys, ["acct-1"])
    client = Client(create_app(TrainService(store, {"local": ExplodingBackend("local")}), keys), plaintext, "acct-1")
    caplog.set_level(logging.DEBUG)
    _, _, job = client.call("POST", "/v1/jobs", {**SPEC, "env": {"TOKEN": "s3cr3t-value"}})
    status, headers, problem = client.call("GET", f"/v1/jobs/{job['id']}/checkpoints")
    assert_problem(status, headers, problem, 500)
    assert "s3cr3t" not in json.dumps(problem) and "req-1" in problem["detail"]
    assert "req-1" in caplog.text and "RuntimeError" in caplog.text
    assert "s3cr3t" not in caplog.text and plaintext not in caplog.text


# ---- OpenAPI ------------------------------------------------------------------------------------


def test_openapi_document_is_generated_from_the_models(client: Client) -> None:
    status, headers, doc = client.call("GET", "/openapi.json", auth=False)
    assert status == 200 and headers["content-type"] == "application/json"
    assert doc["info"] == {"title": "Train", "version": __import__("core").__version__}
    routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert routes >= {
        ("GET", "/health"), ("GET", "/openapi.json"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs"),
        ("POST", "/v1/{backend}/jobs"), ("GET", "/v1/jobs/{job_id}"), ("POST", "/v1/jobs/{job_id}/cancel"),
        ("GET", "/v1/jobs/{job_id}/events"), ("GET", "/v1/jobs/{job_id}/logs"),
        ("GET", "/v1/jobs/{job_id}/checkpoints"),
    }
    schemes = doc["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} == {("header", "x-api-key"),
                                                               ("header", "x-selected-account-id")}
    assert doc["paths"]["/v1/jobs"]["post"]["security"] and "security" not in doc["paths"]["/health"]["get"]
    submit = doc["components"]["schemas"]["SubmitRequest"]
    assert set(submit["properties"]) >= {
        "name", "project", "backend", "image", "command", "start_commands", "args", "env", "compute",
        "storage_mounts", "checkpointing", "load_checkpoint", "max_runtime", "max_pending", "spot", "retries",
        "labels", "notify", "backend_options",
    }
    assert submit["additionalProperties"] is False
    post = doc["paths"]["/v1/jobs"]["post"]["responses"]
    assert {"200", "201", "422"} <= set(post)
    assert "application/problem+json" in post["422"]["content"]
