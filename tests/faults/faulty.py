"""Fault injection around the real ports: ``FaultyStore`` wraps a real ``JobStore`` adapter (SQLite,
DynamoDB) and ``FaultyBackend`` a ``TrainingBackend``; both record every I/O call they pass on in
one shared ``Trace`` and fail exactly one of them when the trace's ``Fault`` names it.

A fault names a call as ``(port, method, nth)``: the nth call of that method in the run. A run is
deterministic up to the fault, so the position k of a fault-free run's trace names the same call
when the scenario is run again from scratch with a fault there.

What each kind does (``before``: the call never reaches the adapter; ``after``: it does, and the
caller never learns how it went):

    store read     unavailable    before: UnavailableError (throttling, a 5xx, SQLITE_BUSY)
    store write    unavailable    before: UnavailableError
                   lost-ack       after: the write is durable, the caller gets UnavailableError
                   retried-write  after: the write is durable and is sent once more, as an SDK
                                  retries a request whose answer it lost; the caller gets what the
                                  second one answers (a VersionConflictError, an idempotent replay)
    backend call   5xx            before: BackendError(retryable=True)
                   throttle       before: UnavailableError
                   timeout        before: UnavailableError (the request never arrived)
                   lost-response  after: the call took effect (the native job exists, or is
                                  stopping), the caller gets UnavailableError
                   refused        before: BackendError(retryable=False), a 4xx
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from core.errors import BackendError, TrainError, UnavailableError
from core.lifecycle import NativeUpdate, Status
from core.model import Checkpoint, JobQuery, JobRecord, JobSpec, LogPage, NativeJobRequest, Submission
from core.ports import IdempotencyClaim, JobPage

Port = Literal["store", "backend"]

STORE_READS = ("get", "list", "list_active", "find_by_native_id")
STORE_WRITES = ("create", "update")
STORE_READ_KINDS = ("unavailable",)
STORE_WRITE_KINDS = ("unavailable", "lost-ack", "retried-write")
BACKEND_KINDS: dict[str, tuple[str, ...]] = {
    "submit": ("5xx", "throttle", "timeout", "lost-response", "refused"),
    "cancel": ("5xx", "throttle", "timeout", "lost-response", "refused"),
    "describe": ("5xx", "throttle", "timeout", "refused"),  # a lost answer to a read is a timeout
}


@dataclass(frozen=True)
class Call:
    port: Port
    method: str
    nth: int  # 1 for the first call of ``method`` in the run

    def __str__(self) -> str:
        return f"{self.port}.{self.method}#{self.nth}"


@dataclass(frozen=True)
class Fault:
    call: Call
    kind: str

    def __str__(self) -> str:
        return f"{self.kind} at {self.call}"


def kinds_for(call: Call) -> tuple[str, ...]:
    if call.port == "store":
        return STORE_WRITE_KINDS if call.method in STORE_WRITES else STORE_READ_KINDS
    return BACKEND_KINDS.get(call.method, ())


@dataclass
class Trace:
    """The port calls of one run, in order, and the one fault to inject (None: a clean run)."""

    fault: Fault | None = None
    calls: list[Call] = field(default_factory=list)
    fired: bool = False
    armed: bool = True  # False once the scenario is over: recovery runs with no faults
    _counts: Counter[tuple[Port, str]] = field(default_factory=Counter)

    def enter(self, port: Port, method: str) -> str | None:
        """Record a call; the fault kind to inject into it, if it is the one."""
        self._counts[(port, method)] += 1
        call = Call(port, method, self._counts[(port, method)])
        self.calls.append(call)
        if self.armed and not self.fired and self.fault is not None and self.fault.call == call:
            self.fired = True
            return self.fault.kind
        return None


def _injected(kind: str, where: str) -> TrainError:
    if kind == "5xx":
        return BackendError(f"injected: {where} answered 500", retryable=True)
    if kind == "refused":
        return BackendError(f"injected: {where} answered 400", retryable=False)
    if kind == "timeout":
        return UnavailableError(f"injected: {where} timed out")
    if kind == "throttle":
        return UnavailableError(f"injected: {where} is throttling")
    return UnavailableError(f"injected: {where} {kind}")


class FaultyStore:
    """A ``JobStore`` by delegation to a real adapter, with the trace's fault injected."""

    def __init__(self, inner: Any, trace: Trace) -> None:
        self.inner = inner
        self.trace = trace

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        kind = self.trace.enter("store", method)
        target = getattr(self.inner, method)
        if kind is None:
            return target(*args, **kwargs)
        if kind == "unavailable":
            raise _injected(kind, f"store.{method}")
        target(*args, **kwargs)  # durable; its answer is lost
        if kind == "lost-ack":
            raise _injected("lost its acknowledgement", f"store.{method}")
        return target(*args, **kwargs)  # "retried-write": the SDK sends it again

    def create(self, job: JobRecord, idempotency: IdempotencyClaim | None = None) -> tuple[JobRecord, bool]:
        result: tuple[JobRecord, bool] = self._call("create", job, idempotency)
        return result

    def get(self, account_id: str, job_id: str) -> JobRecord | None:
        result: JobRecord | None = self._call("get", account_id, job_id)
        return result

    def update(self, job: JobRecord, *, expected_version: int, expected_status: Status) -> JobRecord:
        result: JobRecord = self._call("update", job, expected_version=expected_version,
                                       expected_status=expected_status)
        return result

    def list(self, account_id: str, query: JobQuery) -> JobPage:
        result: JobPage = self._call("list", account_id, query)
        return result

    def list_active(self, *, limit: int = 100, cursor: str | None = None) -> JobPage:
        result: JobPage = self._call("list_active", limit=limit, cursor=cursor)
        return result

    def find_by_native_id(self, backend: str, native_id: str) -> JobRecord | None:
        result: JobRecord | None = self._call("find_by_native_id", backend, native_id)
        return result


