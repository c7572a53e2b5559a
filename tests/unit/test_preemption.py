"""Preemption recovery in the service (SPEC §6): a preempted attempt is replaced by a new one in
one conditional write, the new native job is created once (crash included), and events of the old
attempt change nothing."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from core.lifecycle import NativeUpdate, Outcome, Status, decide
from core.model import JobRecord, JobSpec
from core.service import TrainService
from tests.fakes import FakeBackend, FakeClock, InMemoryJobStore


class Crash(BaseException):
    """Stands for the process dying between the store write and the cloud call."""


def make() -> tuple[TrainService, InMemoryJobStore, FakeBackend, FakeClock]:
    store, backend, clock = InMemoryJobStore(), FakeBackend(), FakeClock()
    service = TrainService(store, {"local": backend}, clock=clock, submit_grace=timedelta(seconds=60))
    return service, store, backend, clock


def submit(service: TrainService, retries: int = 2) -> JobRecord:
    spec = JobSpec.model_validate({"name": "mnist", "backend": "local", "command": ["python", "t.py"],
                                   "checkpointing": {"enabled": True}, "retries": {"on_preemption": retries}})
    return service.submit("acct", spec)[0]


def native(service: TrainService, clock: FakeClock, job: JobRecord, state: str, status: Status | None,
           *, attempt: int, preempted: bool = False, native_id: str | None = None) -> Outcome | None:
    clock.advance(seconds=1)
    update = NativeUpdate(state, status, clock(), "spot reclaimed" if preempted else None, attempt, preempted)
    return service.apply_native_update("local", native_id or f"fake-{job.id}-{attempt}", update)


@pytest.mark.parametrize(
    ("status", "attempt", "update_attempt", "expected"),
    [
        (Status.IN_PROGRESS, 1, 1, Outcome.PREEMPTED),
        (Status.PENDING, 1, 1, Outcome.PREEMPTED),
        (Status.IN_PROGRESS, 2, 1, Outcome.OLD_ATTEMPT),  # a redelivery after the resubmission
        (Status.COMPLETED, 1, 1, Outcome.DUPLICATE),  # an ended job stays ended
        (Status.IN_PROGRESS, 1, None, Outcome.TRANSITION),  # a preemption must name its attempt
    ],
)
def test_decide_on_preempted_updates(status: Status, attempt: int, update_attempt: int | None,
                                     expected: Outcome) -> None:
    clock = FakeClock()
    update = NativeUpdate("Preempted", Status.FAILED, clock(), None, update_attempt, preempted=True)
    native_status, native_time = ("Preempted", clock()) if status == Status.COMPLETED else ("Running", None)
    assert decide(status, native_status, native_time, attempt, update) == expected


def test_a_preempted_attempt_is_resubmitted_and_the_job_stays_in_progress() -> None:
    service, store, backend, clock = make()
    job = submit(service)
    assert native(service, clock, job, "Running", Status.IN_PROGRESS, attempt=1) == Outcome.TRANSITION
    outcome = native(service, clock, job, "Preempted", Status.FAILED, attempt=1, preempted=True)

    assert outcome == Outcome.PREEMPTED
    now = service.get("acct", job.id)
    assert now.status == Status.IN_PROGRESS and now.attempt == 2
    assert now.native_id == f"fake-{job.id}-2" and now.cloud_job_identifier == {"job_name": f"fake-{job.id}-2"}
    assert [(p.attempt, p.native_id, p.native_status) for p in now.previous_attempts] == [
        (1, f"fake-{job.id}-1", "Preempted")
    ]
    assert [e.reason for e in now.events if e.kind == "note"] == ["preempted: resubmitting attempt 2"]
    assert [e.status for e in now.events if e.kind == "transition"] == [Status.PENDING, Status.IN_PROGRESS]
    assert backend.creates == 2 and f"fake-{job.id}-2" in backend.native
    assert backend.canceled == [job.id]  # the old attempt's native job is asked to stop first
    assert store.find_by_native_id("local", f"fake-{job.id}-1") is None


def test_events_of_the_old_attempt_are_ignored() -> None:
    service, _, backend, clock = make()
    job = submit(service)
    native(service, clock, job, "Running", Status.IN_PROGRESS, attempt=1)
    native(service, clock, job, "Preempted", Status.FAILED, attempt=1, preempted=True)

    # by its native id: no job runs as it any more
    assert native(service, clock, job, "Failed", Status.FAILED, attempt=1) is None
    assert native(service, clock, job, "Preempted", Status.FAILED, attempt=1, preempted=True) is None
    # read back some other way (a sweep of a stale record, a describe): the attempt does not match
    late = NativeUpdate("Succeeded", Status.COMPLETED, clock(), None, 1)
    assert service.apply_update(service.get("acct", job.id), late) == Outcome.OLD_ATTEMPT

    now = service.get("acct", job.id)
    assert now.status == Status.IN_PROGRESS and now.attempt == 2 and backend.creates == 2
    assert now.events[-1].kind == "ignored" and now.events[-1].reason == "old_attempt"
    assert native(service, clock, job, "Succeeded", Status.COMPLETED, attempt=2) == Outcome.TRANSITION
    assert service.get("acct", job.id).status == Status.COMPLETED


def test_a_pending_job_preempted_moves_forward_to_in_progress() -> None:
    service, _, _, clock = make()
    job = submit(service)
    assert native(service, clock, job, "Preempted", Status.FAILED, attempt=1, preempted=True) == Outcome.PREEMPTED
    now = service.get("acct", job.id)
    assert now.status == Status.IN_PROGRESS and now.attempt == 2 and now.started_at is not None


def test_each_retry_is_counted_and_the_last_preemption_fails_the_job() -> None:
    service, _, backend, clock = make()
    job = submit(service, retries=2)
    for attempt in (1, 2):
        native(service, clock, job, "Running", Status.IN_PROGRESS, attempt=attempt)
        assert native(service, clock, job, "Preempted", Status.FAILED, attempt=attempt, preempted=True) == (
            Outcome.PREEMPTED
        )
    native(service, clock, job, "Running", Status.IN_PROGRESS, attempt=3)
    assert native(service, clock, job, "Preempted", Status.FAILED, attempt=3, preempted=True) == Outcome.TRANSITION

    now = service.get("acct", job.id)
    assert now.status == Status.FAILED and now.status_reason == "preempted; no retries left" and now.attempt == 3
    assert backend.creates == 3 and len(now.previous_attempts) == 2


def test_without_retries_a_preempted_job_fails_at_once() -> None:
    service, _, backend, clock = make()
    job = submit(service, retries=0)
    native(service, clock, job, "Preempted", Status.FAILED, attempt=1, preempted=True)
    now = service.get("acct", job.id)
    assert now.status == Status.FAILED and now.status_reason == "preempted; no retries left"
    assert backend.creates == 1


def test_a_preemption_the_platform_resumes_itself_is_an_ordinary_update_without_retries() -> None:
    # SageMaker managed spot: InProgress/Interrupted, then SageMaker starts the same job again.
    service, _, backend, clock = make()
    job = submit(service, retries=0)
    native(service, clock, job, "Running", Status.IN_PROGRESS, attempt=1)
    assert native(service, clock, job, "Interrupted", Status.IN_PROGRESS, attempt=1, preempted=True) == (
        Outcome.REFRESH
    )
    now = service.get("acct", job.id)
    assert now.status == Status.IN_PROGRESS and now.attempt == 1 and backend.creates == 1


def test_a_crash_after_the_write_is_finished_by_the_sweeper_exactly_once() -> None:
    service, store, backend, clock = make()
    job = submit(service)
    native(service, clock, job, "Running", Status.IN_PROGRESS, attempt=1)
    backend.fail_next_submit = Crash()
    with pytest.raises(Crash):
        native(service, clock, job, "Preempted", Status.FAILED, attempt=1, preempted=True)

    stuck = service.get("acct", job.id)
    assert stuck.attempt == 2 and not stuck.cloud_job_identifier and stuck.status == Status.IN_PROGRESS
    assert service.sweep().submitted == 0  # inside the grace: the first process may still be at it
    clock.advance(seconds=61)
    assert service.sweep().submitted == 1
    clock.advance(seconds=61)
    assert service.sweep().submitted == 0
    now = service.get("acct", job.id)
    assert now.cloud_job_identifier == {"job_name": f"fake-{job.id}-2"} and backend.creates == 2
    assert store.find_by_native_id("local", f"fake-{job.id}-2") is not None


def test_a_job_canceled_before_its_next_attempt_exists_is_not_submitted_again() -> None:
    service, _, backend, clock = make()
    job = submit(service)
    native(service, clock, job, "Running", Status.IN_PROGRESS, attempt=1)
    backend.fail_next_submit = Crash()
    with pytest.raises(Crash):
        native(service, clock, job, "Preempted", Status.FAILED, attempt=1, preempted=True)
    assert service.cancel("acct", job.id).status == Status.CANCELED  # no native job yet: at once
    clock.advance(seconds=61)
    assert service.sweep().submitted == 0  # an ended job is not submitted again
    assert backend.creates == 1


def test_a_job_canceled_while_its_next_attempt_is_created_stops_that_attempt() -> None:
    service, _, backend, clock = make()
    job = submit(service)
    native(service, clock, job, "Running", Status.IN_PROGRESS, attempt=1)
    backend.submit_delay = 0.3
    preempting = threading.Thread(
        target=native, args=(service, clock, job, "Preempted", Status.FAILED), kwargs={"attempt": 1, "preempted": True}
    )
    preempting.start()
    deadline = time.monotonic() + 5
    while service.get("acct", job.id).attempt == 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert service.cancel("acct", job.id).status == Status.CANCELED  # the create is in flight
    preempting.join(timeout=5)
    assert backend.native[f"fake-{job.id}-2"] == "Stopped"  # what the in-flight create made is stopped
