from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.client import MissingCredentialsError, TrainClient, TrainClientError, TrainConnectionError
from tests.unit.fake_train_server import ACCOUNT, API_KEY, FakeTrain

SPEC = {"name": "hello", "backend": "local", "command": ["python3", "train.py"], "args": ["--epochs", "2"]}


@pytest.fixture
def fake() -> Iterator[FakeTrain]:
    server = FakeTrain().start()
    yield server
    server.stop()


@pytest.fixture
def client(fake: FakeTrain) -> TrainClient:
    return TrainClient(fake.url, API_KEY, ACCOUNT, timeout=5)


def test_submit_sends_auth_and_idempotency_headers_and_the_body(fake: FakeTrain, client: TrainClient) -> None:
    job = client.submit(SPEC, idempotency_key="k-1")

    assert job["name"] == "hello" and job["status"] == "PENDING"
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/jobs")
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["x-selected-account-id"] == ACCOUNT
    assert sent.headers["idempotency-key"] == "k-1"
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == SPEC
    assert client.submit(SPEC, idempotency_key="k-1")["id"] == job["id"]


def test_no_idempotency_header_unless_given(fake: FakeTrain, client: TrainClient) -> None:
    client.submit(SPEC)
    assert "idempotency-key" not in fake.requests[-1].headers


def test_submit_native_posts_to_the_backend_route(fake: FakeTrain, client: TrainClient) -> None:
    body = {"name": "mnist", "job_config": {"command": ["python3", "x.py"]}}
    job = client.submit_native("vertex-ai", body)
    assert fake.requests[-1].path == "/v1/vertex-ai/jobs"
    assert job["backend"] == "vertex-ai"


def test_health_needs_no_key(fake: FakeTrain) -> None:
    assert TrainClient(fake.url, "", "").health() == {"status": "ok"}
    assert "x-api-key" not in fake.requests[-1].headers


def test_problem_json_is_parsed_into_the_error(client: TrainClient) -> None:
    with pytest.raises(TrainClientError) as caught:
        client.submit({"name": "Not Valid", "backend": "local"})
    err = caught.value
    assert err.status == 422
    assert err.title == "Invalid job request"
    assert err.detail == "name: must match [a-z0-9-]"
    assert [(e.field, e.pointer) for e in err.errors] == [
        ("name", "/name"),
        ("storage_mounts[0].source_uri", "/storage_mounts/0/source_uri"),
    ]
    assert err.errors[1].path == ("storage_mounts", 0, "source_uri")


@pytest.mark.parametrize(
    ("key", "account", "status"),
    [("trn_wrongwrongwr_" + "x" * 43, ACCOUNT, 401), (API_KEY, "someone-else", 403)],
)
def test_auth_failures(fake: FakeTrain, key: str, account: str, status: int) -> None:
    with pytest.raises(TrainClientError) as caught:
        TrainClient(fake.url, key, account).get("job0001")
    assert caught.value.status == status


def test_unknown_job_is_404_and_server_errors_keep_their_status(client: TrainClient) -> None:
    with pytest.raises(TrainClientError) as missing:
        client.get("nope")
    assert (missing.value.status, missing.value.title) == (404, "Not found")
    with pytest.raises(TrainClientError) as boom:
        client.get("boom")
    assert (boom.value.status, boom.value.detail) == (500, "the store is down")
    with pytest.raises(TrainClientError) as plain:
        client.get("plain500")
    assert plain.value.status == 500
    assert plain.value.detail == "upstream exploded"


def test_iter_jobs_follows_cursors_newest_first(fake: FakeTrain, client: TrainClient) -> None:
    ids = [client.submit({**SPEC, "name": f"job-{i}"})["id"] for i in range(5)]
    before = len(fake.requests)

    seen = [job["id"] for job in client.iter_jobs(page_size=2)]

    assert seen == list(reversed(ids))
    pages = fake.requests[before:]
    assert [r.query.get("cursor") for r in pages] == [None, ["2"], ["4"]]
    assert all(r.query["limit"] == ["2"] for r in pages)


def test_list_sends_each_status_and_filter(fake: FakeTrain, client: TrainClient) -> None:
    client.submit(SPEC)
    page = client.list(status=["PENDING", "FAILED"], name="hello", limit=5)
    assert [j["name"] for j in page["jobs"]] == ["hello"]
    assert fake.requests[-1].query == {"status": ["PENDING", "FAILED"], "name": ["hello"], "limit": ["5"]}


def test_routes_for_one_job(fake: FakeTrain, client: TrainClient) -> None:
    job_id = client.submit(SPEC)["id"]
    assert client.cancel(job_id)["status"] == "CANCELED"
    assert client.events(job_id)["events"][0]["status"] == "PENDING"
    assert client.checkpoints(job_id)["checkpoints"][0]["name"] == "epoch-0001.json"
    client.logs(job_id, cursor="0", limit=10, since="2026-01-01T00:00:00+00:00")
    assert fake.requests[-1].query == {"cursor": ["0"], "limit": ["10"], "since": ["2026-01-01T00:00:00+00:00"]}
    assert fake.requests[-1].path == f"/v1/jobs/{job_id}/logs"


@pytest.mark.parametrize("cursors", [True, False])
def test_follow_reports_each_status_change_and_each_log_line_once(fake: FakeTrain, cursors: bool) -> None:
    fake.log_cursors = cursors
    client = TrainClient(fake.url, API_KEY, ACCOUNT)
    job_id = client.submit(SPEC)["id"]
    statuses: list[str] = []
    lines: list[str] = []

    final = client.follow(job_id, lambda j: statuses.append(j["status"]), lambda ln: lines.append(ln["message"]),
                          poll=0.01)

    assert final["status"] == "COMPLETED"
    assert statuses == ["IN_PROGRESS", "COMPLETED"]
    assert lines == ["epoch 1 loss=0.1", "epoch 2 loss=0.1", "done"]


def test_follow_ends_on_failure_with_the_reason(client: TrainClient) -> None:
    job_id = client.submit({**SPEC, "args": ["--fail"]})["id"]
    final = client.follow(job_id, poll=0.01)
    assert (final["status"], final["status_reason"]) == ("FAILED", "exit code 1")


def test_unreachable_server_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TrainConnectionError) as caught:
        TrainClient(f"http://127.0.0.1:{port}", API_KEY, ACCOUNT, timeout=2).get("x")
    assert caught.value.retryable
    assert f"127.0.0.1:{port}" in str(caught.value)


def test_from_env_prefers_the_environment_field_by_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "credentials.json").write_text(
        json.dumps({"url": "http://127.0.0.1:1", "account_id": "dev", "api_key": "trn_file"})
    )
    monkeypatch.setenv("TRAIN_URL", "http://127.0.0.1:2/")
    monkeypatch.delenv("TRAIN_API_KEY", raising=False)
    monkeypatch.delenv("TRAIN_ACCOUNT_ID", raising=False)

    client = TrainClient.from_env(tmp_path)

    assert (client.url, client.api_key, client.account_id) == ("http://127.0.0.1:2", "trn_file", "dev")
    assert "trn_file" not in repr(client)


def test_from_env_uses_train_data_dir_and_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TRAIN_URL", "TRAIN_API_KEY", "TRAIN_ACCOUNT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRAIN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRAIN_URL", "http://127.0.0.1:3")

    with pytest.raises(MissingCredentialsError) as caught:
        TrainClient.from_env()

    message = str(caught.value)
    assert "TRAIN_API_KEY" in message and "TRAIN_ACCOUNT_ID" in message and "TRAIN_URL" not in message.split(":")[0]
    assert str(tmp_path / "credentials.json") in message
