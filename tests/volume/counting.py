"""A counting wrapper around a real job store: every call goes through to it unchanged.

It counts the reads and the conditional writes the service makes, and keeps, for every write that
went through, the status the job was stored with at which version, so a test can replay each
job's stored history in version order (the order the store itself accepted the writes in).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from core.errors import VersionConflictError
from core.lifecycle import Status
from core.model import JobRecord

READS = ("get", "find_by_native_id", "list", "list_active")
Page = tuple[list[JobRecord], str | None]  # named here: the method called `list` shadows the builtin


class CountingStore:
    """``JobStore`` and ``KeyStore`` by delegation to ``inner``; safe to share between threads."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.rows_read = 0  # job records returned by reads
        self.conflicts = 0  # conditional writes the store refused
        self.history: dict[str, list[tuple[int, Status]]] = {}  # job id -> (version, status) per write

    @property
    def reads(self) -> int:
        return sum(self.calls[name] for name in READS)

    @property
    def writes(self) -> int:
        """Conditional writes attempted (``update``), including refused ones."""
        return self.calls["update"]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.rows_read = self.conflicts = 0
            self.history.clear()

    def _count(self, name: str, rows: int = 0) -> None:
        with self._lock:
            self.calls[name] += 1
            self.rows_read += rows

    def create(self, job: JobRecord, idempotency: Any = None) -> tuple[JobRecord, bool]:
        stored, created = self.inner.create(job, idempotency)
        self._count("create")
        if created:
            self._record(stored)
        return stored, created

    def update(self, job: JobRecord, *, expected_version: int, expected_status: Status) -> JobRecord:
        self._count("update")
        try:
            stored: JobRecord = self.inner.update(
                job, expected_version=expected_version, expected_status=expected_status
            )
        except VersionConflictError:
            with self._lock:
                self.conflicts += 1
            raise
        self._record(stored)
        return stored

    def _record(self, job: JobRecord) -> None:
        with self._lock:
            self.history.setdefault(job.id, []).append((job.version, Status(job.status)))

    def get(self, account_id: str, job_id: str) -> JobRecord | None:
        job: JobRecord | None = self.inner.get(account_id, job_id)
        self._count("get", int(job is not None))
        return job

    def find_by_native_id(self, backend: str, native_id: str) -> JobRecord | None:
        job: JobRecord | None = self.inner.find_by_native_id(backend, native_id)
        self._count("find_by_native_id", int(job is not None))
        return job

    def list(self, account_id: str, query: Any) -> Page:
        page: Page = self.inner.list(account_id, query)
        self._count("list", len(page[0]))
        return page

    def list_active(self, *, limit: int = 100, cursor: str | None = None) -> Page:
        page: Page = self.inner.list_active(limit=limit, cursor=cursor)
        self._count("list_active", len(page[0]))
        return page

    def __getattr__(self, name: str) -> Any:  # the KeyStore methods and anything else, uncounted
        return getattr(self.inner, name)
