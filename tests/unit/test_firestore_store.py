"""FirestoreJobStore without Firestore: the transaction bodies under interleaved transactions, the
document layout, and the mapping of google errors.

The emulator the integration tests use does not isolate transactions, so concurrency is shown
here: ``_Database`` commits the way Firestore does for our purpose (a transaction whose reads
changed before its commit is aborted and run again from the start), and the store's own bodies
run in it, interleaved by hand.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from google.api_core import exceptions as g

from core.errors import (
    IdempotencyMismatchError,
    PayloadTooLargeError,
    TrainError,
    UnavailableError,
    VersionConflictError,
)
from core.lifecycle import Status
from core.model import JobRecord
from core.ports import IdempotencyClaim
from core.stores import firestore_layout as layout
from core.stores import firestore_tx as bodies
from core.stores.firestore_client import from_google_error, translated
from core.stores.firestore_layout import Collections, Doc
from tests.contract.conftest import T0, make_job

ROOT = Path(__file__).resolve().parents[2]
NAMES = Collections("t_")
T = TypeVar("T")


class _Aborted(Exception):
    """What Firestore answers a commit whose reads went stale."""


class _Database:
    """Documents with a per-document revision; commits are checked against what was read."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], tuple[Doc, int]] = {}
        self.commits = 0

    def begin(self) -> _Tx:
        return _Tx(self)

    def run(self, body: Callable[[_Tx], T], attempts: int = 5) -> T:
        """Run ``body`` as Firestore's transaction runner does: again from the start on abort."""
        for _ in range(attempts):
            tx = self.begin()
            result = body(tx)
            try:
                tx.commit()
                return result
            except _Aborted:
                continue
        raise _Aborted("attempts spent")

    def doc(self, collection: str, doc_id: str) -> Doc | None:
        found = self.docs.get((collection, doc_id))
        return dict(found[0]) if found else None


class _Tx:
    def __init__(self, db: _Database) -> None:
        self.db = db
        self.read: dict[tuple[str, str], int] = {}
        self.writes: list[tuple[str, tuple[str, str], Doc | None]] = []

    def get(self, collection: str, doc_id: str) -> Doc | None:
        if self.writes:
            raise AssertionError("Firestore refuses a read after a write in a transaction")
        key = (collection, doc_id)
        found = self.db.docs.get(key)
        self.read[key] = found[1] if found else 0
        return dict(found[0]) if found else None

    def create(self, collection: str, doc_id: str, data: Doc) -> None:
        self.writes.append(("create", (collection, doc_id), dict(data)))

    def set(self, collection: str, doc_id: str, data: Doc) -> None:
        self.writes.append(("set", (collection, doc_id), dict(data)))

    def delete(self, collection: str, doc_id: str) -> None:
        self.writes.append(("delete", (collection, doc_id), None))

    def commit(self) -> None:
        for key, revision in self.read.items():
            found = self.db.docs.get(key)
            if (found[1] if found else 0) != revision:
                raise _Aborted(f"{key} changed since it was read")
        for kind, key, data in self.writes:
            if kind == "create" and key in self.db.docs:
                raise _Aborted(f"{key} already exists")
            revision = self.db.docs[key][1] + 1 if key in self.db.docs else 1
            if data is None:
                self.db.docs.pop(key, None)
            else:
                self.db.docs[key] = (data, revision)
        self.db.commits += 1


def _create(db: _Database, job: JobRecord, claim: IdempotencyClaim | None = None) -> tuple[JobRecord, bool]:
    return db.run(lambda tx: bodies.create_job(tx, NAMES, job, claim, now=T0, ttl_seconds=3600))


def _update(job: JobRecord, base: JobRecord) -> Callable[[_Tx], JobRecord]:
    return lambda tx: bodies.update_job(tx, NAMES, job, expected_version=base.version, expected_status=base.status)


def _stored(db: _Database, job: JobRecord) -> JobRecord:
    doc = db.doc(NAMES.jobs, job.id)
    assert doc is not None
    return layout.job_of(doc)


# ---- interleaved transactions -------------------------------------------------------------------


def test_of_two_interleaved_updates_from_the_same_read_the_second_is_refused() -> None:
    db = _Database()
    job, _ = _create(db, make_job())
    cancel = _update(job.model_copy(update={"status": Status.CANCELED}), job)
    start = _update(job.model_copy(update={"status": Status.IN_PROGRESS}), job)

    first, second = db.begin(), db.begin()
    canceled = cancel(first)
    stale = start(second)  # both read version 1, PENDING
    assert stale.version == canceled.version == 2 and second.writes  # each would write on its own
    first.commit()
    with pytest.raises(_Aborted):
        second.commit()  # the job changed after the second read it
    # Run again from the start, as Firestore's runner does, the compare step refuses it.
    with pytest.raises(VersionConflictError):
        db.run(start)
    assert _stored(db, job) == canceled
    assert db.commits == 2  # the create and the winning update; the loser wrote nothing


