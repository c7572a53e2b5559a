"""DynamoDBJobStore against moto_server (the table, the sparse index, concurrency) and against a
small fake DynamoDB endpoint of ours that throttles, always through the real botocore client."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.errors import PayloadTooLargeError, TrainError, UnavailableError, VersionConflictError
from core.lifecycle import Status
from core.model import ApiKey, JobQuery, JobRecord
from core.ports import IdempotencyClaim
from core.stores.dynamodb import DynamoDBJobStore, create_table
from tests.contract.conftest import T0, make_job
from tests.servers import dynamodb_client, free_port, new_dynamodb_store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(moto_endpoint: str) -> DynamoDBJobStore:
    return new_dynamodb_store()


def _table_name() -> str:
    return f"train-{uuid.uuid4().hex[:12]}"


def _client(store: DynamoDBJobStore) -> Any:
    return store._table.client


def _advance(store: DynamoDBJobStore, job: JobRecord, **changes: Any) -> JobRecord:
    return store.update(job.model_copy(update=changes), expected_version=job.version, expected_status=job.status)


# ---- the table ----------------------------------------------------------------------------------


def test_the_table_has_the_active_index_ttl_and_point_in_time_recovery(moto_endpoint: str) -> None:
    client, name = dynamodb_client(moto_endpoint), _table_name()
    create_table(client, name)
    table = client.describe_table(TableName=name)["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"PK": "HASH", "SK": "RANGE"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "active"
    assert {k["AttributeName"]: k["KeyType"] for k in index["KeySchema"]} == {"active_pk": "HASH", "active_sk": "RANGE"}
    assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["record"]}
    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
    backups = client.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_the_active_index_holds_only_active_jobs(store: DynamoDBJobStore) -> None:
    pending = store.create(make_job("acct-a", seq=1))[0]
    running = _advance(store, store.create(make_job("acct-b", seq=2))[0], status=Status.IN_PROGRESS)
    done = _advance(store, store.create(make_job("acct-a", seq=3))[0], status=Status.COMPLETED)
    store.create(make_job("acct-a", seq=4, status=Status.FAILED))
    items = _client(store).query(
        TableName=store.table_name,
        IndexName="active",
        KeyConditionExpression="active_pk = :p",
        ExpressionAttributeValues={":p": {"S": "ACTIVE"}},
    )["Items"]
    assert [i["active_sk"]["S"] for i in items] == [pending.id, running.id]
    assert json.loads(items[1]["record"]["S"])["status"] == "IN_PROGRESS"
    stored = _client(store).get_item(
        TableName=store.table_name, Key={"PK": {"S": "ACCOUNT#acct-a"}, "SK": {"S": f"JOB#{done.id}"}}
    )["Item"]
    assert "active_pk" not in stored and "active_sk" not in stored
    assert stored["status"] == {"S": "COMPLETED"} and stored["version"] == {"N": "2"}


# ---- one conditional write, no scans --------------------------------------------------------------


class _Calls:
    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        self.params: list[dict[str, Any]] = []
        client.meta.events.register("provide-client-params.dynamodb.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.names.append(model.name)
        self.params.append(params)


def test_a_status_change_is_one_conditional_update(moto_endpoint: str) -> None:
    store = DynamoDBJobStore(_table_name(), client=dynamodb_client(moto_endpoint))
    create_table(_client(store), store.table_name)
    job = store.create(make_job(backend="sagemaker", native_id="train-x"))[0]
    calls = _Calls(_client(store))
    _advance(store, job, status=Status.IN_PROGRESS, native_status="Training")
    assert calls.names == ["UpdateItem"]
    condition = calls.params[0]["ConditionExpression"]
    assert "#version = " in condition and "#status = " in condition


def test_no_operation_scans(moto_endpoint: str) -> None:
    store = DynamoDBJobStore(_table_name(), client=dynamodb_client(moto_endpoint))
    create_table(_client(store), store.table_name)
    calls = _Calls(_client(store))
    job = store.create(make_job(backend="sagemaker"), IdempotencyClaim("k", "h"))[0]
    store.create(make_job(backend="sagemaker"), IdempotencyClaim("k", "h"))
    job = _advance(store, job, native_id="train-1")
    _advance(store, job, status=Status.CANCELED, native_id="train-2", attempt=2)
    store.list("acct-a", JobQuery(status=[Status.CANCELED], project="default", limit=1))
    store.list_active(limit=1)
    store.find_by_native_id("sagemaker", "train-2")
    store.put_key(ApiKey(key_id="k1", secret_hash="sha256:x", account_ids=["acct-a"], created_at=T0))
    store.revoke_key("k1", T0)
    store.list_keys()
    store.list_keys("acct-a")
    assert "Scan" not in calls.names
    assert set(calls.names) <= {"GetItem", "PutItem", "UpdateItem", "TransactWriteItems", "Query", "BatchGetItem"}
    sources = "".join(p.read_text() for p in (ROOT / "core" / "stores").glob("dynamodb*.py"))
    assert ".scan(" not in sources and '"Scan"' not in sources


# ---- idempotency and native ids -------------------------------------------------------------------


def test_idempotency_claims_expire_through_ttl(moto_endpoint: str) -> None:
    now = [T0]
    store = DynamoDBJobStore(
        _table_name(), client=dynamodb_client(moto_endpoint), idempotency_ttl_seconds=3600, clock=lambda: now[0]
    )
    create_table(_client(store), store.table_name)
    first, _ = store.create(make_job(), IdempotencyClaim("key-1", "hash-1"))
    claim = _client(store).get_item(
        TableName=store.table_name, Key={"PK": {"S": "ACCOUNT#acct-a"}, "SK": {"S": "IDEM#key-1"}}
    )["Item"]
    assert int(claim["ttl"]["N"]) == int(T0.timestamp()) + 3600
    assert claim["job_id"] == {"S": first.id} and claim["request_hash"] == {"S": "hash-1"}
    now[0] = T0 + timedelta(minutes=59)
    assert store.create(make_job(), IdempotencyClaim("key-1", "hash-1")) == (first, False)
    # Past its ttl the claim no longer counts, even before DynamoDB gets round to deleting it.
    now[0] = T0 + timedelta(minutes=61)
    second, created = store.create(make_job(), IdempotencyClaim("key-1", "hash-2"))
    assert created and second.id != first.id


def test_an_item_past_400_kb_is_payload_too_large(store: DynamoDBJobStore) -> None:
    job = make_job().model_copy(update={"spec": {"blob": "x" * 500_000}})
    with pytest.raises(PayloadTooLargeError):
        store.create(job)
    assert store.get(job.account_id, job.id) is None


# ---- concurrency ----------------------------------------------------------------------------------


def _race(store: DynamoDBJobStore, job: JobRecord, threads: int) -> tuple[list[JobRecord], list[Exception]]:
    """``threads`` updates of the same read of ``job``, released together."""
    barrier = threading.Barrier(threads)
    winners: list[JobRecord] = []
    losers: list[Exception] = []

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            winners.append(_advance(store, job, native_status=f"v{job.version}-thread-{n}"))
        except VersionConflictError as exc:
            losers.append(exc)

    workers = [threading.Thread(target=attempt, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return winners, losers


def test_concurrent_updates_have_exactly_one_winner_per_version(store: DynamoDBJobStore) -> None:
    job = store.create(make_job())[0]
    for _ in range(4):
        winners, losers = _race(store, job, threads=8)
        assert len(winners) == 1 and len(losers) == 7
        assert store.get(job.account_id, job.id) == winners[0]
        job = winners[0]
    assert job.version == 5


# ---- errors at the boundary -----------------------------------------------------------------------


class _FakeDynamoDB(ThreadingHTTPServer):
    """Answers every DynamoDB call with ``status`` and ``body``, the way DynamoDB shapes errors."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = 400
        self.body: dict[str, Any] = {}
        self.targets: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _store_at(url: str) -> DynamoDBJobStore:
    """A store whose client makes one attempt per call, so each error reaches the adapter."""
    return DynamoDBJobStore("train", client=dynamodb_client(url, retries={"mode": "standard", "total_max_attempts": 1}))


