"""The job lifecycle: the status enum and the one table of allowed transitions.

Nothing else decides whether a transition is legal. ``decide`` turns a native update into one
of a few outcomes; the service applies it with a conditional write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


TERMINAL: frozenset[Status] = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELED, Status.EXPIRED})
ACTIVE: frozenset[Status] = frozenset({Status.PENDING, Status.IN_PROGRESS})

# The one transition table (SPEC §6). Terminal states have no way out.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.IN_PROGRESS, Status.FAILED, Status.CANCELED, Status.EXPIRED}),
    Status.IN_PROGRESS: frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELED, Status.EXPIRED}),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELED: frozenset(),
    Status.EXPIRED: frozenset(),
}


def is_terminal(status: Status) -> bool:
    return status in TERMINAL


def can_transition(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def path_to(current: Status, target: Status) -> list[Status]:
    """The steps from ``current`` to ``target`` along the table, shortest first; ``[]`` if none.

    A job whose IN_PROGRESS event was lost still reaches COMPLETED: PENDING → IN_PROGRESS →
    COMPLETED, each step legal on its own.
    """
    if current == target:
        return []
    frontier: list[list[Status]] = [[current]]
    seen = {current}
    while frontier:
        nxt: list[list[Status]] = []
        for route in frontier:
            for step in sorted(TRANSITIONS[route[-1]]):
                if step in seen:
                    continue
                if step == target:
                    return [*route[1:], step]
                seen.add(step)
                nxt.append([*route, step])
        frontier = nxt
    return []


@dataclass(frozen=True)
class NativeUpdate:
    """A backend's report of its native job, already mapped to a Train status.

    ``status`` is None when the native state is unknown to the mapping table: such an update is
    logged and recorded but changes nothing. ``event_time`` is the backend's own time of the state
    (SageMaker ``LastModifiedTime``, Vertex ``updateTime``, ...), which orders updates within a state.
    ``preempted`` says the platform took the native job's capacity back (a spot interruption):
    ``status`` is then what the native job itself reports (FAILED when it is over, IN_PROGRESS
    when the platform would resume it on its own).
    """

    native_status: str
    status: Status | None
    event_time: datetime
    reason: str | None = None
    attempt: int | None = None
    preempted: bool = False


class Outcome(StrEnum):
    TRANSITION = "TRANSITION"  # the status moves forward
    REFRESH = "REFRESH"  # same status, newer native detail
    DUPLICATE = "DUPLICATE"
    STALE = "STALE"  # same status, older than what is recorded
    REGRESSION = "REGRESSION"  # would move backwards or sideways
    TERMINAL = "TERMINAL"  # the job already ended
    UNKNOWN = "UNKNOWN"  # native state not in the mapping table
    OLD_ATTEMPT = "OLD_ATTEMPT"  # from a native job of an earlier attempt
    PREEMPTED = "PREEMPTED"  # the current attempt's native job was preempted; the service decides what next


APPLIED: frozenset[Outcome] = frozenset({Outcome.TRANSITION, Outcome.REFRESH, Outcome.PREEMPTED})


def decide(
    status: Status,
    native_status: str | None,
    native_time: datetime | None,
    attempt: int,
    update: NativeUpdate,
) -> Outcome:
    """Decide what a native update does to a job in ``status`` whose last applied update was
    ``native_status`` at ``native_time``. Forward moves win whatever their time; within a state the
    native event time orders updates. A preemption counts only when it names the current attempt
    (so a redelivered one, arriving after the resubmission, is OLD_ATTEMPT) and the job is active."""
    if update.attempt is not None and update.attempt != attempt:
        return Outcome.OLD_ATTEMPT
    if update.status is None:
        return Outcome.UNKNOWN
    if update.preempted and update.attempt is not None and not is_terminal(status):
        return Outcome.PREEMPTED
    same = update.native_status == native_status and update.event_time == native_time
    if is_terminal(status):
        return Outcome.DUPLICATE if same else Outcome.TERMINAL
    if update.status == status:
        if native_time is None or update.event_time > native_time:
            return Outcome.REFRESH
        return Outcome.DUPLICATE if same else Outcome.STALE
    if path_to(status, update.status):
        return Outcome.TRANSITION
    return Outcome.REGRESSION
