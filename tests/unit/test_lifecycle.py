"""The transition table and ``decide``, including the property that reordered and duplicated
native updates never regress a job and always end where the latest native state points."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.lifecycle import (
    ACTIVE,
    TERMINAL,
    TRANSITIONS,
    NativeUpdate,
    Outcome,
    Status,
    can_transition,
    decide,
    path_to,
)
from core.model import JobSpec
from core.service import TrainService
from tests.fakes import FakeBackend, FakeClock, InMemoryJobStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RANK = {Status.PENDING: 0, Status.IN_PROGRESS: 1, **{s: 2 for s in TERMINAL}}


def test_table_is_forward_only_and_terminal_states_absorb() -> None:
    for status in TERMINAL:
        assert TRANSITIONS[status] == frozenset()
    for current, targets in TRANSITIONS.items():
        for target in targets:
            assert RANK[target] > RANK[current]
    assert not can_transition(Status.IN_PROGRESS, Status.PENDING)
    assert not can_transition(Status.PENDING, Status.COMPLETED)
    assert can_transition(Status.PENDING, Status.FAILED)


@pytest.mark.parametrize(
    ("current", "target", "steps"),
    [
        (Status.PENDING, Status.COMPLETED, [Status.IN_PROGRESS, Status.COMPLETED]),
        (Status.PENDING, Status.CANCELED, [Status.CANCELED]),
        (Status.IN_PROGRESS, Status.EXPIRED, [Status.EXPIRED]),
        (Status.IN_PROGRESS, Status.PENDING, []),
        (Status.COMPLETED, Status.FAILED, []),
        (Status.FAILED, Status.FAILED, []),
    ],
)
def test_path_to(current: Status, target: Status, steps: list[Status]) -> None:
    assert path_to(current, target) == steps


def _u(native: str, status: Status | None, seconds: int, attempt: int | None = 1) -> NativeUpdate:
    return NativeUpdate(native, status, T0 + timedelta(seconds=seconds), attempt=attempt)


@pytest.mark.parametrize(
    ("status", "native", "at", "update", "outcome"),
    [
        (Status.PENDING, None, None, _u("Running", Status.IN_PROGRESS, 5), Outcome.TRANSITION),
        (Status.PENDING, "Queued", 5, _u("Queued", Status.PENDING, 5), Outcome.DUPLICATE),
        (Status.PENDING, "Starting", 9, _u("Queued", Status.PENDING, 5), Outcome.STALE),
        (Status.PENDING, "Queued", 5, _u("Starting", Status.PENDING, 9), Outcome.REFRESH),
        (Status.IN_PROGRESS, "Running", 9, _u("Queued", Status.PENDING, 99), Outcome.REGRESSION),
        (Status.COMPLETED, "Succeeded", 9, _u("Failed", Status.FAILED, 99), Outcome.TERMINAL),
        (Status.COMPLETED, "Succeeded", 9, _u("Succeeded", Status.COMPLETED, 9), Outcome.DUPLICATE),
        (Status.IN_PROGRESS, "Running", 9, _u("Weird", None, 99), Outcome.UNKNOWN),
        (Status.IN_PROGRESS, "Running", 9, _u("Succeeded", Status.COMPLETED, 99, attempt=2), Outcome.OLD_ATTEMPT),
        (Status.IN_PROGRESS, "Running", 9, _u("Succeeded", Status.COMPLETED, 1), Outcome.TRANSITION),
    ],
)
def test_decide(status: Status, native: str | None, at: int | None, update: NativeUpdate, outcome: Outcome) -> None:
    native_time = None if at is None else T0 + timedelta(seconds=at)
    assert decide(status, native, native_time, 1, update) == outcome


# A backend's native states, grouped by the Train status they imply (the fake backend's table).
NATIVE = {
    Status.PENDING: ["Queued"],
    Status.IN_PROGRESS: ["Running"],
    Status.COMPLETED: ["Succeeded"],
    Status.FAILED: ["Failed"],
    Status.CANCELED: ["Stopped"],
    Status.EXPIRED: ["TimedOut"],
}


@st.composite
def native_histories(draw: st.DrawFn) -> list[NativeUpdate]:
    """A plausible native history: some pending reports, maybe some running ones, maybe an end;
    strictly increasing event times."""
    statuses = [Status.PENDING] * draw(st.integers(0, 3)) + [Status.IN_PROGRESS] * draw(st.integers(0, 4))
    end = draw(st.sampled_from([None, *sorted(TERMINAL)]))
    if end is not None:
        statuses.append(end)
    if not statuses:
        statuses = [Status.PENDING]
    gaps = draw(st.lists(st.integers(1, 120), min_size=len(statuses), max_size=len(statuses)))
    out, t = [], 0
    for status, gap in zip(statuses, gaps, strict=True):
        t += gap
        out.append(NativeUpdate(NATIVE[status][0], status, T0 + timedelta(seconds=t), reason=f"t{t}", attempt=1))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=native_histories(), data=st.data())
def test_reordered_duplicated_updates_end_at_latest_native_state(
    history: list[NativeUpdate], data: st.DataObject
) -> None:
    store, backend = InMemoryJobStore(), FakeBackend()
    service = TrainService(store, {"local": backend}, clock=FakeClock())
    job, _ = service.submit("acct", JobSpec(name="prop", backend="local", command=["true"]))
    copies = data.draw(st.lists(st.integers(1, 3), min_size=len(history), max_size=len(history)))
    deliveries = [u for u, n in zip(history, copies, strict=True) for _ in range(n)]
    deliveries = data.draw(st.permutations(deliveries))

    seen = [Status.PENDING]
    for update in deliveries:
        service.apply_native_update("local", job.native_id or "", update)
        status = service.get("acct", job.id).status
        assert RANK[status] >= RANK[seen[-1]], f"regressed from {seen[-1]} to {status}"
        if seen[-1] in TERMINAL:
            assert status == seen[-1]
        seen.append(status)

    final = service.get("acct", job.id)
    latest = max(history, key=lambda u: u.event_time)
    assert final.status == latest.status
    assert final.native_status == latest.native_status
    assert final.native_time == latest.event_time
    transitions = [e.status for e in final.events if e.kind == "transition"]
    for before, after in itertools.pairwise(transitions):
        assert can_transition(before, after)
    # every delivery is either applied or recorded as ignored
    applied = sum(1 for e in final.events if e.kind == "refresh") + len({
        e.event_time for e in final.events if e.kind == "transition" and e.event_time is not None
    })
    assert applied + final.ignored_updates == len(deliveries)
    assert final.ignored_updates == sum(1 for e in final.events if e.kind == "ignored")
    assert (final.status in ACTIVE) == (latest.status in ACTIVE)
