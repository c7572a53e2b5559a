"""A stream of SageMaker EventBridge events for many jobs, fed through the real event handler,
and the checks of what it must leave behind. Shared by tests/volume and bench/events_volume.py.

Each job gets ``EVENTS_PER_JOB`` "SageMaker Training Job State Change" events (the published
sample, via ``tests.functions.shapes.sagemaker_event``): ``InProgress`` with pending secondary
statuses, then running ones, then one terminal state, at strictly increasing ``LastModifiedTime``.
The terminal cycles through Completed, Failed, Stopped (a cancel) and Stopped/MaxRuntimeExceeded.
The whole stream is delivered ``copies`` times over, shuffled with a fixed seed.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from core import hosts
from core.bootstrap import Wiring, build
from core.config import Settings
from core.errors import TrainError
from core.lifecycle import APPLIED, Outcome, Status, can_transition, path_to
from core.model import JobRecord, JobSpec
from core.service import TrainService
from functions.aws import sagemaker_events
from tests.functions.shapes import sagemaker_event, spec
from tests.volume.counting import CountingStore

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
EVENTS_PER_JOB = 20
ACCOUNT = "acct-a"
PENDING = ("Starting", "LaunchingMLInstances", "PreparingTrainingStack", "DownloadingTrainingImage", "Downloading")
# No "Interrupted": that secondary status is a spot interruption, which starts another attempt.
RUNNING = ("Training", "Restarting", "Training", "Updating", "Training", "Uploading")
FAILURE = "AlgorithmError: exit code 1"
IGNORED = frozenset(Outcome) - APPLIED  # outcomes the service counts in ignored_updates
REDELIVERIES = 5  # how often a delivery that raised a retryable error is tried again
RESULTS: list[str] = []  # one line per run, printed at the end of the pytest session


@dataclass(frozen=True)
class Final:
    status: Status
    native_status: str
    native_time: datetime
    reason: str | None


# (TrainingJobStatus, SecondaryStatus) of the last two events of each kind of ending, and its result.
ENDINGS: tuple[tuple[tuple[str, str], tuple[str, str], Status, str, str | None], ...] = (
    (("InProgress", "Uploading"), ("Completed", "Completed"), Status.COMPLETED, "Completed", None),
    (("InProgress", "Training"), ("Failed", "Failed"), Status.FAILED, "Failed", FAILURE),
    (("Stopping", "Stopping"), ("Stopped", "Stopped"), Status.CANCELED, "Stopped", "stopped"),
    (("Stopping", "MaxRuntimeExceeded"), ("Stopped", "MaxRuntimeExceeded"), Status.EXPIRED,
     "Stopped/MaxRuntimeExceeded", "max_runtime exceeded"),
)


@dataclass
class Planned:
    job_id: str
    name: str  # the SageMaker training job name
    events: list[dict[str, Any]]
    final: Final


def plan(job_id: str, name: str, index: int, per_job: int = EVENTS_PER_JOB) -> Planned:
    """The events of one job; ``index`` picks its ending and offsets its clock."""
    before_end, end, status, native, reason = ENDINGS[index % len(ENDINGS)]
    steps = [("InProgress", s) for s in PENDING]
    running = per_job - len(steps) - 2
    steps += [("InProgress", RUNNING[i % len(RUNNING)]) for i in range(running)]
    steps += [before_end, end]
    base = T0_MS + index * 7_919
    events = [
        sagemaker_event(name, state, secondary, modified_ms=base + 1000 * step,
                        failure_reason=FAILURE if state == "Failed" else None)
        for step, (state, secondary) in enumerate(steps)
    ]
    end_time = datetime.fromtimestamp((base + 1000 * (len(steps) - 1)) / 1000, UTC)
    return Planned(job_id, name, events, Final(status, native, end_time, reason))


def deliveries(plans: Iterable[Planned], *, copies: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """Every event of every job ``copies`` times over (same event id: a redelivery), shuffled."""
    stream = [(p.job_id, event) for p in plans for event in p.events] * copies
    random.Random(seed).shuffle(stream)
    return stream


def wiring_for(store_url: str) -> tuple[Wiring, CountingStore]:
    """The real wiring for ``TRAIN_STORE=store_url`` (the rest of ``TRAIN_*`` from the
    environment), with the job store behind a counting wrapper; installed for the handlers."""
    wired = build(Settings(store=store_url))
    counting = CountingStore(wired.store)
    wired.store = wired.service.store = counting
    hosts.set_wiring_for_tests(wired)
    return wired, counting


def submit_jobs(service: TrainService, count: int, *, threads: int = 4) -> list[tuple[str, str]]:
    """Submit ``count`` SageMaker jobs through the service; ``(job id, training job name)`` each."""
    job_spec = JobSpec.model_validate(spec())

    def one(_: int) -> tuple[str, str]:
        job, _created = service.submit(ACCOUNT, job_spec)
        return job.id, str(job.cloud_job_identifier["job_name"])

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


@dataclass
class Delivered:
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # per job id
    retried: int = 0
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return sum(sum(c.values()) for c in self.outcomes.values())


def deliver_all(
    stream: list[tuple[str, dict[str, Any]]], *, threads: int = 1,
    handler: Callable[[dict[str, Any], Any], dict[str, str]] = sagemaker_events.handler,
) -> Delivered:
    """Feed every event to ``handler`` as EventBridge and Lambda would: concurrently when
    ``threads`` > 1, and again when the handler raises (it raises only what a retry can fix)."""
    result = Delivered()

    def one(item: tuple[str, dict[str, Any]]) -> tuple[str, str, int]:
        job_id, event = item
        attempt = 0
        while True:
            try:
                return job_id, handler(event, None)["outcome"], attempt
            except TrainError as exc:
                if not exc.retryable or attempt == REDELIVERIES:
                    raise
                attempt += 1

    start = time.perf_counter()
    if threads == 1:
        done = [one(item) for item in stream]
    else:
        with ThreadPoolExecutor(threads) as pool:
            done = list(pool.map(one, stream))
    result.seconds = time.perf_counter() - start
    for job_id, outcome, attempts in done:
        result.outcomes[job_id][outcome] += 1
        result.retried += attempts
    return result


def problems(plans: list[Planned], stored: dict[str, JobRecord], delivered: Delivered,
             counting: CountingStore, *, copies: int) -> list[str]:
    """Everything wrong with the end state, as readable lines (empty when all is exact)."""
    found: list[str] = []
    for p in plans:
        job = stored.get(p.job_id)
        if job is None:
            found.append(f"{p.job_id}: missing")
            continue
        final = p.final
        got = (job.status, job.native_status, job.native_time, job.status_reason)
        want = (final.status, final.native_status, final.native_time, final.reason)
        if got != want:
            found.append(f"{p.job_id}: final {got} != {want}")
        if job.ended_at != final.native_time:
            found.append(f"{p.job_id}: ended_at {job.ended_at} != {final.native_time}")
        found += _regressions(p.job_id, counting.history.get(p.job_id, []))
        transitions = [e.status for e in job.events if e.kind == "transition"]
        legal = all(can_transition(a, b) for a, b in pairwise(transitions))
        if not legal or transitions[:1] != [Status.PENDING] or transitions[-1] != final.status:
            found.append(f"{p.job_id}: transitions {[s.value for s in transitions]}")
        outcomes = delivered.outcomes.get(p.job_id, Counter())
        if sum(outcomes.values()) != len(p.events) * copies:
            found.append(f"{p.job_id}: {sum(outcomes.values())} outcomes for {len(p.events) * copies} deliveries")
        ignored = sum(n for o, n in outcomes.items() if o in IGNORED)
        if job.ignored_updates != ignored:
            found.append(f"{p.job_id}: ignored_updates {job.ignored_updates}, handler said {ignored}")
    return found


def _regressions(job_id: str, history: list[tuple[int, Status]]) -> list[str]:
    """Each stored version of the job, in the order the store accepted them: the status only
    moves forward along the transition table (one write may take several steps), never back."""
    found = []
    ordered = sorted(history)
    versions = [v for v, _ in ordered]
    if len(set(versions)) != len(versions):
        found.append(f"{job_id}: a version was written twice: {versions}")
    for (_, before), (version, after) in pairwise(ordered):
        if before != after and not path_to(before, after):
            found.append(f"{job_id}: v{version} went {before.value} -> {after.value}")
    return found


def read_back(store: Any, plans: list[Planned]) -> dict[str, JobRecord]:
    jobs = {}
    for p in plans:
        job = store.get(ACCOUNT, p.job_id)
        if job is not None:
            jobs[p.job_id] = job
    return jobs
