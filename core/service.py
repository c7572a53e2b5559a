"""The use cases: submit, read, cancel, apply a native update, sweep.

Written once against the ``JobStore`` and ``TrainingBackend`` ports; the service never learns
which cloud it runs on. Every change to a job is a conditional write through ``_mutate``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from core import outbox, preemption
from core.durations import parse_duration
from core.errors import (
    InvalidSpecError,
    NotFoundError,
    TrainError,
    VersionConflictError,
)
from core.ids import new_id
from core.lifecycle import APPLIED, NativeUpdate, Outcome, Status, decide, is_terminal, path_to
from core.model import (
    Checkpoint,
    ImageRef,
    JobEvent,
    JobQuery,
    JobRecord,
    JobSpec,
    LogPage,
    NativeJobRequest,
    StorageMount,
)
from core.ports import IdempotencyClaim, ImageRegistry, JobPage, JobStore, Notifier, Pinned, TrainingBackend
from core.records import cap_ignored, move, native_event, note, seen_native, steps
from core.submission import idempotency_claim, resolve_load_checkpoint

log = logging.getLogger("train.service")

MAX_CAS_ATTEMPTS = 16
Checkpoints = list[Checkpoint]  # named here: TrainService.list shadows the builtin in the class body


def utcnow() -> datetime:
    return datetime.now(UTC)


SweepAction = Literal["submitted", "expired", "reconciled"]


@dataclass
class SweepReport:
    scanned: int = 0
    submitted: int = 0
    expired: int = 0
    reconciled: int = 0
    notified: int = 0
    errors: int = 0
    changed: list[str] = field(default_factory=list)


class TrainService:
    """Args:
    store: where job records live.
    backends: the backends this deployment runs, by name (``sagemaker``, ``local``...).
    clock: returns the current UTC time.
    submit_grace: how long a claimed submission may take before the sweeper takes it over.
    stale_after: a job whose last native update is older than this is re-read by the sweeper.
    expiry_grace: how long past ``max_runtime`` the sweeper waits for the backend's own stop.
    registry: pins images to digests at submission and copies them to each backend's registry
        before the native submit; without it images are passed through as given.
    notifier: sends ``notify`` webhooks; without it a spec with ``notify`` is refused (422).
    webhook_backoff: how long failed webhook deliveries wait between tries, and how many tries.
    """

    def __init__(
        self,
        store: JobStore,
        backends: Mapping[str, TrainingBackend],
        *,
        clock: Callable[[], datetime] = utcnow,
        submit_grace: timedelta = timedelta(seconds=60),
        stale_after: timedelta = timedelta(minutes=10),
        expiry_grace: timedelta = timedelta(minutes=5),
        registry: ImageRegistry | None = None,
        notifier: Notifier | None = None,
        webhook_backoff: outbox.Backoff | None = None,
    ) -> None:
        self.store = store
        self.backends = dict(backends)
        self.clock = clock
        self.submit_grace = submit_grace
        self.stale_after = stale_after
        self.expiry_grace = expiry_grace
        self.registry = registry
        self.notifier = notifier
        self.webhook_backoff = webhook_backoff or outbox.Backoff()

    # ---- submit -------------------------------------------------------------------------------

    def submit(
        self, account_id: str, spec: JobSpec, *, idempotency_key: str | None = None
    ) -> tuple[JobRecord, bool]:
        """Submit a portable spec. Returns the job and whether it was created (False: the
        ``Idempotency-Key`` was seen before with the same body)."""
        backend = self._backend(spec.backend, ("backend",))
        backend.check_spec(spec)
        if spec.notify is not None and self.notifier is None:
            raise InvalidSpecError.at(("notify",), outbox.NO_WEBHOOKS)
        load_from = resolve_load_checkpoint(self.store, account_id, spec)
        image = self._pin(account_id, spec.image)
        spec_json = spec.model_dump(mode="json")
        job = self._new_record(
            account_id, spec.name, spec.project, spec.backend, spec.storage_mounts, spec.labels,
            spec=spec_json, native_request=None, image=image, load_from=load_from,
        )
        claim = idempotency_claim(idempotency_key, {"kind": "portable", "spec": spec_json})
        return self._create_and_launch(backend, job, claim)

    def submit_native(
        self, account_id: str, backend_name: str, request: NativeJobRequest, *, idempotency_key: str | None = None
    ) -> tuple[JobRecord, bool]:
        """Submit the SGP-style native shape; ``job_config`` is validated by the backend."""
        backend = self._backend(backend_name, ("backend",))
        backend.check_native(request)
        body = request.model_dump(mode="json")
        job = self._new_record(
            account_id, request.name, request.project, backend_name, request.storage_mounts, request.labels,
            spec={}, native_request=body, image=ImageRef(), load_from=None,
        )
        claim = idempotency_claim(idempotency_key, {"kind": "native", "backend": backend_name, "request": body})
        return self._create_and_launch(backend, job, claim)

    def _new_record(
        self, account_id: str, name: str, project: str, backend_name: str, mounts: list[StorageMount],
        labels: dict[str, str], *, spec: dict[str, Any], native_request: dict[str, Any] | None,
        image: ImageRef, load_from: str | None,
    ) -> JobRecord:
        now = self.clock()
        job = JobRecord(
            id=new_id(int(now.timestamp() * 1000)), account_id=account_id, name=name, project=project,
            backend=backend_name, storage_mounts=list(mounts), labels=dict(labels), spec=spec,
            native_request=native_request, image=image, created_at=now, updated_at=now,
            submit_claimed_at=now, load_checkpoint_job_id=load_from,
            events=[JobEvent(at=now, kind="transition", status=Status.PENDING, reason="submitted")],
        )
        job.native_id = self.backends[backend_name].native_id_for(job)
        return job

    def _create_and_launch(
        self, backend: TrainingBackend, job: JobRecord, claim: IdempotencyClaim | None
    ) -> tuple[JobRecord, bool]:
        stored, created = self.store.create(job, claim)
        if not created:
            return stored, False
        return self._launch(backend, stored), True

    def _launch(self, backend: TrainingBackend, job: JobRecord) -> JobRecord:
        """Create the native job and record it. A crash before the record leaves a PENDING job
        with a stale claim, which the sweeper takes over (the backend's submit is idempotent)."""
        try:
            runs = self._replicate(backend, job)
        except TrainError as exc:
            return self._defer_or_fail(job, exc, "copy of the image", f"copying the image for {backend.name} failed")
        try:
            previous = preemption.previous_view(job)
            if previous is not None:
                backend.cancel(previous)  # a platform that resumes preempted jobs must not run both
            submission = backend.submit(runs)
        except TrainError as exc:
            return self._defer_or_fail(job, exc, "submit", f"{backend.name} refused the job")

        def record(current: JobRecord) -> JobRecord | None:
            if current.cloud_job_identifier == submission.cloud_job_identifier and current.native_id:
                return None
            current.image.replicated = runs.image.replicated
            current.native_id = submission.native_id
            current.cloud_job_identifier = dict(submission.cloud_job_identifier)
            if current.native_status is None:
                current.native_status = submission.native_status
            return current

        updated = self._mutate(job.account_id, job.id, record)
        if is_terminal(updated.status):
            backend.cancel(updated)  # canceled or expired while the create was in flight: stop what it made
        return updated

    def _defer_or_fail(self, job: JobRecord, exc: TrainError, step: str, failure: str) -> JobRecord:
        if exc.retryable:
            log.warning("%s of %s deferred to the sweeper: %s", step, job.id, exc.detail)
            return self._get(job.account_id, job.id)
        reason = f"{failure}: {exc.detail}"
        return self._end(job.account_id, job.id, Status.FAILED, reason) or self._get(job.account_id, job.id)

    def _pin(self, account_id: str, image: str | None) -> ImageRef:
        """Resolve the tag before anything is stored: a missing or malformed image is a 422, an
        unreachable registry a 502, and the job never exists."""
        if image is None or self.registry is None:
            return ImageRef(requested=image)
        pinned = self.registry.resolve(account_id, image)
        return ImageRef(requested=image, resolved=pinned.resolved if pinned is not None else None)

    def _replicate(self, backend: TrainingBackend, job: JobRecord) -> JobRecord:
        """The job as the backend sees it: ``image.resolved`` is the copy in the backend's own
        registry, pinned by the digest recorded at submission (never the tag again)."""
        image = job.image
        if self.registry is None or not image.requested or not image.resolved:
            return job
        runs = self.registry.replicate(Pinned(image.requested, image.resolved), backend.name)
        return job.model_copy(update={"image": image.model_copy(update={"resolved": runs, "replicated": runs})})

    # ---- read ---------------------------------------------------------------------------------

    def get(self, account_id: str, job_id: str) -> JobRecord:
        return self._get(account_id, job_id)

    def list(self, account_id: str, query: JobQuery) -> JobPage:
        return self.store.list(account_id, query)

    def logs(
        self, account_id: str, job_id: str, *, cursor: str | None = None, limit: int = 100,
        since: datetime | None = None,
    ) -> LogPage:
        job = self._get(account_id, job_id)
        if not job.cloud_job_identifier:
            return LogPage(lines=[], next_cursor=cursor)
        return self.backends[job.backend].logs(job, cursor=cursor, limit=limit, since=since)

    def checkpoints(self, account_id: str, job_id: str) -> Checkpoints:
        job = self._get(account_id, job_id)
        return self.backends[job.backend].checkpoints(job)

    # ---- cancel -------------------------------------------------------------------------------

    def cancel(self, account_id: str, job_id: str) -> JobRecord:
        """Idempotent. A job with no native job yet is CANCELED at once; otherwise the native job
        is asked to stop and the job becomes CANCELED when the backend confirms."""
        job = self._get(account_id, job_id)
        if is_terminal(job.status):
            return job
        if not seen_native(job):
            # A create whose answer was lost may have made the native job all the same: stop it
            # (a no-op when there is none) before the job ends, unless a launch or an event shows one first.
            self.backends[job.backend].cancel(job)
            ended = self._end(account_id, job_id, Status.CANCELED, "canceled before the native job started",
                              unless=seen_native)
            if ended is not None:
                return ended
            job = self._get(account_id, job_id)
            if is_terminal(job.status):
                return job

        def mark(current: JobRecord) -> JobRecord | None:
            if is_terminal(current.status) or current.cancel_requested_at is not None:
                return None
            current.cancel_requested_at = self.clock()
            current.events.append(note(self.clock(), current, "cancel requested"))
            return current

        job = self._mutate(account_id, job_id, mark)
        if not is_terminal(job.status):
            self.backends[job.backend].cancel(job)
        return self._get(account_id, job_id)

    # ---- native updates -----------------------------------------------------------------------

    def apply_native_update(self, backend: str, native_id: str, update: NativeUpdate) -> Outcome | None:
        """Apply a backend's report about native job ``native_id``. Returns None when no job of
        ours runs as that native job (foreign or old-attempt events): the caller drops it."""
        job = self.store.find_by_native_id(backend, native_id)
        if job is None:
            log.info("no job for %s native job %s; update dropped", backend, native_id)
            return None
        return self.apply_update(job, update)

    def apply_update(self, job: JobRecord, update: NativeUpdate) -> Outcome:
        """The one path every status change from a backend takes (events, process exits, sweeps)."""
        outcome: Outcome = Outcome.DUPLICATE
        backend = self.backends.get(job.backend)

        def change(current: JobRecord) -> JobRecord:
            nonlocal outcome
            now = self.clock()
            outcome = decide(current.status, current.native_status, current.native_time, current.attempt, update)
            if outcome == Outcome.PREEMPTED:
                handled = preemption.apply(current, update, now, backend.native_id_for if backend else None)
                if handled is not None:  # resubmitted, or failed with no retries left
                    outcome = handled
                    return current
                outcome = decide(current.status, current.native_status, current.native_time, current.attempt,
                                 replace(update, preempted=False))
            if outcome == Outcome.TRANSITION:
                for step in path_to(current.status, update.status or current.status):
                    move(current, step, now, update.event_time)
                    current.events.append(native_event(now, "transition", step, update, current.attempt))
            elif outcome == Outcome.REFRESH:
                current.events.append(native_event(now, "refresh", current.status, update, current.attempt))
            else:
                log.info("job %s: %s update %s ignored", current.id, outcome.value.lower(), update.native_status)
                current.ignored_updates += 1
                why = outcome.value.lower() + (f": {update.reason}" if update.reason else "")
                current.events.append(native_event(now, "ignored", current.status, update, current.attempt, reason=why))
                cap_ignored(current)
                return current
            current.native_status = update.native_status
            current.native_time = update.event_time
            if update.reason is not None and (outcome == Outcome.TRANSITION or current.status_reason is None):
                current.status_reason = update.reason
            return current

        updated = self._mutate(job.account_id, job.id, change, first=job)
        if outcome in APPLIED:
            log.info("job %s: %s (%s)", job.id, outcome.value.lower(), update.native_status)
        if outcome == Outcome.PREEMPTED and backend is not None:
            self._launch(backend, updated)  # the sweeper finishes it if this process dies first
        return outcome

    # ---- sweep --------------------------------------------------------------------------------

    def sweep(self, *, reconcile_all: bool = False) -> SweepReport:
        """Expire, reconcile and finish crashed submissions, reading only non-terminal jobs.

        ``reconcile_all`` re-reads every active job regardless of age (local mode at start-up).
        """
        report = SweepReport()
        cursor: str | None = None
        while True:
            jobs, cursor = self.store.list_active(limit=100, cursor=cursor)
            for job in jobs:
                report.scanned += 1
                try:
                    if job.outbox and outbox.due(job, self.clock()):
                        job = self._deliver(job)
                        report.notified += 1
                    if is_terminal(job.status):
                        continue  # in the index only for its outbox
                    action = self._sweep_one(job, reconcile_all)
                    if action is not None:
                        setattr(report, action, getattr(report, action) + 1)
                        report.changed.append(job.id)
                except TrainError as exc:
                    report.errors += 1
                    log.warning("sweep of job %s failed: %s", job.id, exc.detail)
                    continue
            if cursor is None:
                break
        return report

    def _sweep_one(self, job: JobRecord, reconcile_all: bool) -> SweepAction | None:
        """Do what one active job needs; returns which ``SweepReport`` counter it counts under."""
        now = self.clock()
        backend = self.backends.get(job.backend)
        if backend is None:
            return None
        spec = job.spec
        max_pending = _seconds(spec.get("max_pending"))
        max_runtime = _seconds(spec.get("max_runtime"))
        if job.status == Status.PENDING and max_pending and now > job.created_at + max_pending:
            return "expired" if self._expire(backend, job, "max_pending exceeded") else None
        if (
            job.status == Status.IN_PROGRESS and max_runtime and job.started_at
            and now > job.started_at + max_runtime + self.expiry_grace
        ):
            return "expired" if self._expire(backend, job, "max_runtime exceeded") else None
        if not job.cloud_job_identifier:
            if job.submit_claimed_at is not None and now - job.submit_claimed_at < self.submit_grace:
                return None
            claimed_at = job.submit_claimed_at

            def claim(current: JobRecord) -> JobRecord | None:
                if current.cloud_job_identifier or current.submit_claimed_at != claimed_at:
                    raise _Lost()
                current.submit_claimed_at = now
                return current

            try:
                claimed = self._mutate(job.account_id, job.id, claim, first=job)
            except _Lost:
                return None
            launched = self._launch(backend, claimed)
            if launched.cloud_job_identifier and not is_terminal(launched.status):
                self.apply_update(launched, backend.describe(launched))  # a lost create's job may have moved on
            return "submitted"
        last = job.native_time or job.updated_at
        if reconcile_all or now - max(last, job.updated_at) >= self.stale_after:
            outcome = self.apply_update(job, backend.describe(job))
            return "reconciled" if outcome in APPLIED else None
        return None

    def _expire(self, backend: TrainingBackend, job: JobRecord, reason: str) -> bool:
        backend.cancel(job)  # stop the native job first (even one a lost create made), so nothing is left billing
        return self._end(job.account_id, job.id, Status.EXPIRED, reason) is not None

    # ---- helpers ------------------------------------------------------------------------------

    def _backend(self, name: str, path: tuple[str | int, ...]) -> TrainingBackend:
        backend = self.backends.get(name)
        if backend is None:
            enabled = ", ".join(sorted(self.backends)) or "none"
            raise InvalidSpecError.at(path, f"backend '{name}' is not enabled in this deployment (enabled: {enabled})")
        return backend

    def _get(self, account_id: str, job_id: str) -> JobRecord:
        job = self.store.get(account_id, job_id)
        if job is None:
            raise NotFoundError(f"no job '{job_id}'")
        return job

    def _end(self, account_id: str, job_id: str, status: Status, reason: str,
             *, unless: Callable[[JobRecord], bool] | None = None) -> JobRecord | None:
        """Move an active job to a terminal ``status`` decided by Train itself (not a backend).
        Returns None if it had already ended, or ``unless`` holds for it as stored."""
        changed = False

        def end(current: JobRecord) -> JobRecord | None:
            nonlocal changed
            changed = False  # decided again on each read: an earlier try may have lost its write
            if is_terminal(current.status) or (unless is not None and unless(current)):
                return None
            now = self.clock()
            for step in path_to(current.status, status):
                move(current, step, now, None)
                current.events.append(JobEvent(at=now, kind="transition", status=step, reason=reason,
                                               attempt=current.attempt))
            current.status_reason = reason
            changed = True
            return current

        job = self._mutate(account_id, job_id, end)
        return job if changed else None

    def _mutate(
        self, account_id: str, job_id: str, change: Callable[[JobRecord], JobRecord | None],
        *, first: JobRecord | None = None, deliver: bool = True,
    ) -> JobRecord:
        """Read, change, conditional-write; on conflict re-read and decide again. ``change`` gets a copy and
        returns None to leave the job as it is. A status change queues its webhooks in the same write."""
        job = first
        for _ in range(MAX_CAS_ATTEMPTS):
            if job is None:
                job = self._get(account_id, job_id)
            draft = job.model_copy(deep=True)
            new = change(draft)
            if new is None:
                return job
            new.updated_at = self.clock()
            queued = len(new.outbox)
            if new.status != job.status:
                outbox.enqueue(new, steps(job.status, new.status), new.updated_at)
            try:
                stored = self.store.update(new, expected_version=job.version, expected_status=job.status)
            except VersionConflictError:
                job = None
                continue
            return self._deliver(stored) if deliver and len(stored.outbox) > queued else stored
        raise VersionConflictError(f"job {job_id} kept changing; gave up after {MAX_CAS_ATTEMPTS} attempts")

    def _deliver(self, job: JobRecord) -> JobRecord:
        """Send the job's due webhook deliveries, then record how each went. A crash before that
        record only means the same delivery (same id) is sent again: at least once."""
        delivered, failed = outbox.send_due(job, self.notifier, self.clock())

        def settle(current: JobRecord) -> JobRecord | None:
            return current if outbox.settle(current, delivered, failed, self.clock(), self.webhook_backoff) else None

        try:
            return self._mutate(job.account_id, job.id, settle, first=job, deliver=False)
        except TrainError as exc:  # the transition is durable; the sweeper sends these again
            log.warning("webhook outcomes of job %s not recorded: %s", job.id, exc.detail)
            return job


class _Lost(Exception):
    """Another sweeper or the original request took the submission first."""


def _seconds(value: object) -> timedelta | None:
    return None if value is None else parse_duration(value)
