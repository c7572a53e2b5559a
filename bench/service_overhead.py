"""Service overhead of a submit: ``TrainService.submit`` with in-memory ports against the store
and backend calls it makes, issued directly. Both sides run interleaved in one process, so the
ratio holds on a noisy machine where absolute times do not."""

from __future__ import annotations

import statistics
import time

from core.model import JobSpec
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
    template = TrainService(store, {"local": backend})
    records = []
    for n in range(PER_ROUND):
        record = template._new_record(  # the record a submit would build, made outside the timed loop
            "acct", SPEC.name, SPEC.project, "local", [], {}, spec=SPEC.model_dump(mode="json"),
            native_request=None, image=None, load_from=None,
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