def test_a_rerun_transaction_applies_when_the_change_that_aborted_it_left_its_expectations_true() -> None:
    db = _Database()
    job, _ = _create(db, make_job())
    other, _ = _create(db, make_job())
    tx = db.begin()
    result = _update(job.model_copy(update={"native_status": "Starting"}), job)(tx)
    db.run(_update(other.model_copy(update={"status": Status.IN_PROGRESS}), other))
    tx.commit()  # only the other job changed: nothing this transaction read
    assert _stored(db, job) == result and result.version == 2


@pytest.mark.parametrize(
    ("expected_version", "expected_status"),
    [(1, Status.IN_PROGRESS), (2, Status.PENDING), (3, Status.IN_PROGRESS)],
    ids=["stale-version", "stale-status", "future-version"],
)
def test_the_compare_step_refuses_stale_expectations_and_writes_nothing(
    expected_version: int, expected_status: Status
) -> None:
    db = _Database()
    job, _ = _create(db, make_job())
    running = db.run(_update(job.model_copy(update={"status": Status.IN_PROGRESS}), job))
    tx = db.begin()
    with pytest.raises(VersionConflictError):
        bodies.update_job(
            tx,
            NAMES,
            running.model_copy(update={"status": Status.FAILED}),
            expected_version=expected_version,
            expected_status=expected_status,
        )
    assert tx.writes == []
    assert _stored(db, job) == running


def test_the_compare_step_refuses_another_account_and_a_missing_job() -> None:
    job = make_job("acct-a")
    doc = layout.job_doc(job)
    expect = {"expected_version": 1, "expected_status": Status.PENDING}
    assert bodies.check_expected(doc, job, **expect) == doc
    with pytest.raises(VersionConflictError):
        bodies.check_expected(doc, job.model_copy(update={"account_id": "acct-b"}), **expect)
    with pytest.raises(VersionConflictError):
        bodies.check_expected(None, job, **expect)


def test_two_interleaved_creates_with_one_idempotency_key_make_one_job() -> None:
    db = _Database()
    claim = IdempotencyClaim("key-1", "hash-1")
    a, b = make_job(), make_job()
    first, second = db.begin(), db.begin()
    bodies.create_job(first, NAMES, a, claim, now=T0, ttl_seconds=3600)
    bodies.create_job(second, NAMES, b, claim, now=T0, ttl_seconds=3600)  # both saw no claim
    first.commit()
    with pytest.raises(_Aborted):
        second.commit()
    assert _create(db, b, claim) == (a, False)  # the rerun finds the first claim
    assert db.doc(NAMES.jobs, b.id) is None
    with pytest.raises(IdempotencyMismatchError):
        _create(db, make_job(), IdempotencyClaim("key-1", "hash-2"))


def test_an_expired_claim_no_longer_counts() -> None:
    db = _Database()
    claim = IdempotencyClaim("key-1", "hash-1")
    first, _ = _create(db, make_job(), claim)
    later = T0 + timedelta(hours=1, seconds=1)
    second, created = db.run(lambda tx: bodies.create_job(tx, NAMES, make_job(), claim, now=later, ttl_seconds=60))
    assert created and second.id != first.id
    stored = db.doc(NAMES.idempotency, layout.idempotency_doc_id("acct-a", "key-1"))
    assert stored is not None and stored["job_id"] == second.id
    assert stored["expire_at"] == later + timedelta(seconds=60)


def test_the_native_id_pointer_moves_with_the_job_and_belongs_to_one_job() -> None:
    db = _Database()
    job, _ = _create(db, make_job(backend="sagemaker", native_id="train-1"))
    assert db.doc(NAMES.native, "sagemaker:train-1") == {"job_id": job.id, "account_id": "acct-a"}
    retried = db.run(_update(job.model_copy(update={"native_id": "train-2", "attempt": 2}), job))
    assert db.doc(NAMES.native, "sagemaker:train-1") is None
    assert db.doc(NAMES.native, "sagemaker:train-2") == {"job_id": job.id, "account_id": "acct-a"}
    other, _ = _create(db, make_job(backend="sagemaker"))
    with pytest.raises(VersionConflictError, match="native id"):
        db.run(_update(other.model_copy(update={"native_id": "train-2"}), other))
    with pytest.raises(VersionConflictError, match="native id"):
        _create(db, make_job(backend="sagemaker", native_id="train-2"))
    assert _stored(db, job) == retried and _stored(db, other) == other


