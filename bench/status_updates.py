"""Native updates applied through the service into SQLite, duplicated x3 and shuffled: updates
per second, store writes per update, and the ratio against the in-memory store in the same run."""

from __future__ import annotations

import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.lifecycle import NativeUpdate, Status
from core.model import JobQuery, JobSpec
from core.service import TrainService
from core.stores.sqlite import SQLiteJobStore
from tests.fakes import FakeBackend, InMemoryJobStore

JOBS, STEPS = 100, ("Queued", "Running", "Succeeded")
STATUS = {"Queued": Status.PENDING, "Running": Status.IN_PROGRESS, "Succeeded": Status.COMPLETED}


class CountingStore:
    """Counts conditional writes going through to the wrapped store."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.writes = inner, 0

    def update(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return self.inner.update(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run(store: Any, seed: int) -> tuple[float, int, int]:
    counting = CountingStore(store)
    service = TrainService(counting, {"local": FakeBackend()})
    spec = JobSpec(name="bench", backend="local", command=["true"])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    updates = []
    for _ in range(JOBS):
        job, _ = service.submit("acct", spec)
        for step, native in enumerate(STEPS):
            at = t0 + timedelta(seconds=step)
            updates.append((job.native_id, NativeUpdate(native, STATUS[native], at, attempt=1)))
    deliveries = updates * 3
    random.Random(seed).shuffle(deliveries)
    counting.writes = 0
    start = time.perf_counter()
    for native_id, update in deliveries:
        service.apply_native_update("local", native_id, update)
    elapsed = time.perf_counter() - start
    final = {job.status for job in service.list("acct", JobQuery(limit=JOBS))[0]}
    if final != {Status.COMPLETED}:
        raise SystemExit(f"final states not exact: {final}")
    return elapsed, len(deliveries), counting.writes


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sql_time, n, sql_writes = run(SQLiteJobStore(Path(tmp) / "bench.db"), seed=1)
    mem_time, _, _ = run(InMemoryJobStore(), seed=1)
    print(f"status updates into SQLite: {n / sql_time:.0f} updates/s, {sql_writes / n:.2f} store writes per update")
    print(f"SQLite / in-memory time per update: {sql_time / mem_time:.2f}")
