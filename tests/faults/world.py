"""One fault scenario's world, and the steps a scenario is made of.

A world is a ``TrainService`` over a ``FaultyStore`` (around a real adapter) and a
``FaultyBackend`` (around a cloud), a fake clock and the trace both wrappers share. Steps act as
Train's callers do, including what each caller does when a call fails:

- an HTTP client (submit, cancel) retries a 5xx with the same ``Idempotency-Key`` and gives up on
  a 4xx;
- the event platform delivers an event again while the handler raises (``hosts.deliver`` raises
  only retryable errors);
- the sweeper's schedule runs it again on the next tick when a sweep raises.

The cloud moves its native jobs by itself (``native``): a native job that does not exist yet (its
create was deferred) or has ended stays as it is, and each move is followed by its event.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from core import hosts
from core.errors import TrainError
from core.model import JobSpec
from core.service import TrainService
from tests.fakes import FakeClock
from tests.faults.cloud import ENDED, Cloud
from tests.faults.faulty import FaultyBackend, FaultyStore, Trace

ACCOUNT = "acct-faults"
RETRIES = 4  # per HTTP call and per event delivery; one fault per run needs one retry at most
SUBMIT_GRACE = timedelta(seconds=60)
STALE_AFTER = timedelta(minutes=10)
T = TypeVar("T")


@dataclass
class World:
    service: TrainService
    store: FaultyStore
    backend: FaultyBackend
    cloud: Cloud
    clock: FakeClock
    trace: Trace
    spec: dict[str, Any]  # the scenario's base spec; steps add to it
    close: Callable[[], None] = lambda: None
    job_id: str | None = None
    specs: dict[str, JobSpec] = field(default_factory=dict)  # Idempotency-Key -> what it submitted
    answers: dict[str, list[str]] = field(default_factory=dict)  # Idempotency-Key -> job ids answered
    refused: list[str] = field(default_factory=list)  # 4xx answers (not retried)
    refused_keys: set[str] = field(default_factory=set)  # submissions answered with a 4xx
    scenario_calls: int = 0  # the length of the trace when the scenario ended


def build(store: Any, cloud: Cloud, backend: Any, clock: FakeClock, trace: Trace, spec: dict[str, Any]) -> World:
    faulty_store, faulty_backend = FaultyStore(store, trace), FaultyBackend(backend, trace)
    service = TrainService(faulty_store, {cloud.name: faulty_backend}, clock=clock,
                           submit_grace=SUBMIT_GRACE, stale_after=STALE_AFTER)
    return World(service, faulty_store, faulty_backend, cloud, clock, trace, spec)


# ---- callers ------------------------------------------------------------------------------------


def http(world: World, call: Callable[[], T]) -> T | None:
    """An HTTP client: a 5xx is retried, a 4xx is the answer (None)."""
    for attempt in itertools.count(1):
        try:
            return call()
        except TrainError as exc:
            if exc.status < 500:
                world.refused.append(f"{exc.status} {exc.detail}")
                return None
            if attempt == RETRIES:
                raise
    raise AssertionError("unreachable")


def deliver(world: World, native_id: str, attempt: int, *, preempted: bool = False) -> None:
    """The platform's event about the native job's current state, delivered until acknowledged."""
    update = world.cloud.update(native_id, attempt, preempted=preempted)
    for n in itertools.count(1):
        try:
            hosts.deliver(world.service, world.cloud.name, native_id, update, event_id=f"evt-{native_id}-{n}")
            return
        except TrainError:  # retryable only: anything else is logged and acknowledged
            if n == RETRIES:
                raise


def sweep_until_done(world: World) -> None:
    for tick in itertools.count(1):
        try:
            world.service.sweep()
            return
        except TrainError:
            if tick == RETRIES:
                raise


# ---- steps --------------------------------------------------------------------------------------

Step = Callable[[World], None]


def submit(*, deferred: bool = False, **extra: Any) -> Step:
    """POST a job with a fresh Idempotency-Key. ``deferred``: the backend throttles the first
    create (part of the scenario, not an injected fault), so the sweeper has to finish it."""

    def step(world: World) -> None:
        key = f"idem-{len(world.specs) + 1}"
        spec = JobSpec.model_validate({**world.spec, **extra})
        world.specs[key], world.answers[key] = spec, []
        if deferred:
            world.cloud.throttle_next_create()
        answer = http(world, lambda: world.service.submit(ACCOUNT, spec, idempotency_key=key))
        if answer is None:
            world.refused_keys.add(key)
        else:
            world.job_id = answer[0].id
            world.answers[key].append(answer[0].id)

    return step


def native(state: str, *, event: bool = True) -> Step:
    """The platform moves the newest native job of the scenario's job to ``state`` and says so."""

    def step(world: World) -> None:
        latest = world.cloud.latest(world.job_id or "")
        if latest is None or world.cloud.state(latest[1]) in ENDED:
            return
        world.cloud.move(latest[1], state)
        if event:
            deliver(world, latest[1], latest[0])

    return step


def event() -> Step:
    """The platform reports the newest native job's state as it is (after a stop request)."""

    def step(world: World) -> None:
        latest = world.cloud.latest(world.job_id or "")
        if latest is not None:
            deliver(world, latest[1], latest[0])

    return step


def preempt() -> Step:
    def step(world: World) -> None:
        latest = world.cloud.latest(world.job_id or "")
        if latest is None or world.cloud.state(latest[1]) in ENDED:
            return
        world.cloud.preempt(latest[1])
        deliver(world, latest[1], latest[0], preempted=True)

    return step


def cancel() -> Step:
    def step(world: World) -> None:
        if world.job_id is not None:
            http(world, lambda: world.service.cancel(ACCOUNT, world.job_id or ""))

    return step


def later(**delta: float) -> Step:
    def step(world: World) -> None:
        world.clock.advance(**delta)

    return step


def sweep() -> Step:
    return sweep_until_done


# ---- a run --------------------------------------------------------------------------------------


def play(world: World, steps: list[Step]) -> None:
    """The scenario, then recovery: no more faults, the platform finishes the stops it was asked
    for, the clock past ``submit_grace`` and ``stale_after``, one sweep, and each submission that
    was not refused sent once more with its key."""
    for step in steps:
        world.clock.advance(seconds=1)  # event times strictly increase
        step(world)
    world.scenario_calls = len(world.trace.calls)
    world.trace.armed = False
    world.cloud.settle()
    world.clock.advance(seconds=(SUBMIT_GRACE + STALE_AFTER).total_seconds() + 1)
    sweep_until_done(world)
    for key, spec in world.specs.items():
        if key in world.refused_keys:
            continue  # a 4xx made nothing; sending it again is a new submission
        replay = world.service.submit(ACCOUNT, spec, idempotency_key=key)
        world.answers[key].append(replay[0].id if not replay[1] else f"a new job {replay[0].id}")
