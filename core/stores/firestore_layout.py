"""Where ``FirestoreJobStore`` keeps things: collection names, document ids, document fields and the
indexes its queries need. Pure data, no SDK and no I/O; ``docs/firestore-layout.md`` describes it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any

from core.errors import PayloadTooLargeError, TrainError
from core.lifecycle import Status
from core.model import ApiKey, JobRecord
from core.ports import IdempotencyClaim

Doc = dict[str, Any]

# Firestore refuses a document over 1 MiB (1,048,576 bytes, field names and the document name
# included); the record is by far the largest field, so it gets the budget less some headroom.
MAX_RECORD_BYTES = 1_000_000
# Document ids: at most 1,500 bytes, no "/", not "." or "..", not of the form __.*__.
_MAX_DOC_ID_BYTES = 1500
_RESERVED_ID = re.compile(r"^__.*__$")

# The optional equality filters of ``JobStore.list``, in the order the indexes list them.
LIST_FILTERS = ("status", "backend", "project", "name")

Index = tuple[tuple[str, str], ...]  # (field, "ASCENDING" | "DESCENDING"), in index order


def _list_indexes() -> tuple[Index, ...]:
    """One composite index per combination of list filters: ``account_id`` first, the filters,
    then ``id`` descending (the sort and the cursor's range). Declaring every combination keeps
    each query on one index instead of relying on Firestore merging smaller ones."""
    out = []
    for size in range(len(LIST_FILTERS) + 1):
        for chosen in combinations(LIST_FILTERS, size):
            fields = [("account_id", "ASCENDING"), *((f, "ASCENDING") for f in chosen), ("id", "DESCENDING")]
            out.append(tuple(fields))
    return tuple(out)


# Composite indexes of the jobs collection: every query ``FirestoreJobStore`` runs on it is
# served by exactly one of these. infra/gcp declares the same list.
JOB_INDEXES: tuple[Index, ...] = (*_list_indexes(), (("active", "ASCENDING"), ("id", "ASCENDING")))
# Single-field index exemptions: the record is a large string nothing filters on.
UNINDEXED_JOB_FIELDS = ("record",)
# The TTL policy: Firestore deletes an idempotency claim some time (up to ~a day) after this.
TTL_FIELD = "expire_at"


@dataclass(frozen=True)
class Collections:
    """The store's four collections, all named ``<prefix><name>``."""

    prefix: str

    def __post_init__(self) -> None:
        if "/" in self.prefix:
            raise TrainError(f"Firestore collection prefix {self.prefix!r} may not contain '/'")

    @property
    def jobs(self) -> str:
        return f"{self.prefix}jobs"

    @property
    def idempotency(self) -> str:
        return f"{self.prefix}idempotency"

    @property
    def native(self) -> str:
        return f"{self.prefix}native"

    @property
    def keys(self) -> str:
        return f"{self.prefix}api_keys"


def doc_id(raw: str) -> str:
    """A document id that is ``raw`` where Firestore allows it: "%" and "/" are escaped, the ids
    Firestore reserves get a leading "%", and an overlong one becomes its SHA-256."""
    escaped = raw.replace("%", "%25").replace("/", "%2F")
    if escaped in ("", ".", "..") or _RESERVED_ID.match(escaped):
        escaped = "%" + escaped
    if len(escaped.encode()) > _MAX_DOC_ID_BYTES:
        return "sha256-" + hashlib.sha256(raw.encode()).hexdigest()
    return escaped


def native_key(backend: str, native_id: str) -> str:
    return f"{backend}:{native_id}"


def job_native_key(job: JobRecord) -> str | None:
    return native_key(job.backend, job.native_id) if job.native_id is not None else None


def idempotency_doc_id(account_id: str, key: str) -> str:
    """SHA-256 of the (account, key) pair, JSON-encoded so that no two pairs share an id; the
    client's key never appears in a document name."""
    return hashlib.sha256(json.dumps([account_id, key]).encode()).hexdigest()


def job_doc(job: JobRecord) -> Doc:
    """The job document: the fields queries filter and sort on, and the record as JSON."""
    record = job.model_dump_json()
    if len(record.encode()) > MAX_RECORD_BYTES:
        raise PayloadTooLargeError("the job record is too large to store (a Firestore document holds at most 1 MiB)")
    status = Status(job.status)
    return {
        "id": job.id,
        "account_id": job.account_id,
        "project": job.project,
        "name": job.name,
        "backend": job.backend,
        "status": status.value,
        "version": job.version,
        "native_key": job_native_key(job),
        "active": job.needs_sweep,  # the list_active query reads `active == true` only
        "record": record,
    }


def native_doc(job: JobRecord) -> Doc:
    return {"job_id": job.id, "account_id": job.account_id}


def claim_doc(job: JobRecord, claim: IdempotencyClaim, *, now: datetime, ttl_seconds: int) -> Doc:
    return {
        "account_id": job.account_id,
        "job_id": job.id,
        "request_hash": claim.request_hash,
        TTL_FIELD: now + timedelta(seconds=ttl_seconds),
    }


def key_doc(key: ApiKey) -> Doc:
    return {"key_id": key.key_id, "account_ids": list(key.account_ids), "record": key.model_dump_json()}


def job_of(doc: Doc) -> JobRecord:
    return JobRecord.model_validate_json(str(doc["record"]))


def key_of(doc: Doc) -> ApiKey:
    return ApiKey.model_validate_json(str(doc["record"]))
