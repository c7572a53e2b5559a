"""A create whose answer was lost may still have made the native job: a job with no recorded
native job is not a job with no native job. Found by the fault matrix (a lost response or a lost
record write, then a cancel or an expiry left a native job running for an ended job); each test
here failed before the fix in ``core/service.py``. The interleavings are forced through hooks in
the cloud and the store, so each runs the same way every time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.errors import UnavailableError
from core.lifecycle import Status
from core.model import JobRecord, JobSpec, Submission
from core.service import TrainService
from core.stores.sqlite import SQLiteJobStore
from tests.fakes import FakeClock
from tests.faults.cloud import RUNNING, STOPPED, SUCCEEDED, AssignedIdCloud, FakeCloud

ACCOUNT = "acct"


class HookedCloud(FakeCloud):
    """Runs ``before_create`` inside the next submit, before the native job is made."""

    before_create: Callable[[], None] | None = None

    def submit(self, job: JobRecord) -> Submission:
        hook, self.before_create = self.before_create, None
        if hook is not None:
            hook()
        return super().submit(job)


class HookedStore(SQLiteJobStore):
    """Runs ``before_update`` before the next conditional write, as a concurrent writer would."""

    before_update: Callable[[], None] | None = None

    def update(self, job: JobRecord, *, expected_version: int, expected_status: Status) -> JobRecord:
        hook, self.before_update = self.before_update, None
        if hook is not None:
            hook()
        return super().update(job, expected_version=expected_version, expected_status=expected_status)


def world(tmp_path: Path) -> tuple[TrainService, HookedStore, HookedCloud, FakeClock]:
    clock = FakeClock()
    store, cloud = HookedStore(tmp_path / "train.db"), HookedCloud(clock)
    service = TrainService(store, {"local": cloud}, clock=clock, submit_grace=timedelta(seconds=60))
    return service, store, cloud, clock


def spec(**extra: Any) -> JobSpec:
    return JobSpec.model_validate({"name": "mnist", "backend": "local", "command": ["python", "t.py"], **extra})


def lose_the_next_create(cloud: FakeCloud) -> None:
    cloud.fail_next_submit, cloud.lose_response = UnavailableError("the answer was lost"), True


def test_cancel_stops_the_native_job_a_lost_create_made(tmp_path: Path) -> None:
    service, _, cloud, _ = world(tmp_path)
    lose_the_next_create(cloud)
    job, _ = service.submit(ACCOUNT, spec())
    assert not job.cloud_job_identifier and cloud.native == {job.native_id: "Queued"}

    canceled = service.cancel(ACCOUNT, job.id)

    assert canceled.status == Status.CANCELED
    assert cloud.native == {job.native_id: STOPPED}


def test_cancel_of_a_job_running_unrecorded_stops_its_native_job(tmp_path: Path) -> None:
    service, _, cloud, _ = world(tmp_path)
    lose_the_next_create(cloud)
    job, _ = service.submit(ACCOUNT, spec())
    native_id = job.native_id or ""
    cloud.move(native_id, RUNNING)
    service.apply_native_update("local", native_id, cloud.update(native_id, 1))
    assert service.get(ACCOUNT, job.id).status == Status.IN_PROGRESS

    service.cancel(ACCOUNT, job.id)
    assert cloud.native == {native_id: STOPPED}
    service.apply_native_update("local", native_id, cloud.update(native_id, 1))

    assert service.get(ACCOUNT, job.id).status == Status.CANCELED


def test_a_cancel_that_loses_to_completion_leaves_an_unrecorded_job_completed(tmp_path: Path) -> None:
    """Events showed the native job running, so it is not "canceled before it started": the
    cancel asks it to stop and the job ends as the native job did."""
    service, _, cloud, _ = world(tmp_path)
    lose_the_next_create(cloud)
    job, _ = service.submit(ACCOUNT, spec())
    native_id = job.native_id or ""
    cloud.move(native_id, RUNNING)
    service.apply_native_update("local", native_id, cloud.update(native_id, 1))
    cloud.move(native_id, SUCCEEDED)  # its event is still on the way

    service.cancel(ACCOUNT, job.id)
    service.apply_native_update("local", native_id, cloud.update(native_id, 1))

    assert service.get(ACCOUNT, job.id).status == Status.COMPLETED
    assert cloud.native == {native_id: SUCCEEDED}


def test_the_sweeper_brings_a_submission_it_finishes_up_to_date(tmp_path: Path) -> None:
    """The platform names native jobs itself and the create's answer was lost: the events of the
    job find nothing. When the sweeper finishes the submission it finds the native job, which has
    already completed; the job must not wait another ``stale_after`` to say so."""
    clock = FakeClock()
    cloud = AssignedIdCloud(clock)
    service = TrainService(SQLiteJobStore(tmp_path / "train.db"), {"local": cloud}, clock=clock)
    lose_the_next_create(cloud)
    job, _ = service.submit(ACCOUNT, spec())
    [native_id] = cloud.native
    cloud.move(native_id, SUCCEEDED)
    assert service.apply_native_update("local", native_id, cloud.update(native_id, 1)) is None  # dropped
    clock.advance(minutes=2)

    assert service.sweep().submitted == 1

    done = service.get(ACCOUNT, job.id)
    assert done.status == Status.COMPLETED and done.cloud_job_identifier == {"job_name": native_id}
    assert cloud.creates == 1


def test_the_sweeper_stops_what_a_lost_create_made_before_expiring_the_job(tmp_path: Path) -> None:
    service, _, cloud, clock = world(tmp_path)
    lose_the_next_create(cloud)
    job, _ = service.submit(ACCOUNT, spec(max_pending="5m"))
    clock.advance(minutes=6)

    assert service.sweep().expired == 1

    assert service.get(ACCOUNT, job.id).status == Status.EXPIRED
    assert cloud.native == {job.native_id: STOPPED}


def test_a_create_that_lands_after_the_job_expired_is_stopped(tmp_path: Path) -> None:
    """A sweeper finishes a deferred submission; while its create is on the way, another sweeper
    expires the job (max_pending). The create then makes the native job: the launch that records
    it must stop it."""
    service, _, cloud, clock = world(tmp_path)
    cloud.fail_next_submit, cloud.lose_response = UnavailableError("throttled"), False
    job, _ = service.submit(ACCOUNT, spec(max_pending="5m"))
    assert cloud.native == {}
    clock.advance(minutes=2)

    def expire_meanwhile() -> None:
        clock.advance(minutes=4)
        other = TrainService(service.store, service.backends, clock=clock)
        assert other.sweep().expired == 1

    cloud.before_create = expire_meanwhile
    assert service.sweep().submitted == 1

    assert service.get(ACCOUNT, job.id).status == Status.EXPIRED
    assert cloud.native == {job.native_id: STOPPED}


def test_cancel_racing_the_sweepers_create_stops_the_native_job(tmp_path: Path) -> None:
    """Cancel reads the job with no native job; before its write the sweeper creates and records
    one. The cancel must not end the job as if there were none."""
    service, store, cloud, clock = world(tmp_path)
    cloud.fail_next_submit, cloud.lose_response = UnavailableError("throttled"), False
    job, _ = service.submit(ACCOUNT, spec())
    assert cloud.native == {}
    clock.advance(minutes=2)

    def sweeper_finishes_the_submission() -> None:
        assert service.sweep().submitted == 1

    store.before_update = sweeper_finishes_the_submission
    service.cancel(ACCOUNT, job.id)
    event = cloud.update(job.native_id or "", 1)
    service.apply_native_update("local", job.native_id or "", event)

    assert service.get(ACCOUNT, job.id).status == Status.CANCELED
    assert cloud.native == {job.native_id: STOPPED}
