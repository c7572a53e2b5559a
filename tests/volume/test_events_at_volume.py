"""Events at volume: 500 SageMaker jobs x 20 EventBridge events = 10 000 native updates, each
delivered 3 times in a seeded shuffle (30 000 deliveries), through the real event handler
``functions.aws.sagemaker_events.handler`` over the real wiring: SQLite, and DynamoDB in moto.

Every job must end exactly where its latest event puts it (status, native status, native time,
reason), no stored version of any job may move its status backwards, and every delivery must be
accounted for once (applied, or counted in ``ignored_updates``).

DynamoDB: moto serves one request at a time (see tests/servers.py) and spends ~10-15 ms of CPU
per delivery on this 2-core machine (two GetItem for the native-id lookup, one UpdateItem whose
expressions moto parses in Python), so 30 000 deliveries take about 6-7 minutes. ``make test``
runs the DynamoDB variant at 50 jobs (3 000 deliveries); ``TRAIN_VOLUME_FULL=1`` runs it at the
full 500 jobs instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.backends.sagemaker_map import from_sagemaker_event
from core.lifecycle import Status
from core.stores.sqlite import SQLiteJobStore
from tests.functions.conftest import Deployment
from tests.volume.stream import (
    EVENTS_PER_JOB,
    RESULTS,
    deliver_all,
    deliveries,
    plan,
    problems,
    read_back,
    submit_jobs,
    wiring_for,
)

JOBS, COPIES, SEED = 500, 3, 20260101
DYNAMODB_JOBS_IN_MAKE_TEST = 50
FULL = os.environ.get("TRAIN_VOLUME_FULL") == "1"


@pytest.fixture
def db_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory in memory when the machine has one: on disk every SQLite commit waits for an
    fsync of the WAL, which doubles the run time and is not what this test is about."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm, prefix="train-volume-") as path:
            yield Path(path)
    else:
        yield tmp_path


def run(deployment: Deployment, store_url: str, jobs: int, *, threads: int, read_store: object) -> None:
    wiring, counting = wiring_for(store_url)
    submitted = submit_jobs(wiring.service, jobs)
    plans = [plan(job_id, name, index) for index, (job_id, name) in enumerate(submitted)]
    stream = deliveries(plans, copies=COPIES, seed=SEED)
    assert len(stream) == jobs * EVENTS_PER_JOB * COPIES
    counting.reset()

    delivered = deliver_all(stream, threads=threads)

    stored = read_back(read_store, plans)
    assert problems(plans, stored, delivered, counting, copies=COPIES) == []
    assert delivered.count == len(stream)
    assert {job.status for job in stored.values()} == {
        Status.COMPLETED, Status.FAILED, Status.CANCELED, Status.EXPIRED,
    }
    assert read_store.list_active(limit=100) == ([], None)  # type: ignore[attr-defined]
    accepted = counting.writes - counting.conflicts
    assert accepted <= len(stream), "a delivery wrote more than once"
    # The events only change our records: nothing is created or stopped on SageMaker.
    assert len(deployment.sagemaker.calls("CreateTrainingJob")) == jobs
    assert deployment.sagemaker.calls("StopTrainingJob") == []
    RESULTS.append(
        f"{store_url.split(':')[0]}: {len(stream)} deliveries of {jobs * EVENTS_PER_JOB} updates for {jobs} jobs"
        f" in {delivered.seconds:.1f} s ({len(stream) / delivered.seconds:.0f}/s, {threads} thread(s));"
        f" store writes per delivery {counting.writes / len(stream):.3f} ({counting.conflicts} refused),"
        f" reads per delivery {counting.reads / len(stream):.2f}, redeliveries {delivered.retried}"
    )


def test_sqlite_applies_30000_shuffled_deliveries_exactly(deployment: Deployment, db_dir: Path) -> None:
    path = db_dir / "train.db"
    run(deployment, f"sqlite:///{path}", JOBS, threads=1, read_store=SQLiteJobStore(path))


@pytest.mark.timeout(1200)
def test_dynamodb_applies_shuffled_concurrent_deliveries_exactly(deployment: Deployment) -> None:
    # Four deliveries at a time, as concurrent Lambda invocations would: races end in refused
    # conditional writes that the service retries, never in a lost or a backward update.
    jobs = JOBS if FULL else DYNAMODB_JOBS_IN_MAKE_TEST
    run(deployment, f"dynamodb://{deployment.table}", jobs, threads=4, read_store=deployment.store)


def test_the_checks_catch_a_consumer_that_lets_the_last_delivery_win(deployment: Deployment, db_dir: Path) -> None:
    """The checks above, against a consumer without the lifecycle's ordering rules."""
    wiring, counting = wiring_for(f"sqlite:///{db_dir / 'naive.db'}")
    plans = [plan(job_id, name, i) for i, (job_id, name) in enumerate(submit_jobs(wiring.service, 8))]

    def last_wins(event: dict[str, Any], context: Any) -> dict[str, str]:
        parsed = from_sagemaker_event(event, wiring.settings.job_prefix)
        assert parsed is not None
        job = counting.find_by_native_id("sagemaker", parsed[0])
        assert job is not None and parsed[1].status is not None
        changed = job.model_copy(update={"status": parsed[1].status, "native_status": parsed[1].native_status,
                                         "native_time": parsed[1].event_time})
        counting.update(changed, expected_version=job.version, expected_status=job.status)
        return {"outcome": "TRANSITION"}

    delivered = deliver_all(deliveries(plans, copies=COPIES, seed=SEED), handler=last_wins)
    found = problems(plans, read_back(counting.inner, plans), delivered, counting, copies=COPIES)

    assert any(" went COMPLETED -> " in line or " went IN_PROGRESS -> PENDING" in line for line in found)
    assert any(": final " in line for line in found)
