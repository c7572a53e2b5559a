"""Small changes to a job record that the service and its helpers share: moving along the
lifecycle, the history lines each change leaves. Pure; the caller writes the record."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from core.lifecycle import NativeUpdate, Status, is_terminal, path_to
from core.model import MAX_IGNORED_EVENTS, JobEvent, JobRecord


def steps(previous: Status, status: Status) -> list[tuple[Status, Status]]:
    """``(from, to)`` of each transition on the way from ``previous`` to ``status``."""
    path = path_to(previous, status)
    return list(zip([previous, *path[:-1]], path, strict=True))


def move(job: JobRecord, step: Status, now: datetime, event_time: datetime | None) -> None:
    job.status = step
    if step == Status.IN_PROGRESS:
        job.started_at = event_time or now
    if is_terminal(step):
        job.ended_at = event_time or now


def native_event(
    now: datetime, kind: Literal["transition", "refresh", "ignored"], status: Status, update: NativeUpdate,
    attempt: int, *, reason: str | None = None,
) -> JobEvent:
    return JobEvent(
        at=now, kind=kind, status=status, native_status=update.native_status,
        reason=reason if reason is not None else update.reason, event_time=update.event_time,
        attempt=update.attempt or attempt,
    )


def seen_native(job: JobRecord) -> bool:
    """Whether the job is known to have a native job: its submission recorded, or an event about it
    applied. A job without either may still have one (a create whose answer was lost)."""
    return bool(job.cloud_job_identifier) or job.native_status is not None


def note(now: datetime, job: JobRecord, reason: str) -> JobEvent:
    return JobEvent(at=now, kind="note", status=job.status, reason=reason, attempt=job.attempt)


def cap_ignored(job: JobRecord) -> None:
    ignored = [i for i, e in enumerate(job.events) if e.kind == "ignored"]
    if len(ignored) > MAX_IGNORED_EVENTS:
        drop = set(ignored[: len(ignored) - MAX_IGNORED_EVENTS])
        job.events = [e for i, e in enumerate(job.events) if i not in drop]
