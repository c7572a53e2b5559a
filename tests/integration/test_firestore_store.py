"""FirestoreJobStore against the npm Firestore emulator on 127.0.0.1, through the real
google-cloud-firestore client: the documents it writes, the RPCs and queries it sends (read from
the emulator's own trace, so no scan hides behind a helper), and unavailability.

Concurrency is not shown here: the emulator does not isolate transactions
(see tests/unit/test_firestore_store.py).
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.errors import PayloadTooLargeError, UnavailableError
from core.lifecycle import Status
from core.model import ApiKey, JobQuery, JobRecord
from core.ports import IdempotencyClaim
from core.stores import firestore_layout as layout
from core.stores.cursor import encode_cursor
from core.stores.firestore import FirestoreJobStore
from tests.contract.conftest import T0, make_job
from tests.firestore_emulator import MODULES_ENV, FirestoreEmulator, emulator_client, node_modules
from tests.servers import ServerStartError, free_port

# google.firestore.v1 StructuredQuery enum values, as the emulator's trace prints them.
EQUAL, LESS_THAN, GREATER_THAN, IN, ARRAY_CONTAINS = 5, 1, 3, 8, 7
ASCENDING, DESCENDING = 1, 2
AND = 1


@pytest.fixture(scope="module")
def emulator() -> Iterator[FirestoreEmulator]:
    traced = FirestoreEmulator(trace=True)
    traced.host  # noqa: B018 - starts it
    yield traced
    traced.stop()


@pytest.fixture
def store(emulator: FirestoreEmulator) -> FirestoreJobStore:
    return emulator.new_store()


class _Trace:
    """The RPCs the emulator served since this object was made."""

    def __init__(self, emulator: FirestoreEmulator) -> None:
        self._emulator = emulator
        self._start = len(emulator.calls())

    def calls(self) -> list[dict[str, Any]]:
        return self._emulator.calls()[self._start :]

    def methods(self) -> list[str]:
        return [c["method"] for c in self.calls()]

    def queries(self) -> list[dict[str, Any]]:
        return [c["request"]["structured_query"] for c in self.calls() if c["method"] == "RunQuery"]


def _filters(query: dict[str, Any]) -> list[tuple[str, int, Any]]:
    """(field, op, value) of each field filter of a traced query, in order."""
    where = query.get("where") or {}
    found = where["composite_filter"]["filters"] if "composite_filter" in where else [where]
    out = []
    for f in found:
        ff = f["field_filter"]
        value = ff["value"]
        if "array_value" in value:
            plain: Any = [v["string_value"] for v in value["array_value"].get("values", [])]
        elif value.get("string_value"):
            plain = value["string_value"]
        else:
            plain = value.get("boolean_value")
        out.append((ff["field"]["field_path"], ff["op"], plain))
    return out


def _orders(query: dict[str, Any]) -> list[tuple[str, int]]:
    return [(o["field"]["field_path"], o["direction"]) for o in query.get("order_by", [])]


def _raw(emulator: FirestoreEmulator, collection: str, doc_id: str) -> dict[str, Any] | None:
    snapshot = emulator.shared_client().collection(collection).document(doc_id).get()
    return snapshot.to_dict() if snapshot.exists else None


def _advance(store: FirestoreJobStore, job: JobRecord, **changes: Any) -> JobRecord:
    return store.update(job.model_copy(update=changes), expected_version=job.version, expected_status=job.status)


# ---- documents ----------------------------------------------------------------------------------


def test_documents_and_pointers_follow_the_layout(emulator: FirestoreEmulator) -> None:
    store = emulator.new_store(clock=lambda: T0, idempotency_ttl_seconds=3600)
    job = store.create(make_job(backend="vertex-ai", native_id="123"), IdempotencyClaim("key-1", "hash-1"))[0]
    names = store.names
    doc = _raw(emulator, names.jobs, job.id)
    assert doc is not None and json.loads(doc.pop("record"))["id"] == job.id
    assert doc == {
        "id": job.id,
        "account_id": "acct-a",
        "project": "default",
        "name": "mnist",
        "backend": "vertex-ai",
        "status": "PENDING",
        "version": 1,
        "native_key": "vertex-ai:123",
        "active": True,
    }
    assert _raw(emulator, names.native, "vertex-ai:123") == {"job_id": job.id, "account_id": "acct-a"}
    claim_id = hashlib.sha256(json.dumps(["acct-a", "key-1"]).encode()).hexdigest()
    claim = _raw(emulator, names.idempotency, claim_id)
    assert claim is not None and claim.pop("expire_at") == T0 + timedelta(hours=1)
    assert claim == {"account_id": "acct-a", "job_id": job.id, "request_hash": "hash-1"}

    done = _advance(store, job, status=Status.COMPLETED, native_id="456")
    doc = _raw(emulator, names.jobs, job.id)
    assert doc is not None and (doc["status"], doc["version"], doc["active"]) == ("COMPLETED", 2, False)
    assert _raw(emulator, names.native, "vertex-ai:123") is None
    assert _raw(emulator, names.native, "vertex-ai:456") == {"job_id": job.id, "account_id": "acct-a"}
    assert store.find_by_native_id("vertex-ai", "456") == done


def test_idempotency_claims_expire_by_their_own_time(emulator: FirestoreEmulator) -> None:
    now = [T0]
    store = emulator.new_store(clock=lambda: now[0], idempotency_ttl_seconds=3600)
    first, _ = store.create(make_job(), IdempotencyClaim("key-1", "hash-1"))
    now[0] = T0 + timedelta(minutes=59)
    assert store.create(make_job(), IdempotencyClaim("key-1", "hash-1")) == (first, False)
    # Past expire_at the claim no longer counts, even before Firestore's TTL deletes it.
    now[0] = T0 + timedelta(minutes=61)
    second, created = store.create(make_job(), IdempotencyClaim("key-1", "hash-2"))
    assert created and second.id != first.id


def test_a_native_id_with_slashes_is_found(store: FirestoreJobStore) -> None:
    name = "projects/123/locations/us-central1/customJobs/456"
    job = store.create(make_job(backend="vertex-ai", native_id=name))[0]
    assert store.find_by_native_id("vertex-ai", name) == job
    assert store.find_by_native_id("vertex-ai", "projects/123") is None


def test_a_record_over_one_mib_is_payload_too_large(store: FirestoreJobStore) -> None:
    job = make_job().model_copy(update={"spec": {"blob": "x" * 1_100_000}})
    with pytest.raises(PayloadTooLargeError):
        store.create(job)
    assert store.get(job.account_id, job.id) is None


# ---- what goes over the wire --------------------------------------------------------------------


def test_a_status_change_is_one_transaction_of_gets_and_a_commit(
    emulator: FirestoreEmulator, store: FirestoreJobStore
) -> None:
    job = store.create(make_job(backend="sagemaker", native_id="train-x"))[0]
    trace = _Trace(emulator)
    _advance(store, job, status=Status.IN_PROGRESS, native_status="Training")
    assert trace.methods() == ["BeginTransaction", "BatchGetDocuments", "Commit"]
    get, commit = trace.calls()[1]["request"], trace.calls()[2]["request"]
    assert get["documents"][0].endswith(f"/{store.names.jobs}/{job.id}") and get["transaction"]
    assert commit["transaction"] and [w["update"]["name"].rsplit("/", 2)[1:] for w in commit["writes"]] == [
        [store.names.jobs, job.id]
    ]


def test_list_active_reads_only_active_true_in_id_order(emulator: FirestoreEmulator, store: FirestoreJobStore) -> None:
    jobs = [store.create(make_job(seq=i))[0] for i in range(3)]
    trace = _Trace(emulator)
    page, cursor = store.list_active(limit=2)
    assert [j.id for j in page] == [jobs[0].id, jobs[1].id] and cursor is not None
    store.list_active(limit=2, cursor=cursor)
    first, second = trace.queries()
    assert first["from"] == [{"collection_id": store.names.jobs, "all_descendants": False}]
    assert _filters(first) == [("active", EQUAL, True)]
    assert _filters(second) == [("active", EQUAL, True), ("id", GREATER_THAN, jobs[1].id)]
    assert _orders(second) == [("id", ASCENDING)] and second["limit"] == {"value": 3}
    assert second["select"] == {"fields": [{"field_path": "record"}]}
    assert (("active", "ASCENDING"), ("id", "ASCENDING")) in layout.JOB_INDEXES


def test_list_filters_server_side_on_a_declared_index(emulator: FirestoreEmulator, store: FirestoreJobStore) -> None:
    store.create(make_job(seq=1, backend="sagemaker", project="vision"))
    trace = _Trace(emulator)
    query = JobQuery(status=[Status.PENDING, Status.FAILED], backend="sagemaker", project="vision", limit=5)
    query.cursor = encode_cursor({"id": make_job(seq=9).id})
    page, _ = store.list("acct-a", query)
    assert len(page) == 1
    [sent] = trace.queries()
    filters = _filters(sent)
    assert filters[0] == ("account_id", EQUAL, "acct-a")
    assert filters[1] == ("status", IN, ["FAILED", "PENDING"])
    assert filters[2:4] == [("backend", EQUAL, "sagemaker"), ("project", EQUAL, "vision")]
    assert filters[4][:2] == ("id", LESS_THAN)
    assert _orders(sent) == [("id", DESCENDING)] and sent["limit"] == {"value": 6}
    index = (
        ("account_id", "ASCENDING"),
        ("status", "ASCENDING"),
        ("backend", "ASCENDING"),
        ("project", "ASCENDING"),
        ("id", "DESCENDING"),
    )
    assert index in layout.JOB_INDEXES


def test_lookups_are_gets_and_no_query_is_unfiltered(emulator: FirestoreEmulator, store: FirestoreJobStore) -> None:
    trace = _Trace(emulator)
    job = store.create(make_job(backend="sagemaker"), IdempotencyClaim("k", "h"))[0]
    store.create(make_job(backend="sagemaker"), IdempotencyClaim("k", "h"))
    job = _advance(store, job, native_id="train-1")
    _advance(store, job, status=Status.CANCELED, native_id="train-2", attempt=2)
    store.get("acct-a", job.id)
    store.list("acct-a", JobQuery(status=[Status.CANCELED], project="default", limit=1))
    store.list_active(limit=1)
    before_find = len(trace.calls())
    store.find_by_native_id("sagemaker", "train-2")
    assert [c["method"] for c in trace.calls()[before_find:]] == ["BatchGetDocuments", "BatchGetDocuments"]
    store.put_key(ApiKey(key_id="k1", secret_hash="sha256:x", account_ids=["acct-a"], created_at=T0))
    store.revoke_key("k1", T0)
    store.list_keys("acct-a")
    assert set(trace.methods()) <= {"BatchGetDocuments", "BeginTransaction", "Commit", "Rollback", "RunQuery"}
    queries = trace.queries()
    assert len(queries) == 3
    assert [_filters(q)[0] for q in queries] == [
        ("account_id", EQUAL, "acct-a"),
        ("active", EQUAL, True),
        ("account_ids", ARRAY_CONTAINS, "acct-a"),
    ]


# ---- unavailability -----------------------------------------------------------------------------

_READS = {
    "get": lambda s: s.get("acct-a", make_job().id),
    "list": lambda s: s.list("acct-a", JobQuery(status=[Status.PENDING])),
    "list_active": lambda s: s.list_active(),
    "find_by_native_id": lambda s: s.find_by_native_id("sagemaker", "train-1"),
    "get_key": lambda s: s.get_key("k1"),
    "list_keys": lambda s: s.list_keys("acct-a"),
    "put_key": lambda s: s.put_key(ApiKey(key_id="k1", secret_hash="sha256:x", account_ids=["a"], created_at=T0)),
}


@pytest.mark.parametrize("call", list(_READS))
def test_an_unreachable_firestore_is_unavailable(call: str) -> None:
    client = emulator_client(f"127.0.0.1:{free_port()}", "train-test")  # nothing listens there
    store = FirestoreJobStore("t_", client=client, timeout=0.3)
    try:
        with pytest.raises(UnavailableError) as raised:
            _READS[call](store)
    finally:
        client.close()
    assert raised.value.retryable and raised.value.status == 503
    assert type(raised.value.__cause__).__module__.startswith("google.api_core")


def test_an_emulator_that_stopped_is_unavailable() -> None:
    emulator = FirestoreEmulator()
    try:
        client = emulator.client()  # not the emulator's shared client, which stop() closes
        store = emulator.new_store(client=client, timeout=0.3)
        job = store.create(make_job())[0]
        assert store.get("acct-a", job.id) == job
    finally:
        emulator.stop()
    try:
        with pytest.raises(UnavailableError):
            store.get("acct-a", job.id)
    finally:
        client.close()


# ---- the harness --------------------------------------------------------------------------------


def test_the_emulator_listens_on_loopback_only(emulator: FirestoreEmulator) -> None:
    port = int(emulator.host.rsplit(":", 1)[1])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                listening.append(address)
    if listening:
        assert listening == ["0100007F"]  # 127.0.0.1, little-endian hex
    else:  # no /proc: the port must refuse connections on any other address of this host
        other = socket.gethostbyname(socket.gethostname())
        assert other.startswith("127.") or socket.socket().connect_ex((other, port)) != 0


def test_a_missing_package_fails_rather_than_skips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULES_ENV, str(tmp_path))
    with pytest.raises(ServerStartError, match="firestore-emulator/server is not installed"):
        node_modules()
    with pytest.raises(ServerStartError):
        FirestoreEmulator().host  # noqa: B018


def test_a_missing_node_fails_rather_than_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(ServerStartError, match="node is not on PATH"):
        FirestoreEmulator().host  # noqa: B018
