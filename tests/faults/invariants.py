"""What must hold once the faults stopped and the sweeper ran, as readable problem lines (none
when all is well). Everything is read around the faults, from the real store and the cloud."""

from __future__ import annotations

from itertools import pairwise

from core.lifecycle import Status, can_transition, is_terminal
from core.model import JobQuery, JobRecord
from tests.faults.world import ACCOUNT, World


def problems(world: World) -> list[str]:
    jobs = stored_jobs(world)
    found = idempotency(world, jobs)
    known = {job.id for job in jobs}
    for (job_id, attempt), creates in sorted(world.cloud.creates_per_attempt().items()):
        if creates != 1:
            found.append(f"{job_id}: {creates} native jobs created for attempt {attempt}")
        if job_id not in known:
            found.append(f"native job of attempt {attempt} for {job_id}, which is not stored")
    for job in jobs:
        found += [f"{job.id} ({job.status.value}): {p}" for p in job_problems(job, world.cloud.natives(job.id))]
    return found


def stored_jobs(world: World) -> list[JobRecord]:
    jobs: list[JobRecord] = []
    cursor = None
    while True:
        page, cursor = world.store.inner.list(ACCOUNT, JobQuery(limit=100, cursor=cursor))
        jobs += page
        if cursor is None:
            return jobs


def idempotency(world: World, jobs: list[JobRecord]) -> list[str]:
    """One job per Idempotency-Key, and every answer for a key (the retries and the replay after
    recovery) names that job; none for a submission refused with a 4xx."""
    found = []
    accepted = len(world.specs) - len(world.refused_keys)
    if len(jobs) != accepted:
        found.append(f"{len(jobs)} jobs stored for {accepted} accepted submissions")
    for key, answers in world.answers.items():
        if len(set(answers)) != (0 if key in world.refused_keys else 1):
            found.append(f"{key} was answered with {answers}")
    return found


def job_problems(job: JobRecord, natives: dict[int, Status | None]) -> list[str]:
    found = []
    for attempt, status in sorted(natives.items()):
        if attempt > job.attempt:
            found.append(f"a native job for attempt {attempt}; the record is at attempt {job.attempt}")
        elif attempt < job.attempt and not _ended(status):
            found.append(f"attempt {attempt}'s native job still runs ({status}) beside attempt {job.attempt}")
    current = natives.get(job.attempt)
    if not is_terminal(job.status):
        if job.attempt not in natives:
            found.append("stuck: active with no native job")
        elif not job.cloud_job_identifier:
            found.append("stuck: its native job exists but is not recorded")
        elif _ended(current):
            found.append(f"stuck: active while its native job ended ({current})")
        elif implied(job, current) != job.status:
            found.append(f"its native job implies {implied(job, current)}")
    elif job.attempt in natives:
        if not _ended(current):
            found.append(f"ended while its native job still runs ({current})")
        elif job.status not in _ending(current) and not _blind_cancel(job):
            found.append(f"its native job ended {current}")
    return found + transitions(job)


# A cancel that reaches Train before any sign of the native job (no recorded submission, no
# event: a create whose answer was lost, on a platform that names its jobs itself) ends the job at
# once after asking the platform to stop whatever the create made. When that native job had
# already finished, the job says CANCELED, not how it finished; nothing is left running.
BLIND_CANCEL = "canceled before the native job started"


def implied(job: JobRecord, native: Status | None) -> Status | None:
    """The status an active job's native job implies: its own, except that a job that ran once (a
    later attempt queued after a preemption) stays IN_PROGRESS."""
    if native == Status.PENDING and (job.attempt > 1 or job.started_at is not None):
        return Status.IN_PROGRESS
    return native


def transitions(job: JobRecord) -> list[str]:
    """The history names each status once, starting at PENDING, each step legal."""
    steps = [e.status for e in job.events if e.kind == "transition"]
    found = []
    if len(set(steps)) != len(steps) or steps[:1] != [Status.PENDING]:
        found.append(f"transitions {[s.value for s in steps]}")
    found += [f"illegal step {a.value} -> {b.value}" for a, b in pairwise(steps) if not can_transition(a, b)]
    if steps and steps[-1] != job.status:
        found.append(f"last transition {steps[-1].value}")
    return found


def _blind_cancel(job: JobRecord) -> bool:
    """Canceled at once, and no event about its native job had been applied: Train could not know."""
    seen = any(e.native_status is not None for e in job.events if e.kind in ("transition", "refresh"))
    return job.status_reason == BLIND_CANCEL and not seen


def _ended(status: Status | None) -> bool:
    return status is not None and is_terminal(status)


def _ending(native: Status | None) -> frozenset[Status]:
    """The job statuses a native job that ended this way allows: a stopped one was canceled, or
    expired by Train itself (the sweeper stops it first)."""
    if native == Status.CANCELED:
        return frozenset({Status.CANCELED, Status.EXPIRED})
    return frozenset({native}) if native is not None else frozenset()
