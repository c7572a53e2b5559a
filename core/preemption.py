"""What a preemption does to a job record (SPEC §6). Pure changes; the service decides when they
apply (``Outcome.PREEMPTED`` from ``decide``) and writes them in one conditional write.

A resubmission keeps the job IN_PROGRESS (a PENDING job moves to IN_PROGRESS, never back), raises
``attempt``, remembers the preempted attempt's native job in ``previous_attempts`` and clears the
submission, so the new attempt's native job is created exactly like a first one: by ``_launch``
right after the write, or by the sweeper's crash recovery if the process dies in between.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from core.lifecycle import NativeUpdate, Outcome, Status, is_terminal, path_to
from core.model import JobEvent, JobRecord, PreviousAttempt
from core.records import move, native_event

NO_RETRIES_LEFT = "preempted; no retries left"


def retries_left(job: JobRecord) -> int:
    """Resubmissions still allowed: ``retries.on_preemption`` minus the ones already made."""
    retries = job.spec.get("retries") if job.native_request is None else None
    allowed = int(retries.get("on_preemption") or 0) if isinstance(retries, dict) else 0
    return max(0, allowed - (job.attempt - 1))


def apply(
    job: JobRecord, update: NativeUpdate, now: datetime, native_id_for: Callable[[JobRecord], str | None] | None
) -> Outcome | None:
    """What a preemption of the current attempt does to ``job``: with retries left, the next
    attempt (``PREEMPTED``); with none and a native job that is over, FAILED (``TRANSITION``);
    with none and a native job the platform resumes by itself (SageMaker managed spot within its
    max_wait), nothing of its own: None, and the caller applies it as an ordinary update."""
    if retries_left(job) > 0 and native_id_for is not None:
        resubmit(job, update, now, native_id_for)
        return Outcome.PREEMPTED
    if update.status is None or not is_terminal(update.status):
        return None
    for step in path_to(job.status, Status.FAILED):
        move(job, step, now, update.event_time)
        job.events.append(native_event(now, "transition", step, update, job.attempt, reason=NO_RETRIES_LEFT))
    job.native_status, job.native_time = update.native_status, update.event_time
    job.status_reason = NO_RETRIES_LEFT
    return Outcome.TRANSITION


def resubmit(
    job: JobRecord, update: NativeUpdate, now: datetime, native_id_for: Callable[[JobRecord], str | None]
) -> None:
    """Turn ``job`` into its next attempt, ready for ``_launch``."""
    if job.status == Status.PENDING:
        job.status = Status.IN_PROGRESS
        job.started_at = update.event_time
        job.events.append(JobEvent(
            at=now, kind="transition", status=Status.IN_PROGRESS, native_status=update.native_status,
            reason=update.reason, event_time=update.event_time, attempt=job.attempt,
        ))
    job.previous_attempts.append(PreviousAttempt(
        attempt=job.attempt, native_id=job.native_id, cloud_job_identifier=dict(job.cloud_job_identifier),
        native_status=update.native_status, reason=update.reason, ended_at=update.event_time,
    ))
    job.attempt += 1
    job.events.append(JobEvent(
        at=now, kind="note", status=job.status, native_status=update.native_status,
        reason=f"preempted: resubmitting attempt {job.attempt}", event_time=update.event_time,
        attempt=job.attempt - 1,
    ))
    job.native_id = native_id_for(job)
    job.cloud_job_identifier = {}
    job.native_status = None
    job.native_time = None
    job.submit_claimed_at = now


def previous_view(job: JobRecord) -> JobRecord | None:
    """The job as its preempted previous attempt, for stopping that attempt's native job (a
    platform that resumes preempted jobs by itself, like SageMaker managed spot, would otherwise
    run it alongside the new attempt); None on a first attempt."""
    if not job.previous_attempts or job.previous_attempts[-1].attempt != job.attempt - 1:
        return None
    last = job.previous_attempts[-1]
    if not last.cloud_job_identifier:
        return None
    return job.model_copy(update={
        "attempt": last.attempt, "native_id": last.native_id, "cloud_job_identifier": dict(last.cloud_job_identifier),
    })