def test_revoking_keeps_the_first_time() -> None:
    from core.model import ApiKey

    db = _Database()
    key = ApiKey(key_id="k1", secret_hash="sha256:x", account_ids=["acct-a"], created_at=T0)
    db.docs[(NAMES.keys, "k1")] = (layout.key_doc(key), 1)
    assert db.run(lambda tx: bodies.revoke_key(tx, NAMES, "k1", T0 + timedelta(hours=1))) is True
    assert db.run(lambda tx: bodies.revoke_key(tx, NAMES, "k1", T0 + timedelta(hours=2))) is True
    doc = db.doc(NAMES.keys, "k1")
    assert doc is not None and layout.key_of(doc).revoked_at == T0 + timedelta(hours=1)
    assert db.run(lambda tx: bodies.revoke_key(tx, NAMES, "nope", T0)) is False


# ---- layout -------------------------------------------------------------------------------------


def test_the_job_document_carries_what_queries_filter_on() -> None:
    job = make_job(backend="vertex-ai", native_id="projects/1/locations/us/customJobs/2", project="vision")
    doc = layout.job_doc(job)
    assert {k: v for k, v in doc.items() if k != "record"} == {
        "id": job.id,
        "account_id": "acct-a",
        "project": "vision",
        "name": "mnist",
        "backend": "vertex-ai",
        "status": "PENDING",
        "version": 1,
        "native_key": "vertex-ai:projects/1/locations/us/customJobs/2",
        "active": True,
    }
    assert layout.job_of(doc) == job
    assert layout.job_doc(job.model_copy(update={"status": Status.EXPIRED}))["active"] is False


@pytest.mark.parametrize(
    ("raw", "doc_id"),
    [
        ("sagemaker:train-1", "sagemaker:train-1"),
        ("vertex-ai:projects/1/customJobs/2", "vertex-ai:projects%2F1%2FcustomJobs%2F2"),
        ("a%2Fb", "a%252Fb"),
        ("..", "%.."),
        ("__name__", "%__name__"),
    ],
)
def test_document_ids_are_valid_and_keep_distinct_raw_values_apart(raw: str, doc_id: str) -> None:
    assert layout.doc_id(raw) == doc_id


def test_an_overlong_document_id_becomes_its_hash() -> None:
    long_id = layout.doc_id("x" * 1501)
    assert long_id.startswith("sha256-") and len(long_id) == 7 + 64
    assert long_id != layout.doc_id("x" * 1502)


def test_idempotency_ids_cannot_collide_across_accounts() -> None:
    assert layout.idempotency_doc_id("a|b", "c") != layout.idempotency_doc_id("a", "b|c")
    assert len(layout.idempotency_doc_id("acct-a", "key-1")) == 64


def test_every_list_filter_combination_has_its_composite_index() -> None:
    list_indexes = [i for i in layout.JOB_INDEXES if i[0][0] == "account_id"]
    assert len(list_indexes) == 16 and len(set(layout.JOB_INDEXES)) == 17
    assert all(i[-1] == ("id", "DESCENDING") for i in list_indexes)
    assert (("active", "ASCENDING"), ("id", "ASCENDING")) in layout.JOB_INDEXES


def test_a_record_over_the_document_limit_is_refused_before_any_write() -> None:
    db = _Database()
    job = make_job().model_copy(update={"spec": {"blob": "x" * 1_100_000}})
    with pytest.raises(PayloadTooLargeError):
        _create(db, job)
    assert db.docs == {}


def test_a_prefix_with_a_slash_is_refused() -> None:
    with pytest.raises(TrainError):
        Collections("a/b")


# ---- errors at the boundary ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        g.ServiceUnavailable("connection refused"),
        g.DeadlineExceeded("deadline"),
        g.ResourceExhausted("quota"),
        g.InternalServerError("internal"),
        g.RetryError("Timeout of 10.0s exceeded", cause=g.ServiceUnavailable("down")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_unavailability_and_throttling_are_retryable_unavailable_errors(exc: Exception) -> None:
    with pytest.raises(UnavailableError) as raised, translated():
        raise exc
    assert raised.value.retryable and raised.value.status == 503
    assert raised.value.__cause__ is exc


@pytest.mark.parametrize("exc", [g.Aborted("contention"), g.AlreadyExists("entity already exists")])
def test_contention_is_a_version_conflict(exc: Exception) -> None:
    with pytest.raises(VersionConflictError) as raised, translated():
        raise exc
    assert raised.value.__cause__ is exc


def test_other_google_errors_are_not_retryable_and_ours_pass_through() -> None:
    with pytest.raises(TrainError) as raised, translated():
        raise g.FailedPrecondition("The query requires an index.")
    assert type(raised.value) is TrainError and not raised.value.retryable
    mismatch = IdempotencyMismatchError("used with another request")
    with pytest.raises(IdempotencyMismatchError) as passed, translated():
        raise mismatch
    assert passed.value is mismatch
    assert from_google_error(KeyError("x")) is None


def test_importing_the_store_pulls_no_sdk() -> None:
    code = (
        "import sys, core.stores.firestore; print(sorted(m for m in sys.modules if m.startswith(('google', 'grpc'))"
        " and m not in ('google', 'google.cloud')))"  # empty namespaces a .pth of google-cloud-aiplatform registers
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
