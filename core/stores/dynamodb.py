"""The AWS store: jobs, idempotency claims and API keys in one DynamoDB table.

The items, keys and index are described in ``docs/dynamodb-table.md`` and defined in
``dynamodb_table.py``; the write requests are built in ``dynamodb_ops.py``. boto3 is imported
only when no client is given, so importing this module pulls no SDK.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from core.errors import (
    IdempotencyMismatchError,
    TrainError,
    UnavailableError,
    VersionConflictError,
)
from core.lifecycle import Status
from core.model import ApiKey, JobQuery, JobRecord
from core.ports import Clock, IdempotencyClaim
from core.stores import dynamodb_ops as ops
from core.stores.cursor import check_limit, decode_id_cursor, encode_cursor
from core.stores.dynamodb_client import Table, WriteRejected, create_table
from core.stores.dynamodb_ops import Expr
from core.stores.dynamodb_table import (
    ACTIVE_INDEX,
    ACTIVE_PARTITION,
    ACTIVE_PK,
    ACTIVE_SK,
    KEYS_PARTITION,
    NATIVE_KEY,
    PK,
    RECORD,
    SK,
    Plain,
    account_pk,
    api_key_key,
    idem_key,
    job_key,
    native_item_key,
    native_key,
    to_wire,
)

__all__ = ["DynamoDBJobStore", "create_table"]

_Page = tuple[list[JobRecord], str | None]  # a class attribute named `list` shadows the builtin

# With a FilterExpression, DynamoDB applies ``Limit`` before filtering; read this many items per
# request so that a selective filter does not cost one round trip per matching job.
_FILTERED_BATCH = 100
_KEY_WRITE_ATTEMPTS = 3


class DynamoDBJobStore:
    """``JobStore`` and ``KeyStore`` over one DynamoDB table, through the low-level client.

    Every status change is one conditional write on the job item (version and status in its
    ConditionExpression); nothing scans the table.
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: Any = None,
        idempotency_ttl_seconds: int = 24 * 3600,
        clock: Clock | None = None,
    ) -> None:
        if client is None:
            import boto3

            # botocore reads AWS_ENDPOINT_URL and AWS_DEFAULT_REGION itself but not AWS_REGION,
            # which is the one Lambda and most container runtimes are sure to set.
            region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
            client = boto3.client("dynamodb", region_name=region)
        self.table_name = table_name
        self._table = Table(client, table_name)
        self._idempotency_ttl = idempotency_ttl_seconds
        self._clock = clock

    # ---- JobStore -------------------------------------------------------------------------------

    def create(self, job: JobRecord, idempotency: IdempotencyClaim | None = None) -> tuple[JobRecord, bool]:
        writes = [ops.put_new_job(job)]
        if job.native_id is not None:
            writes.append(ops.put_native(job, native_key(job.backend, job.native_id)))
        if idempotency is not None:
            now = int(self._now().timestamp())
            writes.append(ops.put_claim(job, idempotency, now=now, ttl_seconds=self._idempotency_ttl))
        try:
            self._table.write(writes)
        except WriteRejected as exc:
            if idempotency is not None and exc.failed(len(writes) - 1):
                return self._replay(job.account_id, idempotency, exc.items[-1])
            if job.native_id is not None and exc.failed(1):
                raise _native_taken(job) from exc
            raise VersionConflictError(f"job {job.id} already exists") from exc
        return job.model_copy(deep=True), True

    def _replay(self, account_id: str, claim: IdempotencyClaim, seen: Plain | None) -> tuple[JobRecord, bool]:
        stored = seen or self._table.get(idem_key(account_id, claim.key))
        if stored is None:  # expired and deleted between the write and the read
            raise UnavailableError("the idempotency claim changed during the request; retry it")
        if stored["request_hash"] != claim.request_hash:
            raise IdempotencyMismatchError("Idempotency-Key was used with a different request")
        first = self.get(account_id, str(stored["job_id"]))
        if first is None:
            raise TrainError(f"idempotency claim {claim.key} names a job that does not exist")
        return first, False

    def get(self, account_id: str, job_id: str) -> JobRecord | None:
        item = self._table.get(job_key(account_id, job_id))
        return JobRecord.model_validate_json(str(item[RECORD])) if item else None

    def update(self, job: JobRecord, *, expected_version: int, expected_status: Status) -> JobRecord:
        stored = job.model_copy(deep=True, update={"version": expected_version + 1})
        new_native = native_key(job.backend, job.native_id) if job.native_id is not None else None
        status = Status(expected_status).value
        # The common case: the native id is unchanged, so one UpdateItem of the job item.
        try:
            self._table.write([ops.update_job(stored, expected_version, status, new_native)])
            return stored
        except WriteRejected as exc:
            current = exc.items[0] or self._table.get(job_key(job.account_id, job.id))
            if current is None or current.get("version") != expected_version or current.get("status") != status:
                raise VersionConflictError(f"job {job.id} changed since it was read") from exc
            old = current.get(NATIVE_KEY)
            old_native = None if old is None else str(old)
            if old_native == new_native:
                raise VersionConflictError(f"job {job.id} changed since it was read") from exc
        # Only the native id differs: move its lookup item in one transaction with the job write,
        # still conditional on the version and status the caller read.
        writes = [ops.update_job(stored, expected_version, status, old_native)]
        if new_native is not None:
            writes.append(ops.put_native(job, new_native))
        if old_native is not None:
            writes.append(ops.delete_native(old_native, job.id))
        try:
            self._table.write(writes)
        except WriteRejected as exc:
            if new_native is not None and exc.failed(1):
                raise _native_taken(job) from exc
            raise VersionConflictError(f"job {job.id} changed since it was read") from exc
        return stored

    def list(self, account_id: str, query: JobQuery) -> _Page:
        check_limit(query.limit)
        e = Expr()
        key = f"{e.n(PK)} = {e.v(account_pk(account_id))} AND begins_with({e.n(SK)}, {e.v('JOB#')})"
        params: dict[str, Any] = {
            "KeyConditionExpression": key,
            "ScanIndexForward": False,  # job ids sort by creation time: newest first
            "ConsistentRead": True,
            "ProjectionExpression": e.n(RECORD),
        }
        filters = []
        if query.status:
            filters.append(f"{e.n('status')} IN ({', '.join(e.v(Status(s).value) for s in query.status)})")
        for attr in ("backend", "project", "name"):
            value = getattr(query, attr)
            if value:
                filters.append(f"{e.n(attr)} = {e.v(value)}")
        if filters:
            params["FilterExpression"] = " AND ".join(filters)
        params["Limit"] = max(query.limit + 1, _FILTERED_BATCH) if filters else query.limit + 1
        if query.cursor:
            params["ExclusiveStartKey"] = to_wire(job_key(account_id, decode_id_cursor(query.cursor)))
        return _page(self._table.query({**params, **e.params()}), query.limit)

    def list_active(self, *, limit: int = 100, cursor: str | None = None) -> _Page:
        check_limit(limit)
        e = Expr()
        key = f"{e.n(ACTIVE_PK)} = {e.v(ACTIVE_PARTITION)}"
        if cursor:
            key += f" AND {e.n(ACTIVE_SK)} > {e.v(decode_id_cursor(cursor))}"
        params = {"IndexName": ACTIVE_INDEX, "KeyConditionExpression": key, "ProjectionExpression": e.n(RECORD)}
        return _page(self._table.query({**params, "Limit": limit + 1, **e.params()}), limit)

    def find_by_native_id(self, backend: str, native_id: str) -> JobRecord | None:
        pointer = self._table.get(native_item_key(native_key(backend, native_id)))
        if pointer is None:
            return None
        item = self._table.get({PK: str(pointer["job_pk"]), SK: f"JOB#{pointer['job_id']}"})
        job = JobRecord.model_validate_json(str(item[RECORD])) if item else None
        return job if job is not None and job.backend == backend and job.native_id == native_id else None

    # ---- KeyStore -------------------------------------------------------------------------------

    def put_key(self, key: ApiKey) -> None:
        for _ in range(_KEY_WRITE_ATTEMPTS):
            current = self._table.get(api_key_key(key.key_id))
            try:
                self._table.write(ops.put_key(key, current))
                return
            except WriteRejected:
                continue  # another writer changed the key between this read and write
        raise VersionConflictError(f"API key {key.key_id} kept changing while it was written")

    def get_key(self, key_id: str) -> ApiKey | None:
        item = self._table.get(api_key_key(key_id))
        return ApiKey.model_validate_json(str(item[RECORD])) if item else None

    def list_keys(self, account_id: str | None = None) -> builtins.list[ApiKey]:
        e = Expr()
        partition = KEYS_PARTITION if account_id is None else account_pk(account_id)
        params = {
            "KeyConditionExpression": f"{e.n(PK)} = {e.v(partition)} AND begins_with({e.n(SK)}, {e.v('KEY#')})",
            "ConsistentRead": True,
            "ProjectionExpression": e.n("key_id"),
        }
        ids = [str(item["key_id"]) for item in self._table.query({**params, **e.params()})]
        items = self._table.batch_get([api_key_key(key_id) for key_id in ids])
        keys = [ApiKey.model_validate_json(str(item[RECORD])) for item in items]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def revoke_key(self, key_id: str, at: datetime) -> bool:
        for _ in range(_KEY_WRITE_ATTEMPTS):
            current = self._table.get(api_key_key(key_id))
            if current is None:
                return False
            key = ApiKey.model_validate_json(str(current[RECORD]))
            if key.revoked_at is not None:  # the first revocation time stands
                return True
            revoked = key.model_copy(update={"revoked_at": at}).model_dump_json()
            try:
                self._table.write([ops.replace_key_record(key_id, str(current[RECORD]), revoked)])
                return True
            except WriteRejected:
                continue
        raise VersionConflictError(f"API key {key_id} kept changing while it was revoked")

    def _now(self) -> datetime:
        return self._clock() if self._clock is not None else datetime.now(UTC)


def _native_taken(job: JobRecord) -> VersionConflictError:
    return VersionConflictError(f"native id {job.native_id} on {job.backend} already belongs to another job")


def _page(items: Iterable[Plain], limit: int) -> _Page:
    # One item past the page tells whether another page follows.
    found = list(islice(items, limit + 1))
    page = [JobRecord.model_validate_json(str(item[RECORD])) for item in found[:limit]]
    return page, (encode_cursor({"id": page[-1].id}) if len(found) > limit else None)