class FaultyBackend:
    """A ``TrainingBackend`` by delegation, with the trace's fault injected into its cloud calls
    (``submit``, ``describe``, ``cancel``); the checks and ``native_id_for`` make none.

    A ``FakeBackend`` gets its submit faults through its own ``fail_next_submit`` and
    ``lose_response``, which create the native job before failing when the response is lost."""

    def __init__(self, inner: Any, trace: Trace) -> None:
        self.inner = inner
        self.trace = trace
        self.name: str = inner.name

    def check_spec(self, spec: JobSpec) -> None:
        self.inner.check_spec(spec)

    def check_native(self, request: NativeJobRequest) -> None:
        self.inner.check_native(request)

    def native_id_for(self, job: JobRecord) -> str | None:
        result: str | None = self.inner.native_id_for(job)
        return result

    def submit(self, job: JobRecord) -> Submission:
        kind = self.trace.enter("backend", "submit")
        if kind is not None and hasattr(self.inner, "fail_next_submit"):
            self.inner.fail_next_submit = _injected(kind, "backend.submit")
            self.inner.lose_response = kind == "lost-response"
            kind = None
        result: Submission = self._call(kind, "submit", job)
        return result

    def describe(self, job: JobRecord) -> NativeUpdate:
        result: NativeUpdate = self._call(self.trace.enter("backend", "describe"), "describe", job)
        return result

    def cancel(self, job: JobRecord) -> None:
        self._call(self.trace.enter("backend", "cancel"), "cancel", job)

    def _call(self, kind: str | None, method: str, job: JobRecord) -> Any:
        target = getattr(self.inner, method)
        if kind is None:
            return target(job)
        if kind != "lost-response":
            raise _injected(kind, f"backend.{method}")
        target(job)
        raise _injected("lost its response", f"backend.{method}")

    def logs(self, job: JobRecord, *, cursor: str | None, limit: int, since: datetime | None) -> LogPage:
        result: LogPage = self.inner.logs(job, cursor=cursor, limit=limit, since=since)
        return result

    def checkpoints(self, job: JobRecord) -> list[Checkpoint]:
        result: list[Checkpoint] = self.inner.checkpoints(job)
        return result