class _Handler(BaseHTTPRequestHandler):
    server: _FakeDynamoDB

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.targets.append(self.headers.get("X-Amz-Target", ""))
        body = json.dumps(self.server.body).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-RequestId", "fake-request")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_dynamodb() -> Iterator[_FakeDynamoDB]:
    server = _FakeDynamoDB()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message, **extra}


_CALLS: dict[str, Callable[[DynamoDBJobStore], object]] = {
    "get": lambda s: s.get("acct-a", make_job().id),
    "create": lambda s: s.create(make_job(), IdempotencyClaim("k", "h")),
    "update": lambda s: _advance(s, make_job(), status=Status.IN_PROGRESS),
    "list": lambda s: s.list("acct-a", JobQuery(status=[Status.PENDING])),
    "list_active": lambda s: s.list_active(),
    "find_by_native_id": lambda s: s.find_by_native_id("sagemaker", "train-1"),
    "list_keys": lambda s: s.list_keys("acct-a"),
}


@pytest.mark.parametrize("call", list(_CALLS))
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, _error("ThrottlingException", "Rate of requests exceeds the allowed throughput.")),
        (400, _error("ProvisionedThroughputExceededException", "The level of configured provisioned throughput ...")),
        (400, _error("RequestLimitExceeded", "Throughput exceeds the current throughput limit for your account.")),
        (500, _error("InternalServerError", "Internal server error")),
    ],
    ids=["throttling", "provisioned", "account-limit", "5xx"],
)
def test_throttling_and_5xx_are_retryable_unavailable_errors(
    fake_dynamodb: _FakeDynamoDB, call: str, status: int, body: dict[str, Any]
) -> None:
    fake_dynamodb.status, fake_dynamodb.body = status, body
    store = _store_at(fake_dynamodb.url)
    with pytest.raises(UnavailableError) as raised:
        _CALLS[call](store)
    assert raised.value.retryable and raised.value.status == 503
    assert type(raised.value.__cause__).__module__.startswith("botocore")
    assert len(fake_dynamodb.targets) == 1 and fake_dynamodb.targets[0].startswith("DynamoDB_20120810.")


