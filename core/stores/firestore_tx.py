"""The bodies of ``FirestoreJobStore``'s transactions, written against the small ``Tx`` protocol.

Each body reads everything it needs first (Firestore refuses a read after a write in a
transaction), decides, then writes. Firestore runs the body again when the commit aborts because
a document it read changed meanwhile, so the decision is always taken on what is stored at
commit time; ``check_expected`` is the compare step of every status change. No SDK is imported
here: ``firestore_client.GoogleTx`` adapts a real transaction, and the unit tests drive these
bodies with interleaved transactions of their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from core.errors import IdempotencyMismatchError, TrainError, VersionConflictError
from core.lifecycle import Status
from core.model import JobRecord
from core.ports import IdempotencyClaim
from core.stores import firestore_layout as layout
from core.stores.firestore_layout import Collections, Doc


class Tx(Protocol):
    """The part of a Firestore transaction the bodies use; documents as plain dicts."""

    def get(self, collection: str, doc_id: str) -> Doc | None: ...

    def create(self, collection: str, doc_id: str, data: Doc) -> None:
        """Write a document that must not exist yet (the commit fails if it does)."""
        ...

    def set(self, collection: str, doc_id: str, data: Doc) -> None: ...

    def delete(self, collection: str, doc_id: str) -> None: ...


def create_job(
    tx: Tx,
    names: Collections,
    job: JobRecord,
    claim: IdempotencyClaim | None,
    *,
    now: datetime,
    ttl_seconds: int,
) -> tuple[JobRecord, bool]:
    """Store ``job`` with its native-id pointer and idempotency claim, or replay the claim's job."""
    if claim is not None:
        replay = _replay(tx, names, claim, tx.get(names.idempotency, _claim_id(job, claim)), now)
        if replay is not None:
            return replay, False
    doc = layout.job_doc(job)  # refuses an oversized record before anything is written
    if tx.get(names.jobs, job.id) is not None:
        raise VersionConflictError(f"job {job.id} already exists")
    key = layout.job_native_key(job)
    if key is not None and tx.get(names.native, layout.doc_id(key)) is not None:
        raise _native_taken(job)
    tx.create(names.jobs, job.id, doc)
    if key is not None:
        tx.create(names.native, layout.doc_id(key), layout.native_doc(job))
    if claim is not None:
        # set, not create: an expired claim that TTL has not deleted yet is replaced.
        claim_doc = layout.claim_doc(job, claim, now=now, ttl_seconds=ttl_seconds)
        tx.set(names.idempotency, _claim_id(job, claim), claim_doc)
    return job.model_copy(deep=True), True


def check_expected(current: Doc | None, job: JobRecord, *, expected_version: int, expected_status: Status) -> Doc:
    """The compare step of a status change: the stored document must be the caller's job, in the
    account it claims, still at ``expected_version`` and ``expected_status``."""
    if (
        current is None
        or current.get("account_id") != job.account_id
        or current.get("version") != expected_version
        or current.get("status") != Status(expected_status).value
    ):
        raise VersionConflictError(f"job {job.id} changed since it was read")
    return current


def update_job(
    tx: Tx, names: Collections, job: JobRecord, *, expected_version: int, expected_status: Status
) -> JobRecord:
    """Replace the job if it is as the caller read it; move its native-id pointer along."""
    current = check_expected(
        tx.get(names.jobs, job.id), job, expected_version=expected_version, expected_status=expected_status
    )
    stored = job.model_copy(deep=True, update={"version": expected_version + 1})
    doc = layout.job_doc(stored)
    old_key: str | None = current.get("native_key")
    new_key = layout.job_native_key(stored)
    if new_key is not None and new_key != old_key:
        holder = tx.get(names.native, layout.doc_id(new_key))
        if holder is not None and holder.get("job_id") != job.id:
            raise _native_taken(job)
    tx.set(names.jobs, job.id, doc)
    if new_key != old_key:
        if new_key is not None:
            tx.set(names.native, layout.doc_id(new_key), layout.native_doc(stored))
        if old_key is not None:
            tx.delete(names.native, layout.doc_id(old_key))
    return stored


def revoke_key(tx: Tx, names: Collections, key_id: str, at: datetime) -> bool:
    current = tx.get(names.keys, layout.doc_id(key_id))
    if current is None:
        return False
    key = layout.key_of(current)
    if key.revoked_at is None:  # the first revocation time stands
        tx.set(names.keys, layout.doc_id(key_id), layout.key_doc(key.model_copy(update={"revoked_at": at})))
    return True


def _claim_id(job: JobRecord, claim: IdempotencyClaim) -> str:
    return layout.idempotency_doc_id(job.account_id, claim.key)


def _replay(tx: Tx, names: Collections, claim: IdempotencyClaim, seen: Doc | None, now: datetime) -> JobRecord | None:
    """The job a live claim with the same request hash names; None when there is no live claim."""
    if seen is None or not _claim_live(seen, now):
        return None
    if seen.get("request_hash") != claim.request_hash:
        raise IdempotencyMismatchError("Idempotency-Key was used with a different request")
    first = tx.get(names.jobs, str(seen["job_id"]))
    if first is None:
        raise TrainError(f"idempotency claim {claim.key} names a job that does not exist")
    return layout.job_of(first)


def _claim_live(doc: Doc, now: datetime) -> bool:
    """A claim past its ``expire_at`` no longer counts, even before TTL gets round to deleting it."""
    expire_at: Any = doc.get(layout.TTL_FIELD)
    return not isinstance(expire_at, datetime) or expire_at > now


def _native_taken(job: JobRecord) -> VersionConflictError:
    return VersionConflictError(f"native id {job.native_id} on {job.backend} already belongs to another job")
