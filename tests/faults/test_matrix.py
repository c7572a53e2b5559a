"""Every scenario, with one fault at each port call it makes, of each kind that call can suffer,
through the real store adapters: SQLite (store and backend faults, with a platform whose job names
Train chooses and one that names them itself) and DynamoDB in moto (store faults). After the
faults stop and the sweeper runs, ``invariants.problems`` must find nothing in any run.

``docs/faults.md`` describes the fault model and the matrix."""

from __future__ import annotations

import pytest

from core.stores.dynamodb import DynamoDBJobStore
from tests.faults.cloud import AssignedIdCloud, FakeCloud
from tests.faults.faulty import BACKEND_KINDS, STORE_READS, STORE_WRITES, Call, kinds_for
from tests.faults.matrix import SCENARIOS, fake_cloud, local_worlds, matrix, play_one, report, sqlite_worlds
from tests.servers import new_dynamodb_store

CLOUDS = {"names-by-train": FakeCloud, "names-by-the-platform": AssignedIdCloud}
MIN_FAULTED_RUNS = 15  # per scenario and world: fewer means the scenario stopped making calls
MIN_TOTAL_SQLITE = 700  # faulted runs of the SQLite matrices together


@pytest.mark.parametrize("cloud", list(CLOUDS))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_fault_is_recovered_on_sqlite(scenario: str, cloud: str) -> None:
    with sqlite_worlds(fake_cloud(CLOUDS[cloud])) as worlds:
        runs = matrix(worlds, SCENARIOS[scenario])
    assert report(f"sqlite, {cloud}: {scenario}", runs) == []
    assert len(runs) - 1 >= MIN_FAULTED_RUNS


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_store_fault_is_recovered_on_dynamodb(scenario: str, moto_endpoint: str) -> None:
    """A new table in the session's moto server for each run; store faults only (the backend's are
    the SQLite matrix's, and do not depend on the store)."""

    def store() -> DynamoDBJobStore:
        return new_dynamodb_store()

    runs = matrix(local_worlds(store), SCENARIOS[scenario], ports=("store",))
    assert report(f"dynamodb: {scenario}", runs) == []
    assert len(runs) - 1 >= MIN_FAULTED_RUNS // 2


def test_the_matrix_reaches_every_port_call_and_fault_kind() -> None:
    """The clean runs alone: which (call, kind) pairs the matrices inject, and how many runs."""
    reached: set[tuple[str, str, str]] = set()
    total = 0
    for kind in CLOUDS.values():
        with sqlite_worlds(fake_cloud(kind)) as worlds:
            for steps in SCENARIOS.values():
                clean = play_one(worlds, steps, None)
                assert clean.problems == []
                for call in clean.calls:
                    total += len(kinds_for(call))
                    reached |= {(call.port, call.method, k) for k in kinds_for(call)}
    every = {("store", m, k) for m in STORE_READS + STORE_WRITES for k in kinds_for(Call("store", m, 1))}
    every |= {("backend", m, k) for m, kinds in BACKEND_KINDS.items() for k in kinds}
    assert every - reached == set()
    assert total >= MIN_TOTAL_SQLITE

