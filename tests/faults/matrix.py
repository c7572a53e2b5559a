"""The scenario matrix: each scenario is played once without faults, which records the port calls
it makes; then once more from scratch for each recorded call and each fault kind that call can
suffer (``faulty.kinds_for``), with that one fault injected. Every run ends with recovery and the
checks of ``invariants.problems``."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from core.stores.sqlite import SQLiteJobStore
from tests.fakes import FakeClock
from tests.faults.cloud import FAILED, RUNNING, SUCCEEDED, Cloud, FakeCloud
from tests.faults.faulty import Call, Fault, Port, Trace, kinds_for
from tests.faults.invariants import problems
from tests.faults.world import (
    Step,
    World,
    build,
    cancel,
    event,
    later,
    native,
    play,
    preempt,
    submit,
    sweep,
)

LOCAL_SPEC: dict[str, Any] = {"name": "mnist", "backend": "local", "command": ["python", "train.py"]}

# Each scenario in the words of its callers; the faults go between (and into) every port call.
SCENARIOS: dict[str, list[Step]] = {
    "submit, run, complete": [submit(), native(RUNNING), native(SUCCEEDED)],
    "submit, run, fail": [submit(), native(RUNNING), native(FAILED)],
    "events delivered twice": [submit(), native(RUNNING), event(), native(SUCCEEDED), event()],
    "cancel a pending job": [submit(), cancel(), event()],
    "cancel a running job": [submit(), native(RUNNING), cancel(), event()],
    "cancel loses to completion": [submit(), native(RUNNING), native(SUCCEEDED, event=False), cancel(), event()],
    "cancel a deferred submit": [submit(deferred=True), cancel(), later(seconds=61), sweep()],
    "resume from the project's checkpoints": [
        submit(checkpointing={"enabled": True}), native(RUNNING), native(SUCCEEDED),
        submit(load_checkpoint={"project": "default"}), native(RUNNING), native(SUCCEEDED),
    ],
    "preemption resubmits": [
        submit(retries={"on_preemption": 1}, checkpointing={"enabled": True}),
        native(RUNNING), preempt(), native(RUNNING), native(SUCCEEDED),
    ],
    "preemption with no retries left": [submit(), native(RUNNING), preempt()],
    "sweep reconciles a lost end": [
        submit(), native(RUNNING), native(SUCCEEDED, event=False), later(minutes=11), sweep(),
    ],
    "sweep reconciles a lost start": [
        submit(), native(RUNNING, event=False), later(minutes=11), sweep(), native(SUCCEEDED),
    ],
    "sweep finishes a deferred submit": [
        submit(deferred=True), later(seconds=61), sweep(), native(RUNNING), native(SUCCEEDED),
    ],
    "sweep expires a deferred submit": [submit(deferred=True, max_pending="5m"), later(minutes=6), sweep()],
    "sweep expires an overrun job": [submit(max_runtime="1h"), native(RUNNING), later(hours=2), sweep(), event()],
}

WorldFactory = Callable[[Trace], World]


@dataclass(frozen=True)
class Tally:
    label: str
    positions: int  # port calls of the clean run that faults were injected into
    faulted: int  # runs with one fault each
    failed: int  # runs (the clean one included) that did not recover


TALLIES: list[Tally] = []  # one per matrix run in this session, printed at its end


@dataclass
class Run:
    fault: Fault | None
    fired: bool
    problems: list[str]
    calls: list[Call]

    def lines(self) -> list[str]:
        where = str(self.fault) if self.fault else "no fault"
        if self.fault is not None and not self.fired:
            return [f"{where}: the fault never fired (the run went another way)"]
        return [f"{where}: {p}" for p in self.problems]


def play_one(factory: WorldFactory, steps: list[Step], fault: Fault | None) -> Run:
    world = factory(Trace(fault))
    try:
        play(world, steps)
        found = problems(world)
    except Exception as exc:  # a caller gave up, or a check could not read: a failed run
        found = [f"{type(exc).__name__}: {exc}"]
    finally:
        world.close()
    return Run(fault, world.trace.fired, found, world.trace.calls[: world.scenario_calls])


def matrix(
    factory: WorldFactory, steps: list[Step], *, ports: Iterable[Port] = ("store", "backend"),
    kinds: Callable[[Call], tuple[str, ...]] = kinds_for,
) -> list[Run]:
    """The clean run first, then one run per (recorded call on ``ports``, fault kind)."""
    clean = play_one(factory, steps, None)
    runs = [clean]
    for call in clean.calls:
        if call.port in ports:
            runs += [play_one(factory, steps, Fault(call, kind)) for kind in kinds(call)]
    return runs


def report(label: str, runs: list[Run]) -> list[str]:
    """The problem lines of every run; the matrix's tally is kept for the session's summary."""
    positions = len({run.fault.call for run in runs if run.fault is not None})
    failed = sum(1 for run in runs if run.lines())
    TALLIES.append(Tally(label, positions, len(runs) - 1, failed))
    return [line for run in runs for line in run.lines()]


# ---- worlds -------------------------------------------------------------------------------------


MakeCloud = Callable[[FakeClock, Trace], tuple[Cloud, Any]]  # the cloud, and the backend over it


def fake_cloud(kind: type[FakeCloud] = FakeCloud) -> MakeCloud:
    def make(clock: FakeClock, trace: Trace) -> tuple[Cloud, Any]:
        cloud = kind(clock)
        return cloud, cloud

    return make


@contextmanager
def sqlite_worlds(
    make: MakeCloud | None = None, spec: dict[str, Any] = LOCAL_SPEC, start: Callable[[], datetime] | None = None,
) -> Iterator[WorldFactory]:
    """Fresh worlds over a new SQLite file each, in memory when the machine has /dev/shm. Each
    world's clock starts at ``start()`` (a fixed day without it)."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() else None
    with tempfile.TemporaryDirectory(dir=base, prefix="train-faults-") as folder:

        def factory(trace: Trace) -> World:
            store = SQLiteJobStore(Path(folder) / f"{uuid.uuid4().hex}.db")
            clock = FakeClock(start() if start is not None else None)
            cloud, backend = (make or fake_cloud())(clock, trace)
            world = build(store, cloud, backend, clock, trace, spec)
            world.close = store.close
            return world

        yield factory


def local_worlds(store_factory: Callable[[], Any], spec: dict[str, Any] = LOCAL_SPEC) -> WorldFactory:
    """Fresh worlds over a new store from ``store_factory`` each (a new DynamoDB table)."""

    def factory(trace: Trace) -> World:
        clock = FakeClock()
        cloud = FakeCloud(clock)
        return build(store_factory(), cloud, cloud, clock, trace, spec)

    return factory
