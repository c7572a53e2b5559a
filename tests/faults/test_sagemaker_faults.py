"""The scenarios against the real SageMakerBackend and boto3 client, with the faults on the wire
of our SageMaker fake: throttling, 5xx, a refused create, and operations done whose answer was lost
(the connection closed) or never came in time (a read timeout). Store: SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.lifecycle import Status
from core.model import JobSpec
from core.service import TrainService
from core.stores.sqlite import SQLiteJobStore
from tests.fakes import FakeClock
from tests.faults.faulty import Call, Fault, Trace
from tests.faults.matrix import SCENARIOS, WorldFactory, matrix, report, sqlite_worlds
from tests.faults.sagemaker_cloud import WIRE_KINDS, LossyFakeSageMaker, sagemaker_backend, sagemaker_cloud
from tests.functions.shapes import spec

# SageMaker managed spot resumes an interrupted job by itself: its preemption is tests/functions'.
WIRE_SCENARIOS = {name: steps for name, steps in SCENARIOS.items() if "preemption" not in name}


@pytest.fixture(scope="module")
def worlds(lossy_sagemaker: LossyFakeSageMaker) -> Iterator[WorldFactory]:
    backend = sagemaker_backend(lossy_sagemaker)
    with sqlite_worlds(sagemaker_cloud(lossy_sagemaker, backend), spec(), lambda: datetime.now(UTC)) as made:
        yield made


def wire_kinds(call: Call) -> tuple[str, ...]:
    return WIRE_KINDS.get(call.method, ())


@pytest.mark.parametrize("scenario", list(WIRE_SCENARIOS))
def test_every_wire_fault_is_recovered(scenario: str, worlds: WorldFactory) -> None:
    runs = matrix(worlds, WIRE_SCENARIOS[scenario], ports=("backend",), kinds=wire_kinds)
    assert report(f"sagemaker wire: {scenario}", runs) == []
    assert len(runs) - 1 >= 5


def test_an_sdk_retry_of_a_lost_create_finds_the_job_it_made(lossy_sagemaker: LossyFakeSageMaker,
                                                              tmp_path: Path) -> None:
    """With botocore's own retries on, the create whose answer was lost is sent again; SageMaker
    says ResourceInUse and the backend returns the job the first one made: recorded at once."""
    lossy_sagemaker.reset(Trace(Fault(Call("backend", "CreateTrainingJob", 1), "lost-response")))
    backend = sagemaker_backend(lossy_sagemaker, attempts=3)
    service = TrainService(SQLiteJobStore(tmp_path / "train.db"), {"sagemaker": backend},
                           clock=FakeClock(datetime.now(UTC)))

    job, created = service.submit("acct", JobSpec.model_validate(spec()), idempotency_key="k")

    name = f"train-{job.id}-1"
    assert created and job.status == Status.PENDING
    assert job.cloud_job_identifier["job_name"] == name and job.native_status == "InProgress/Starting"
    assert lossy_sagemaker.accepted == {name: 1}
    assert len(lossy_sagemaker.calls("CreateTrainingJob")) == 2
