"""Sweeper reads: one sweep over SQLite with 100 000 terminal and 100 active jobs against one with
the same 100 active jobs alone, side by side in one run. The sweep must read O(active): the ratio
of store reads, rows read and time should all be about 1.

The 100 000 terminal rows are written in one transaction by ``bulk_insert`` below (a copy of a
real finished job's record under fresh ids), not through the store: a create per row would commit
and fsync 100 000 times. The 100 active jobs are submitted through the service as usual.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from core.ids import new_id
from core.lifecycle import NativeUpdate, Status
from core.model import JobRecord, JobSpec
from core.service import SweepReport, TrainService
from core.stores.sqlite import SQLiteJobStore
from tests.fakes import FakeBackend, InMemoryJobStore
from tests.volume.counting import CountingStore

TERMINAL, ACTIVE, ROUNDS = 100_000, 100, 15
SPEC = JobSpec(name="bench", backend="local", command=["python", "train.py"])


def finished_record() -> str:
    """The stored JSON of a job submitted and completed through the service."""
    store = InMemoryJobStore()
    service = TrainService(store, {"local": FakeBackend()})
    job, _ = service.submit("acct", SPEC)
    service.apply_native_update(
        "local", job.native_id or "", NativeUpdate("Succeeded", Status.COMPLETED, datetime.now(UTC), attempt=1)
    )
    done = store.get("acct", job.id)
    if done is None or done.status != Status.COMPLETED:
        raise SystemExit("the template job did not complete")
    return done.model_dump_json()


def bulk_insert(path: Path, template: str, count: int) -> None:
    """``count`` finished jobs in the store's ``jobs`` table, in one transaction. The template's id
    (which its native id contains) is replaced by a fresh one, older than any active job's."""
    job = JobRecord.model_validate_json(template)
    start_ms = int(job.created_at.timestamp() * 1000) - 86_400_000
    rows = []
    for n in range(count):
        job_id = new_id(start_ms + n)
        rows.append((
            job_id, job.account_id, job.project, job.name, job.backend, job.status.value, job.version,
            (job.native_id or "").replace(job.id, job_id), job.created_at.isoformat(), template.replace(job.id, job_id),
        ))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO jobs (id, account_id, project, name, backend, status, version, native_id, created_at, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def active_jobs(store: SQLiteJobStore) -> None:
    service = TrainService(store, {"local": FakeBackend()})
    for _ in range(ACTIVE):
        service.submit("acct", SPEC)


def sweep(store: SQLiteJobStore) -> tuple[float, CountingStore, SweepReport]:
    counting = CountingStore(store)
    service = TrainService(counting, {"local": FakeBackend()})
    start = time.perf_counter()
    report = service.sweep()
    return time.perf_counter() - start, counting, report


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        small, large = SQLiteJobStore(Path(tmp) / "active.db"), SQLiteJobStore(Path(tmp) / "large.db")
        started = time.perf_counter()
        bulk_insert(large.path, finished_record(), TERMINAL)
        built = time.perf_counter() - started
        active_jobs(small)
        active_jobs(large)
        times: dict[str, list[float]] = {"small": [], "large": []}
        counted: dict[str, tuple[CountingStore, SweepReport]] = {}
        for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits both sides alike
            for name, store in (("small", small), ("large", large)):
                seconds, counting, report = sweep(store)
                times[name].append(seconds)
                counted[name] = (counting, report)
        small.close()
        large.close()
    (s_count, s_report), (l_count, l_report) = counted["small"], counted["large"]
    if l_report.changed or s_report.changed or l_report.errors or s_report.errors:
        raise SystemExit("the sweeps were meant to find nothing to do")
    s_time, l_time = statistics.median(times["small"]), statistics.median(times["large"])
    print(f"sweeper: {TERMINAL:,} terminal rows written in {built:.1f} s (one transaction)")
    for label, seconds, counting, report in (
        (f"{ACTIVE} active", s_time, s_count, s_report),
        (f"{TERMINAL:,} terminal + {ACTIVE} active", l_time, l_count, l_report),
    ):
        print(f"sweep over {label}: {seconds * 1000:.1f} ms, {counting.reads} store reads,"
              f" {counting.rows_read} rows read, {report.scanned} jobs scanned")
    print(
        f"sweeper ratio (with / without the terminal jobs): store reads {l_count.reads / s_count.reads:.2f},"
        f" rows read {l_count.rows_read / s_count.rows_read:.2f}, time {l_time / s_time:.2f}"
    )


if __name__ == "__main__":
    main()
