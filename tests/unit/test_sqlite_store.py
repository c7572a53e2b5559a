"""SQLite specifics the contract suite cannot see: WAL, schema, threads and processes on one file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import InvalidRequestError, TrainError, UnavailableError, VersionConflictError
from core.lifecycle import Status
from core.model import ApiKey, Delivery, JobQuery, JobRecord
from core.ports import IdempotencyClaim
from core.stores.sqlite import SCHEMA_VERSION, SQLiteJobStore
from tests.contract.conftest import T0, make_job

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "train.db"


@pytest.fixture
def store(db: Path) -> Iterator[SQLiteJobStore]:
    s = SQLiteJobStore(db)
    yield s
    s.close()


def _raw(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, isolation_level=None)


def test_file_is_in_wal_mode_with_the_current_schema(store: SQLiteJobStore, db: Path) -> None:
    raw = _raw(db)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = dict(raw.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
    assert "WHERE (status IN ('IN_PROGRESS','PENDING') OR outbox > 0)" in indexes["jobs_active"]
    assert "UNIQUE" in indexes["jobs_by_native_id"] and "WHERE native_id IS NOT NULL" in indexes["jobs_by_native_id"]
    assert "(account_id, id DESC)" in indexes["jobs_by_account"]
    raw.close()


def test_reopening_keeps_data_and_schema_creation_is_idempotent(db: Path) -> None:
    first = SQLiteJobStore(db)
    job = first.create(make_job(native_id="run-1"), IdempotencyClaim("k", "h"))[0]
    running = first.update(
        job.model_copy(update={"status": Status.IN_PROGRESS}), expected_version=1, expected_status=Status.PENDING
    )
    first.put_key(ApiKey(key_id="k1", secret_hash="h1", account_ids=["acct-a"], created_at=T0))
    first.close()

    second = SQLiteJobStore(db)
    assert second.get("acct-a", job.id) == running
    assert second.find_by_native_id("local", "run-1") == running
    assert second.list_active() == ([running], None)
    assert second.create(make_job(), IdempotencyClaim("k", "h")) == (running, False)
    assert [k.key_id for k in second.list_keys("acct-a")] == ["k1"]
    second.close()
    assert _raw(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_file_from_a_newer_schema_is_refused(db: Path) -> None:
    SQLiteJobStore(db).close()
    raw = _raw(db)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(TrainError, match="schema version"):
        SQLiteJobStore(db)


def test_a_schema_1_file_is_migrated_and_keeps_its_jobs(db: Path) -> None:
    from core.stores.sqlite import _MIGRATIONS

    db.parent.mkdir(parents=True)
    raw = _raw(db)
    for statement in _MIGRATIONS[0]:
        raw.execute(statement)
    raw.execute("PRAGMA user_version = 1")
    ended, running = make_job(seq=1, status=Status.COMPLETED), make_job(seq=2, status=Status.IN_PROGRESS)
    for job in (ended, running):
        raw.execute(
            "INSERT INTO jobs (id, account_id, project, name, backend, status, version, native_id, created_at, record)"
            " VALUES (?, ?, ?, ?, ?, ?, 1, NULL, ?, ?)",
            (job.id, job.account_id, job.project, job.name, job.backend, job.status.value, T0.isoformat(),
             job.model_dump_json()),
        )
    raw.close()

    store = SQLiteJobStore(db)
    assert _raw(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert store.list_active() == ([running], None)
    owed = ended.model_copy(update={"outbox": [Delivery(
        id="dlv_1", status=Status.COMPLETED, previous_status=Status.IN_PROGRESS, attempt=1, occurred_at=T0, next_at=T0,
    )]})
    store.update(owed, expected_version=1, expected_status=Status.COMPLETED)
    assert [j.id for j in store.list_active()[0]] == [ended.id, running.id]
    store.close()


def test_columns_follow_the_record(store: SQLiteJobStore, db: Path) -> None:
    job = store.create(make_job(backend="sagemaker"))[0]
    done = store.update(
        job.model_copy(update={"status": Status.FAILED, "native_id": "n-1"}),
        expected_version=1,
        expected_status=Status.PENDING,
    )
    row = _raw(db).execute("SELECT status, version, native_id, backend, record FROM jobs WHERE id = ?", (job.id,))
    status, version, native_id, backend, record = row.fetchone()
    assert (status, version, native_id, backend) == ("FAILED", 2, "n-1", "sagemaker")
    assert JobRecord.model_validate_json(record) == done


def test_a_native_id_belongs_to_one_job_per_backend(store: SQLiteJobStore) -> None:
    first = store.create(make_job(native_id="shared"))[0]
    other_backend = store.create(make_job(backend="vertex-ai", native_id="shared"))[0]
    second = store.create(make_job())[0]
    with pytest.raises(VersionConflictError):
        store.update(
            second.model_copy(update={"native_id": "shared"}), expected_version=1, expected_status=second.status
        )
    with pytest.raises(VersionConflictError):
        store.create(make_job(native_id="shared"))
    assert store.find_by_native_id("local", "shared") == first
    assert store.find_by_native_id("vertex-ai", "shared") == other_backend
    assert store.get("acct-a", second.id) == second


def test_a_limit_below_one_is_a_bad_request(store: SQLiteJobStore) -> None:
    with pytest.raises(InvalidRequestError):
        store.list("acct-a", JobQuery(limit=0))
    with pytest.raises(InvalidRequestError):
        store.list_active(limit=0)


def test_concurrent_conditional_updates_from_two_store_objects(db: Path) -> None:
    stores = [SQLiteJobStore(db), SQLiteJobStore(db)]
    job = stores[0].create(make_job())[0]
    threads, rounds = 6, 15
    barrier = threading.Barrier(threads)
    wins: list[tuple[int, int]] = []  # (round, expected_version) of every successful update
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        store = stores[n % 2]
        try:
            for r in range(rounds):
                barrier.wait()  # everyone reads the same version ...
                seen = store.get("acct-a", job.id)
                assert seen is not None
                barrier.wait()  # ... then everyone tries to write on top of it
                bumped = seen.model_copy(update={"ignored_updates": seen.ignored_updates + 1})
                try:
                    store.update(bumped, expected_version=seen.version, expected_status=Status.PENDING)
                except VersionConflictError:
                    continue
                with lock:
                    wins.append((r, seen.version))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert not errors
    assert sorted(r for r, _ in wins) == list(range(rounds))  # exactly one winner per round
    assert len({v for _, v in wins}) == len(wins)  # and per version
    final = stores[1].get("acct-a", job.id)
    assert final is not None
    assert final.version == 1 + len(wins)
    assert final.ignored_updates == len(wins)  # no win was lost
    for s in stores:
        s.close()


def test_a_second_process_writes_keys_while_the_store_is_open(store: SQLiteJobStore, db: Path) -> None:
    store.create(make_job())
    script = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from core.model import ApiKey\n"
        "from core.stores.sqlite import SQLiteJobStore\n"
        "s = SQLiteJobStore(sys.argv[1])\n"
        "for i in range(30):\n"
        "    s.put_key(ApiKey(key_id=f'cli-{i}', secret_hash='h', account_ids=['acct-a'],"
        " created_at=datetime.now(UTC)))\n"
        "s.revoke_key('cli-0', datetime.now(UTC))\n"
        "print(len(s.list_keys()))\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(db)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for _ in range(30):  # keep writing from this process meanwhile
        store.create(make_job())
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert int(out) >= 30
    keys = {k.key_id: k for k in store.list_keys("acct-a")}
    assert len(keys) == 30 and keys["cli-0"].revoked_at is not None
    assert len(store.list("acct-a", JobQuery(limit=100))[0]) == 31


def test_a_lock_held_past_busy_timeout_is_unavailable_and_reads_go_on(db: Path) -> None:
    store = SQLiteJobStore(db, busy_timeout=0.1)
    job = store.create(make_job())[0]
    holder = _raw(db)
    holder.execute("BEGIN IMMEDIATE")  # another writer sits on the write lock
    try:
        with pytest.raises(UnavailableError) as info:
            store.create(make_job())
        assert info.value.retryable and isinstance(info.value.__cause__, sqlite3.OperationalError)
        with pytest.raises(UnavailableError):
            store.update(job, expected_version=1, expected_status=Status.PENDING)
        assert store.get("acct-a", job.id) == job  # WAL readers are not blocked
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.create(make_job())[1] is True
    assert store.list_active()[0][0] == job
    store.close()


def test_a_closed_store_refuses_work(db: Path) -> None:
    store = SQLiteJobStore(db)
    store.close()
    with pytest.raises(UnavailableError):
        store.get("acct-a", "x")