def test_a_throttled_transaction_is_retryable(fake_dynamodb: _FakeDynamoDB) -> None:
    reasons = [{"Code": "None"}, {"Code": "ThrottlingError", "Message": "Throughput exceeds the limit"}]
    fake_dynamodb.body = _error("TransactionCanceledException", "Transaction cancelled", CancellationReasons=reasons)
    store = _store_at(fake_dynamodb.url)
    with pytest.raises(UnavailableError):
        store.create(make_job(), IdempotencyClaim("k", "h"))
    assert fake_dynamodb.targets == ["DynamoDB_20120810.TransactWriteItems"]


def test_other_client_errors_are_not_retryable(fake_dynamodb: _FakeDynamoDB) -> None:
    fake_dynamodb.body = _error("ResourceNotFoundException", "Requested resource not found")
    store = _store_at(fake_dynamodb.url)
    with pytest.raises(TrainError) as raised:
        store.get("acct-a", make_job().id)
    assert type(raised.value) is TrainError and not raised.value.retryable


def test_an_unreachable_endpoint_is_unavailable() -> None:
    store = _store_at(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(UnavailableError):
        store.get("acct-a", make_job().id)


def test_importing_the_store_pulls_no_sdk() -> None:
    code = (
        "import sys, core.stores.dynamodb\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
