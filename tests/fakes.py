"""In-memory fakes that fully implement the ports, for unit tests (assert on state, not calls)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from core.errors import IdempotencyMismatchError, InvalidRequestError, VersionConflictError
from core.lifecycle import NativeUpdate, Status
from core.model import (
    ApiKey,
    Checkpoint,
    JobQuery,
    JobRecord,
    JobSpec,
    LogLine,
    LogPage,
    NativeJobRequest,
    Submission,
)
from core.ports import IdempotencyClaim, JobPage
from core.stores.cursor import decode_cursor, encode_cursor


class InMemoryJobStore:
    def __init__(self) -> None:
        self._jobs: dict[str, JobRecord] = {}
        self._idem: dict[tuple[str, str], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self.writes = 0

    def create(self, job: JobRecord, idempotency: IdempotencyClaim | None = None) -> tuple[JobRecord, bool]:
        with self._lock:
            if idempotency is not None:
                seen = self._idem.get((job.account_id, idempotency.key))
                if seen is not None:
                    job_id, digest = seen
                    if digest != idempotency.request_hash:
                        raise IdempotencyMismatchError("Idempotency-Key was used with a different request")
                    return self._jobs[job_id].model_copy(deep=True), False
                self._idem[(job.account_id, idempotency.key)] = (job.id, idempotency.request_hash)
            if job.id in self._jobs:
                raise VersionConflictError(f"job {job.id} exists")
            self._check_native_id(job)
            self._jobs[job.id] = job.model_copy(deep=True)
            self.writes += 1
            return job.model_copy(deep=True), True

    def _check_native_id(self, job: JobRecord) -> None:
        """A native id belongs to one job, as the real stores' unique lookup makes it."""
        key = (job.backend, job.native_id)
        for other in self._jobs.values():
            if job.native_id and other.id != job.id and (other.backend, other.native_id) == key:
                raise VersionConflictError(f"native id {job.native_id} belongs to another job")

    def get(self, account_id: str, job_id: str) -> JobRecord | None:
        job = self._jobs.get(job_id)
        if job is None or job.account_id != account_id:
            return None
        return job.model_copy(deep=True)

    def update(self, job: JobRecord, *, expected_version: int, expected_status: Status) -> JobRecord:
        with self._lock:
            current = self._jobs.get(job.id)
            if (
                current is None
                or current.account_id != job.account_id
                or current.version != expected_version
                or current.status != expected_status
            ):
                raise VersionConflictError(f"job {job.id} changed")
            self._check_native_id(job)
            stored = job.model_copy(deep=True, update={"version": expected_version + 1})
            self._jobs[job.id] = stored
            self.writes += 1
            return stored.model_copy(deep=True)

    def list(self, account_id: str, query: JobQuery) -> JobPage:
        after = decode_cursor(query.cursor, keys=("id",))["id"] if query.cursor else None
        jobs = sorted((j for j in self._jobs.values() if j.account_id == account_id), key=lambda j: j.id, reverse=True)
        out = []
        for job in jobs:
            if after is not None and job.id >= after:
                continue
            if query.status and job.status not in query.status:
                continue
            if query.backend and job.backend != query.backend:
                continue
            if query.project and job.project != query.project:
                continue
            if query.name and job.name != query.name:
                continue
            out.append(job.model_copy(deep=True))
            if len(out) == query.limit + 1:
                break
        if len(out) > query.limit:
            out = out[: query.limit]
            return out, encode_cursor({"id": out[-1].id})
        return out, None

    def list_active(self, *, limit: int = 100, cursor: str | None = None) -> JobPage:
        after = decode_cursor(cursor, keys=("id",))["id"] if cursor else ""
        active = sorted((j for j in self._jobs.values() if j.needs_sweep and j.id > after), key=lambda j: j.id)
        page = [j.model_copy(deep=True) for j in active[:limit]]
        return page, (encode_cursor({"id": page[-1].id}) if len(active) > limit else None)

    def find_by_native_id(self, backend: str, native_id: str) -> JobRecord | None:
        for job in self._jobs.values():
            if job.backend == backend and job.native_id == native_id:
                return job.model_copy(deep=True)
        return None


class InMemoryKeyStore:
    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}

    def put_key(self, key: ApiKey) -> None:
        self._keys[key.key_id] = key.model_copy(deep=True)

    def get_key(self, key_id: str) -> ApiKey | None:
        key = self._keys.get(key_id)
        return key.model_copy(deep=True) if key else None

    def list_keys(self, account_id: str | None = None) -> list[ApiKey]:
        return [k for k in self._keys.values() if account_id is None or account_id in k.account_ids]

    def revoke_key(self, key_id: str, at: datetime) -> bool:
        key = self._keys.get(key_id)
        if key is None:
            return False
        self._keys[key_id] = key.model_copy(update={"revoked_at": key.revoked_at or at})
        return True


class FakeBackend:
    """A backend whose native jobs live in a dict; tests drive their states by hand.

    ``fail_next_submit`` makes the next submit raise the given error *after* creating the native
    job when ``lose_response`` is set (a create whose response was lost).
    """

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self.native: dict[str, str] = {}
        self.creates = 0
        self.submit_calls = 0
        self.submit_delay = 0.0
        self.canceled: list[str] = []
        self.fail_next_submit: BaseException | None = None
        self.lose_response = False
        self.reject_spec: str | None = None

    def check_spec(self, spec: JobSpec) -> None:
        if self.reject_spec and spec.name == self.reject_spec:
            raise InvalidRequestError("rejected")

    def check_native(self, request: NativeJobRequest) -> None:
        return None

    def native_id_for(self, job: JobRecord) -> str | None:
        return f"fake-{job.id}-{job.attempt}"

    def submit(self, job: JobRecord) -> Submission:
        self.submit_calls += 1
        if self.submit_delay:
            time.sleep(self.submit_delay)
        native_id = f"fake-{job.id}-{job.attempt}"
        if self.fail_next_submit is not None and not self.lose_response:
            exc, self.fail_next_submit = self.fail_next_submit, None
            raise exc
        if native_id not in self.native:
            self.native[native_id] = "Queued"
            self.creates += 1
        if self.fail_next_submit is not None:
            exc, self.fail_next_submit = self.fail_next_submit, None
            raise exc
        return Submission(native_id=native_id, cloud_job_identifier={"job_name": native_id}, native_status="Queued")

    def describe(self, job: JobRecord) -> NativeUpdate:
        state = self.native[job.native_id or ""]
        return NativeUpdate(state, FAKE_STATES.get(state), datetime.now(UTC), attempt=job.attempt)

    def cancel(self, job: JobRecord) -> None:
        self.canceled.append(job.id)
        if job.native_id in self.native:
            self.native[job.native_id] = "Stopped"

    def logs(self, job: JobRecord, *, cursor: str | None, limit: int, since: datetime | None) -> LogPage:
        return LogPage(lines=[LogLine(time=job.created_at, message=f"hello from {job.name}")])

    def checkpoints(self, job: JobRecord) -> list[Checkpoint]:
        return [Checkpoint(name="ckpt-1", uri=f"mem://{job.id}/ckpt-1", size_bytes=3, modified_at=job.created_at)]


FAKE_STATES = {
    "Queued": Status.PENDING,
    "Running": Status.IN_PROGRESS,
    "Succeeded": Status.COMPLETED,
    "Failed": Status.FAILED,
    "Stopped": Status.CANCELED,
    "TimedOut": Status.EXPIRED,
}


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)
