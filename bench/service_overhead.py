"""Service overhead of a submit: ``TrainService.submit`` with in-memory ports against the store
and backend calls it makes, issued directly. Both sides run interleaved in one process, so the
ratio holds on a noisy machine where absolute times do not."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from core.ids import new_id
from core.lifecycle import Status
from core.model import JobEvent, JobRecord, JobSpec
from core.ports import IdempotencyClaim
from core.service import TrainService
from tests.fakes import FakeBackend, InMemoryJobStore

ROUNDS, PER_ROUND = 7, 400
SPEC = JobSpec.model_validate(
    {"name": "bench", "backend": "local", "command": ["python", "train.py"], "args": ["--epochs", "3"],
     "env": {"BATCH": "32"}, "max_runtime": "2h", "labels": {"team": "bench"}}
)


def via_service() -> float:
    service = TrainService(InMemoryJobStore(), {"local": FakeBackend()})
    start = time.perf_counter()
    for n in range(PER_ROUND):
        service.submit("acct", SPEC, idempotency_key=f"k{n}")
    return time.perf_counter() - start


def direct_calls() -> float:
    """The floor: the three port calls a submit needs (create with claim, create native, record it)."""
    store, backend = InMemoryJobStore(), FakeBackend()
    records = []
    for n in range(PER_ROUND):  # the records a submit would build, made outside the timed loop
        now = datetime.now(UTC)
        record = JobRecord(
            id=new_id(int(now.timestamp() * 1000)), account_id="acct", name=SPEC.name, project=SPEC.project,
            backend="local", labels=dict(SPEC.labels), spec=SPEC.model_dump(mode="json"), created_at=now,
            updated_at=now, submit_claimed_at=now,
            events=[JobEvent(at=now, kind="transition", status=Status.PENDING, reason="submitted")],
        )
        records.append((record, IdempotencyClaim(f"k{n}", "h")))
    start = time.perf_counter()
    for record, claim in records:
        stored, _ = store.create(record, claim)
        submission = backend.submit(stored)
        stored.native_id = submission.native_id
        stored.cloud_job_identifier = submission.cloud_job_identifier
        store.update(stored, expected_version=stored.version, expected_status=stored.status)
    return time.perf_counter() - start


def main() -> None:
    service_times, direct_times = [], []
    for _ in range(ROUNDS):  # interleaved, so drift on a shared machine hits both sides alike
        service_times.append(via_service() / PER_ROUND)
        direct_times.append(direct_calls() / PER_ROUND)
    svc, direct = statistics.median(service_times), statistics.median(direct_times)
    print(f"submit via service: {svc * 1e6:.0f} us/job; the port calls alone: {direct * 1e6:.0f} us/job")
    print(f"service overhead ratio (service / port calls): {svc / direct:.2f}")
