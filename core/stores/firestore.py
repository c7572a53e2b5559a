"""The GCP store: jobs, idempotency claims and API keys in Firestore (native mode).

The collections, documents and indexes are described in ``docs/firestore-layout.md`` and defined in
``firestore_layout.py``; the transactions' bodies are in ``firestore_tx.py``. google.cloud.firestore
is imported only when the store builds its client or makes a call, so importing this module pulls
no SDK.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TypeVar

from core.lifecycle import Status
from core.model import ApiKey, JobQuery, JobRecord
from core.ports import Clock, IdempotencyClaim
from core.stores import firestore_layout as layout
from core.stores import firestore_tx as bodies
from core.stores.cursor import check_limit, decode_id_cursor, encode_cursor
from core.stores.firestore_client import build_client, call_options, run_transaction, translated
from core.stores.firestore_layout import Collections, Doc
from core.stores.firestore_tx import Tx

__all__ = ["FirestoreJobStore"]

_Page = tuple[list[JobRecord], str | None]  # a class attribute named `list` shadows the builtin
T = TypeVar("T")


class FirestoreJobStore:
    """``JobStore`` and ``KeyStore`` over four Firestore collections named ``<prefix>jobs``,
    ``<prefix>idempotency``, ``<prefix>native`` and ``<prefix>api_keys``.

    Every status change is a transaction that reads the job, compares its version and status
    with the caller's, and writes; Firestore aborts and reruns it when the job changed before the
    commit. Lookups are document gets or queries on declared indexes; nothing reads a collection
    whole except ``list_keys()`` without an account, which asks for every key.

    ``timeout`` bounds each single call, retries included. Transactions keep the SDK's own
    limits for beginning and committing (up to 60 s when Firestore is unreachable).
    """

    def __init__(
        self,
        collection_prefix: str,
        *,
        client: Any = None,
        project: str | None = None,
        idempotency_ttl_seconds: int = 24 * 3600,
        timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.names = Collections(collection_prefix)
        self._owns_client = client is None
        self._client = client if client is not None else build_client(project)
        self._options = call_options(timeout)
        self._idempotency_ttl = idempotency_ttl_seconds
        self._clock = clock

    # ---- JobStore -------------------------------------------------------------------------------

    def create(self, job: JobRecord, idempotency: IdempotencyClaim | None = None) -> tuple[JobRecord, bool]:
        now, ttl = self._now(), self._idempotency_ttl
        return self._transact(lambda tx: bodies.create_job(tx, self.names, job, idempotency, now=now, ttl_seconds=ttl))

    def get(self, account_id: str, job_id: str) -> JobRecord | None:
        doc = self._get(self.names.jobs, job_id)
        if doc is None or doc.get("account_id") != account_id:
            return None
        return layout.job_of(doc)

    def update(self, job: JobRecord, *, expected_version: int, expected_status: Status) -> JobRecord:
        return self._transact(
            lambda tx: bodies.update_job(
                tx, self.names, job, expected_version=expected_version, expected_status=expected_status
            )
        )

    def list(self, account_id: str, query: JobQuery) -> _Page:
        check_limit(query.limit)
        return self._page(self._list_query(account_id, query), query.limit)

    def _list_query(self, account_id: str, query: JobQuery) -> Any:
        """The Firestore query behind ``list``: equality filters, ``id`` below the cursor, newest
        first. Each combination of filters has its composite index (``layout.JOB_INDEXES``)."""
        from google.cloud.firestore import Query
        from google.cloud.firestore_v1.base_query import FieldFilter

        q = self._client.collection(self.names.jobs).where(filter=FieldFilter("account_id", "==", account_id))
        if query.status:
            statuses = sorted({Status(s).value for s in query.status})
            q = q.where(filter=FieldFilter("status", "in", statuses))
        for field in layout.LIST_FILTERS[1:]:
            value = getattr(query, field)
            if value:
                q = q.where(filter=FieldFilter(field, "==", value))
        if query.cursor:
            q = q.where(filter=FieldFilter("id", "<", decode_id_cursor(query.cursor)))
        return q.order_by("id", direction=Query.DESCENDING).limit(query.limit + 1).select(["record"])

    def list_active(self, *, limit: int = 100, cursor: str | None = None) -> _Page:
        check_limit(limit)
        return self._page(self._active_query(limit=limit, cursor=cursor), limit)

    def _active_query(self, *, limit: int, cursor: str | None) -> Any:
        """The Firestore query behind ``list_active``: ``active == true`` on the (active, id) index,
        so terminal jobs are never read."""
        from google.cloud.firestore import Query
        from google.cloud.firestore_v1.base_query import FieldFilter

        q = self._client.collection(self.names.jobs).where(filter=FieldFilter("active", "==", True))
        if cursor:
            q = q.where(filter=FieldFilter("id", ">", decode_id_cursor(cursor)))
        return q.order_by("id", direction=Query.ASCENDING).limit(limit + 1).select(["record"])

    def find_by_native_id(self, backend: str, native_id: str) -> JobRecord | None:
        pointer = self._get(self.names.native, layout.doc_id(layout.native_key(backend, native_id)))
        if pointer is None:
            return None
        doc = self._get(self.names.jobs, str(pointer["job_id"]))
        job = layout.job_of(doc) if doc is not None else None
        return job if job is not None and job.backend == backend and job.native_id == native_id else None

    # ---- KeyStore -------------------------------------------------------------------------------

    def put_key(self, key: ApiKey) -> None:
        # One document holds the key and its grants, so a blind set replaces both at once.
        ref = self._client.collection(self.names.keys).document(layout.doc_id(key.key_id))
        with translated():
            ref.set(layout.key_doc(key), **self._options)

    def get_key(self, key_id: str) -> ApiKey | None:
        doc = self._get(self.names.keys, layout.doc_id(key_id))
        return layout.key_of(doc) if doc is not None else None

    def list_keys(self, account_id: str | None = None) -> builtins.list[ApiKey]:
        from google.cloud.firestore_v1.base_query import FieldFilter

        q = self._client.collection(self.names.keys)
        if account_id is not None:
            q = q.where(filter=FieldFilter("account_ids", "array_contains", account_id))
        with translated():
            keys = [layout.key_of(snap.to_dict()) for snap in q.stream(**self._options)]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def revoke_key(self, key_id: str, at: datetime) -> bool:
        return self._transact(lambda tx: bodies.revoke_key(tx, self.names, key_id, at))

    # ---- calls ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the client if this store built it; a client passed in belongs to the caller."""
        if self._owns_client:
            self._client.close()

    def _get(self, collection: str, doc_id: str) -> Doc | None:
        with translated():
            snapshot = self._client.collection(collection).document(doc_id).get(**self._options)
            return snapshot.to_dict() if snapshot.exists else None

    def _transact(self, body: Callable[[Tx], T]) -> T:
        return run_transaction(self._client, self._options, body)

    def _page(self, query: Any, limit: int) -> _Page:
        with translated():
            found = builtins.list(islice(_docs(query.stream(**self._options)), limit + 1))
        page = [layout.job_of(doc) for doc in found[:limit]]
        # One document past the page tells whether another page follows.
        return page, (encode_cursor({"id": page[-1].id}) if len(found) > limit else None)

    def _now(self) -> datetime:
        return self._clock() if self._clock is not None else datetime.now(UTC)


def _docs(snapshots: Iterable[Any]) -> Iterable[Doc]:
    for snapshot in snapshots:
        yield snapshot.to_dict()
