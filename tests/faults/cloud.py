"""The cloud side of a fault scenario: the native jobs a backend made, moved along by the test the
way the platform would move them, and the events the platform sends about them.

``FakeCloud`` is a ``FakeBackend`` (native jobs in a dict) that also counts creates per native job
and reads the world's clock. ``Cloud`` is what the scenarios and the checks need from either it or
the SageMaker fake (``tests/faults/sagemaker_cloud.py``).
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from core.errors import UnavailableError
from core.lifecycle import NativeUpdate, Status
from core.model import JobRecord, Submission
from tests.fakes import FAKE_STATES, FakeBackend, FakeClock

# The scenarios' own words for native states, as FakeBackend spells them.
QUEUED, RUNNING, SUCCEEDED, FAILED, STOPPED = "Queued", "Running", "Succeeded", "Failed", "Stopped"
ENDED = frozenset({SUCCEEDED, FAILED, STOPPED})


class Cloud(Protocol):
    name: str

    def latest(self, job_id: str) -> tuple[int, str] | None:
        """``(attempt, native id)`` of the newest native job made for ``job_id``; None if none."""
        ...

    def state(self, native_id: str) -> str: ...

    def move(self, native_id: str, state: str) -> None:
        """The platform moves the native job to ``state`` (one of the names above)."""
        ...

    def update(self, native_id: str, attempt: int, *, preempted: bool = False) -> NativeUpdate:
        """The event the platform sends about the native job's current state."""
        ...

    def settle(self) -> None:
        """The platform finishes what it was asked to do (a stop takes a while on some)."""
        ...

    def throttle_next_create(self) -> None:
        """The next create is refused with a throttling error (a scripted, not an injected, fault)."""
        ...

    def preempt(self, native_id: str) -> None:
        """The platform takes the capacity back: the native job is over, as a spot interruption."""
        ...

    def natives(self, job_id: str) -> dict[int, Status | None]:
        """Each native job made for ``job_id``, by attempt, as the Train status its state maps to."""
        ...

    def creates_per_attempt(self) -> Counter[tuple[str, int]]:
        """How many native jobs were created per ``(job id, attempt)``."""
        ...


class FakeCloud(FakeBackend):
    """``FakeBackend`` with creates counted per native job and times from the world's clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__("local")
        self.clock = clock
        self.created: Counter[str] = Counter()

    def submit(self, job: JobRecord) -> Submission:
        before = self.creates
        try:
            return super().submit(job)
        finally:
            if self.creates > before:
                self.created[f"fake-{job.id}-{job.attempt}"] += 1

    def cancel(self, job: JobRecord) -> None:
        """As the clouds do: a native job that already ended (or never existed) is left alone."""
        self.canceled.append(job.id)
        native_id = self.find(job)
        if native_id in self.native and self.native[native_id] not in ENDED:
            self.native[native_id] = STOPPED

    def find(self, job: JobRecord) -> str:
        """The native job of ``job``'s current attempt, by the name Train chose for it."""
        return job.native_id or ""

    def describe(self, job: JobRecord) -> NativeUpdate:
        return self.update(job.native_id or "", job.attempt)

    # ---- Cloud --------------------------------------------------------------------------------

    def latest(self, job_id: str) -> tuple[int, str] | None:
        mine = [(attempt, native_id) for native_id in self.native if (attempt := _attempt(native_id, job_id))]
        return max(mine) if mine else None

    def state(self, native_id: str) -> str:
        return self.native[native_id]

    def move(self, native_id: str, state: str) -> None:
        self.native[native_id] = state

    def update(self, native_id: str, attempt: int, *, preempted: bool = False) -> NativeUpdate:
        state = self.native[native_id]
        reason = "spot capacity reclaimed" if preempted else None
        return NativeUpdate(state, FAKE_STATES.get(state), self.clock(), reason, attempt, preempted)

    def settle(self) -> None:
        return None  # stops are immediate here

    def throttle_next_create(self) -> None:
        self.fail_next_submit, self.lose_response = UnavailableError("the backend is throttling"), False

    def preempt(self, native_id: str) -> None:
        self.native[native_id] = FAILED

    def natives(self, job_id: str) -> dict[int, Status | None]:
        return {
            attempt: FAKE_STATES.get(state)
            for native_id, state in self.native.items()
            if (attempt := _attempt(native_id, job_id))
        }

    def creates_per_attempt(self) -> Counter[tuple[str, int]]:
        out: Counter[tuple[str, int]] = Counter()
        for native_id, n in self.created.items():
            job_id, _, attempt = native_id.removeprefix("fake-").rpartition("-")
            out[(job_id, int(attempt))] += n
        return out


def _attempt(native_id: str, job_id: str) -> int:
    """The attempt of ``fake-<job_id>-<attempt>``; 0 when the native job is another job's."""
    head, _, attempt = native_id.rpartition("-")
    return int(attempt) if head == f"fake-{job_id}" else 0


class AssignedIdCloud(FakeCloud):
    """A platform that names native jobs itself, as Vertex AI does: the service learns the id from
    the submit's answer only (an event about a job it has not recorded yet finds nothing), and a
    retried create finds the earlier one by its labels (job id and attempt) instead of making
    another. The ids still spell the job and attempt, for the checks' sake only."""

    def native_id_for(self, job: JobRecord) -> str | None:
        return None

    def find(self, job: JobRecord) -> str:
        return job.native_id or f"fake-{job.id}-{job.attempt}"
