"""The use cases over in-memory ports: submit, idempotency, crash recovery, cancel, sweep."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from core.errors import BackendError, IdempotencyMismatchError, InvalidSpecError, NotFoundError
from core.lifecycle import NativeUpdate, Outcome, Status
from core.model import MAX_IGNORED_EVENTS, JobQuery, JobSpec, NativeJobRequest
from core.service import TrainService
from tests.fakes import FakeBackend, FakeClock, InMemoryJobStore


class Crash(BaseException):
    """Stands for the process dying: not an error the service handles."""


def make(clock: FakeClock | None = None) -> tuple[TrainService, InMemoryJobStore, FakeBackend, FakeClock]:
    store, backend, clock = InMemoryJobStore(), FakeBackend(), clock or FakeClock()
    return TrainService(store, {"local": backend}, clock=clock), store, backend, clock


def spec(**extra: object) -> JobSpec:
    return JobSpec.model_validate({"name": "mnist", "backend": "local", "command": ["python", "t.py"], **extra})


def update(service: TrainService, job_id: str, native: str, status: Status | None, clock: FakeClock) -> Outcome | None:
    job = service.get("acct", job_id)
    return service.apply_native_update("local", job.native_id or "", NativeUpdate(native, status, clock(), attempt=1))


def test_submit_creates_one_native_job_and_records_it() -> None:
    service, store, backend, _ = make()
    job, created = service.submit("acct", spec())
    assert created and job.status == Status.PENDING
    assert job.cloud_job_identifier == {"job_name": job.native_id}
    assert backend.creates == 1
    assert store.find_by_native_id("local", job.native_id or "").id == job.id  # type: ignore[union-attr]
    assert job.job_type == "local"


def test_idempotency_key_replays_first_job_and_refuses_a_different_body() -> None:
    service, store, backend, _ = make()
    first, created = service.submit("acct", spec(), idempotency_key="k1")
    again, created_again = service.submit("acct", spec(), idempotency_key="k1")
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyMismatchError):
        service.submit("acct", spec(args=["--epochs", "9"]), idempotency_key="k1")
    other, created_other = service.submit("other", spec(), idempotency_key="k1")
    assert created_other and other.id != first.id
    assert backend.creates == 2
    assert len(store.list("acct", JobQuery(limit=100))[0]) == 1


def test_unknown_backend_is_refused_before_anything_is_written() -> None:
    service, store, _, _ = make()
    with pytest.raises(InvalidSpecError) as err:
        service.submit("acct", spec(backend="sagemaker"))
    assert err.value.errors[0].field == "backend"
    assert store.writes == 0


def test_crash_between_store_write_and_backend_call_is_finished_by_the_sweeper_exactly_once() -> None:
    service, store, backend, clock = make()
    backend.fail_next_submit = Crash()
    with pytest.raises(Crash):
        service.submit("acct", spec())
    (job,), _ = store.list("acct", JobQuery(limit=100))
    assert job.status == Status.PENDING and not job.cloud_job_identifier and backend.creates == 0

    assert service.sweep().changed == []  # still inside the grace: the request may be in flight
    clock.advance(seconds=61)
    backend.submit_delay = 0.05
    sweepers = [TrainService(store, {"local": backend}, clock=clock) for _ in range(4)]
    threads = [threading.Thread(target=s.sweep) for s in sweepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert backend.submit_calls == 2  # the crashed call and one sweeper: the claim lets only one through
    assert backend.creates == 1
    job = service.get("acct", job.id)
    assert job.cloud_job_identifier and job.status == Status.PENDING
    assert service.sweep().changed == []


def test_lost_create_response_is_retried_without_a_second_native_job() -> None:
    service, _, backend, clock = make()
    backend.fail_next_submit = BackendError("timed out", retryable=True)
    backend.lose_response = True
    job, _ = service.submit("acct", spec())
    assert job.status == Status.PENDING and not job.cloud_job_identifier
    clock.advance(minutes=2)
    assert service.sweep().submitted == 1
    job = service.get("acct", job.id)
    assert job.cloud_job_identifier and backend.creates == 1


def test_refused_submission_fails_the_job_with_the_reason() -> None:
    service, _, backend, _ = make()
    backend.fail_next_submit = BackendError("ResourceLimitExceeded: no quota")
    job, _ = service.submit("acct", spec())
    assert job.status == Status.FAILED
    assert "no quota" in (job.status_reason or "")


def test_native_shape_is_stored_as_given() -> None:
    service, _, _, _ = make()
    request = NativeJobRequest(name="native", job_config={"command": ["true"]})
    job, _ = service.submit_native("acct", "local", request)
    assert job.native_request is not None and job.native_request["job_config"] == {"command": ["true"]}
    assert job.spec == {}


def test_jobs_of_another_account_are_not_found() -> None:
    service, _, _, _ = make()
    job, _ = service.submit("acct", spec())
    for call in (service.get, service.cancel, service.checkpoints):
        with pytest.raises(NotFoundError):
            call("intruder", job.id)


def test_lifecycle_through_native_updates_with_history() -> None:
    service, _, _, clock = make()
    job, _ = service.submit("acct", spec())
    clock.advance(seconds=5)
    assert update(service, job.id, "Running", Status.IN_PROGRESS, clock) == Outcome.TRANSITION
    clock.advance(seconds=5)
    assert update(service, job.id, "Succeeded", Status.COMPLETED, clock) == Outcome.TRANSITION
    assert update(service, job.id, "Running", Status.IN_PROGRESS, clock) == Outcome.TERMINAL
    assert update(service, job.id, "Mystery", None, clock) == Outcome.UNKNOWN
    job = service.get("acct", job.id)
    assert job.status == Status.COMPLETED and job.started_at and job.ended_at
    assert [e.status for e in job.events if e.kind == "transition"] == [
        Status.PENDING, Status.IN_PROGRESS, Status.COMPLETED,
    ]
    assert job.ignored_updates == 2
    assert [e.reason for e in job.events if e.kind == "ignored"] == ["terminal", "unknown"]


def test_ignored_updates_are_capped_but_counted() -> None:
    service, _, _, clock = make()
    job, _ = service.submit("acct", spec())
    update(service, job.id, "Succeeded", Status.COMPLETED, clock)
    for _ in range(MAX_IGNORED_EVENTS + 10):
        update(service, job.id, "Failed", Status.FAILED, clock)
    job = service.get("acct", job.id)
    assert job.ignored_updates == MAX_IGNORED_EVENTS + 10
    assert sum(e.kind == "ignored" for e in job.events) == MAX_IGNORED_EVENTS
    assert job.status == Status.COMPLETED


def test_update_for_an_unknown_native_job_is_dropped() -> None:
    service, _, _, clock = make()
    running = NativeUpdate("Running", Status.IN_PROGRESS, clock())
    assert service.apply_native_update("local", "not-ours", running) is None


def test_cancel_without_native_job_is_immediate() -> None:
    service, _, backend, _ = make()
    backend.fail_next_submit = BackendError("throttled", retryable=True)
    job, _ = service.submit("acct", spec())
    job = service.cancel("acct", job.id)
    assert job.status == Status.CANCELED and backend.native == {}  # the stop asked for found nothing to stop


def test_cancel_stops_the_native_job_and_waits_for_confirmation() -> None:
    service, _, backend, clock = make()
    job, _ = service.submit("acct", spec())
    update(service, job.id, "Running", Status.IN_PROGRESS, clock)
    job = service.cancel("acct", job.id)
    assert job.status == Status.IN_PROGRESS and job.cancel_requested_at is not None
    assert backend.canceled == [job.id]
    again = service.cancel("acct", job.id)  # idempotent: the stop is asked again, nothing else changes
    assert again.status == Status.IN_PROGRESS and again.cancel_requested_at == job.cancel_requested_at
    clock.advance(seconds=3)
    update(service, job.id, "Stopped", Status.CANCELED, clock)
    job = service.get("acct", job.id)
    assert job.status == Status.CANCELED
    assert service.cancel("acct", job.id).status == Status.CANCELED


def test_sweeper_expires_pending_and_overrunning_jobs_after_stopping_them() -> None:
    service, _, backend, clock = make()
    waiting, _ = service.submit("acct", spec(name="waiting", max_pending="1h"))
    running, _ = service.submit("acct", spec(name="running", max_runtime="2h"))
    update(service, running.id, "Running", Status.IN_PROGRESS, clock)
    clock.advance(minutes=61)
    report = service.sweep()
    assert report.changed == [waiting.id] and report.expired == 1 and report.scanned == 2
    assert service.get("acct", waiting.id).status == Status.EXPIRED
    assert service.get("acct", waiting.id).status_reason == "max_pending exceeded"
    clock.advance(minutes=60 + 6)
    service.sweep()
    job = service.get("acct", running.id)
    assert job.status == Status.EXPIRED and job.status_reason == "max_runtime exceeded"
    assert backend.canceled == [waiting.id, running.id]


def test_sweeper_reconciles_jobs_whose_events_were_lost() -> None:
    service, _, backend, clock = make()
    job, _ = service.submit("acct", spec())
    backend.native[job.native_id or ""] = "Succeeded"  # the events never arrived
    clock.advance(minutes=5)
    assert service.sweep().changed == []
    clock.advance(minutes=6)
    report = service.sweep()
    assert report.changed == [job.id] and report.reconciled == 1
    assert service.get("acct", job.id).status == Status.COMPLETED


def test_sweeper_reads_only_active_jobs() -> None:
    service, _, _, clock = make()
    for n in range(30):
        job, _ = service.submit("acct", spec(name=f"done-{n}"))
        update(service, job.id, "Succeeded", Status.COMPLETED, clock)
    service.submit("acct", spec(name="live"))
    assert service.sweep().scanned == 1


def test_old_attempt_updates_are_ignored() -> None:
    service, _, _, clock = make()
    job, _ = service.submit("acct", spec())
    stale = NativeUpdate("Succeeded", Status.COMPLETED, clock(), attempt=7)
    assert service.apply_native_update("local", job.native_id or "", stale) == Outcome.OLD_ATTEMPT
    assert service.get("acct", job.id).status == Status.PENDING


def test_load_checkpoint_references_are_resolved_within_the_account() -> None:
    service, _, _, clock = make()
    with pytest.raises(InvalidSpecError) as err:
        service.submit("acct", spec(load_checkpoint={"job_id": "nope"}))
    assert err.value.errors[0].field == "load_checkpoint.job_id"
    source, _ = service.submit("acct", spec(project="vision", checkpointing={"enabled": True}))
    update(service, source.id, "Running", Status.IN_PROGRESS, clock)
    job, _ = service.submit("acct", spec(load_checkpoint={"project": "vision"}))
    assert job.load_checkpoint_job_id == source.id
    with pytest.raises(InvalidSpecError):
        service.submit("other", spec(load_checkpoint={"job_id": source.id}))


def test_stale_after_window_is_configurable() -> None:
    store, backend, clock = InMemoryJobStore(), FakeBackend(), FakeClock()
    service = TrainService(store, {"local": backend}, clock=clock, stale_after=timedelta(seconds=1))
    job, _ = service.submit("acct", spec())
    backend.native[job.native_id or ""] = "Running"
    clock.advance(seconds=2)
    assert service.sweep().changed == [job.id]
    assert service.get("acct", job.id).status == Status.IN_PROGRESS
