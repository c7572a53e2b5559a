"""The JobStore contract: every store adapter passes these, run over each entry of STORE_FACTORIES."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import IdempotencyMismatchError, InvalidRequestError, VersionConflictError
from core.lifecycle import Status
from core.model import Delivery, JobQuery, JobRecord
from core.ports import IdempotencyClaim, JobStore
from core.stores.cursor import encode_cursor
from tests.contract.conftest import T0, make_job


def _create(store: JobStore, *jobs: JobRecord) -> list[JobRecord]:
    return [store.create(job)[0] for job in jobs]


def _all_pages(store: JobStore, account_id: str, **query: Any) -> tuple[list[str], int]:
    """Every job id the account's listing yields, following cursors, and the number of pages."""
    ids: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page, cursor = store.list(account_id, JobQuery(cursor=cursor, **query))
        pages += 1
        ids += [job.id for job in page]
        if cursor is None:
            return ids, pages
        assert pages < 100, "cursor never ends"


def _all_active(store: JobStore, limit: int) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page, cursor = store.list_active(limit=limit, cursor=cursor)
        assert len(page) <= limit
        ids += [job.id for job in page]
        if cursor is None:
            return ids


def _advance(store: JobStore, job: JobRecord, **changes: Any) -> JobRecord:
    return store.update(job.model_copy(update=changes), expected_version=job.version, expected_status=job.status)


# ---- create and get ---------------------------------------------------------------------------


def test_create_then_get_returns_the_same_record(job_store: JobStore) -> None:
    job = make_job(project="vision", native_id="run-1")
    stored, created = job_store.create(job)
    assert created and stored == job
    assert job_store.get(job.account_id, job.id) == job


def test_get_from_another_account_or_unknown_id_is_none(job_store: JobStore) -> None:
    job = _create(job_store, make_job("acct-a"))[0]
    assert job_store.get("acct-b", job.id) is None
    assert job_store.get("acct-a", make_job().id) is None


def test_create_with_an_existing_id_conflicts_and_keeps_the_first(job_store: JobStore) -> None:
    first = _create(job_store, make_job(name="first"))[0]
    with pytest.raises(VersionConflictError):
        job_store.create(first.model_copy(update={"name": "second"}))
    stored = job_store.get(first.account_id, first.id)
    assert stored is not None and stored.name == "first"


# ---- idempotency ------------------------------------------------------------------------------


def test_same_idempotency_key_and_hash_returns_the_first_job(job_store: JobStore) -> None:
    claim = IdempotencyClaim("key-1", "hash-1")
    first, created = job_store.create(make_job(), claim)
    again, created_again = job_store.create(make_job(), claim)
    assert created and not created_again
    assert again == first
    assert [j.id for j in job_store.list("acct-a", JobQuery())[0]] == [first.id]


def test_same_idempotency_key_with_another_hash_is_refused_and_leaves_nothing(job_store: JobStore) -> None:
    first = job_store.create(make_job(), IdempotencyClaim("key-1", "hash-1"))[0]
    second = make_job()
    with pytest.raises(IdempotencyMismatchError):
        job_store.create(second, IdempotencyClaim("key-1", "hash-2"))
    assert job_store.get("acct-a", second.id) is None
    assert [j.id for j in job_store.list("acct-a", JobQuery())[0]] == [first.id]
    # the original claim still holds
    assert job_store.create(make_job(), IdempotencyClaim("key-1", "hash-1")) == (first, False)


def test_idempotency_keys_are_scoped_to_the_account(job_store: JobStore) -> None:
    claim = IdempotencyClaim("key-1", "hash-1")
    a, created_a = job_store.create(make_job("acct-a"), claim)
    b, created_b = job_store.create(make_job("acct-b"), IdempotencyClaim("key-1", "other-hash"))
    assert created_a and created_b and a.id != b.id
    assert job_store.get("acct-b", b.id) == b


def test_creates_without_a_key_are_independent(job_store: JobStore) -> None:
    jobs = _create(job_store, make_job(), make_job())
    assert {j.id for j in job_store.list("acct-a", JobQuery())[0]} == {j.id for j in jobs}


# ---- conditional update -----------------------------------------------------------------------


def test_update_bumps_the_version_and_stores_the_record(job_store: JobStore) -> None:
    job = _create(job_store, make_job())[0]
    running = _advance(job_store, job, status=Status.IN_PROGRESS, native_status="Running")
    assert running.version == job.version + 1
    assert job_store.get(job.account_id, job.id) == running
    done = _advance(job_store, running, status=Status.COMPLETED)
    assert done.version == job.version + 2
    stored = job_store.get(job.account_id, job.id)
    assert stored is not None and stored.status == Status.COMPLETED and stored.native_status == "Running"


@pytest.mark.parametrize(
    "conflict",
    [
        {"expected_version": 1, "expected_status": Status.IN_PROGRESS},  # stale version
        {"expected_version": 2, "expected_status": Status.PENDING},  # wrong status
    ],
    ids=["stale-version", "wrong-status"],
)
def test_update_with_stale_expectations_conflicts_and_changes_nothing(
    job_store: JobStore, conflict: dict[str, Any]
) -> None:
    job = _create(job_store, make_job())[0]
    current = _advance(job_store, job, status=Status.IN_PROGRESS)
    with pytest.raises(VersionConflictError):
        job_store.update(current.model_copy(update={"status": Status.FAILED}), **conflict)
    assert job_store.get(job.account_id, job.id) == current


def test_update_through_another_account_conflicts_and_changes_nothing(job_store: JobStore) -> None:
    job = _create(job_store, make_job("acct-a"))[0]
    forged = job.model_copy(update={"account_id": "acct-b", "status": Status.CANCELED})
    with pytest.raises(VersionConflictError):
        job_store.update(forged, expected_version=job.version, expected_status=job.status)
    assert job_store.get("acct-a", job.id) == job
    assert job_store.get("acct-b", job.id) is None


def test_update_of_an_unknown_job_conflicts(job_store: JobStore) -> None:
    with pytest.raises(VersionConflictError):
        job_store.update(make_job(), expected_version=1, expected_status=Status.PENDING)


def test_only_one_of_two_updates_from_the_same_read_wins(job_store: JobStore) -> None:
    job = _create(job_store, make_job())[0]
    _advance(job_store, job, status=Status.CANCELED)
    with pytest.raises(VersionConflictError):
        _advance(job_store, job, status=Status.IN_PROGRESS)
    stored = job_store.get(job.account_id, job.id)
    assert stored is not None and stored.status == Status.CANCELED and stored.version == job.version + 1


# ---- list -------------------------------------------------------------------------------------


def test_list_is_newest_first(job_store: JobStore) -> None:
    jobs = _create(job_store, *(make_job(seq=i) for i in range(5)))
    page, cursor = job_store.list("acct-a", JobQuery())
    assert [j.id for j in page] == [j.id for j in reversed(jobs)]
    assert cursor is None


def test_paging_yields_every_job_once_in_order(job_store: JobStore) -> None:
    jobs = _create(job_store, *(make_job(seq=i) for i in range(25)))
    ids, pages = _all_pages(job_store, "acct-a", limit=10)
    assert ids == [j.id for j in reversed(jobs)]
    assert pages == 3


def test_a_full_last_page_has_no_next_cursor(job_store: JobStore) -> None:
    _create(job_store, *(make_job(seq=i) for i in range(20)))
    first, cursor = job_store.list("acct-a", JobQuery(limit=10))
    second, last = job_store.list("acct-a", JobQuery(limit=10, cursor=cursor))
    assert len(first) == len(second) == 10 and cursor is not None and last is None


def test_list_of_an_empty_account(job_store: JobStore) -> None:
    _create(job_store, make_job("acct-a"))
    assert job_store.list("acct-b", JobQuery()) == ([], None)


def test_list_never_shows_another_accounts_jobs(job_store: JobStore) -> None:
    mine = _create(job_store, *(make_job("acct-a", seq=i) for i in range(0, 12, 2)))
    _create(job_store, *(make_job("acct-b", seq=i) for i in range(1, 12, 2)))
    ids, _ = _all_pages(job_store, "acct-a", limit=4)
    assert ids == [j.id for j in reversed(mine)]


@pytest.fixture
def mixed(job_store: JobStore) -> list[JobRecord]:
    """24 jobs cycling through statuses, backends, projects and names, oldest first."""
    statuses = [Status.PENDING, Status.IN_PROGRESS, Status.COMPLETED, Status.FAILED]
    backends = ["local", "sagemaker", "vertex-ai"]
    return _create(
        job_store,
        *(
            make_job(
                seq=i,
                status=statuses[i % 4],
                backend=backends[i % 3],
                project=("vision", "speech")[i % 2],
                name=("resnet", "whisper", "bert")[i % 3],
            )
            for i in range(24)
        ),
    )


@pytest.mark.parametrize(
    "query",
    [
        {"status": [Status.COMPLETED]},
        {"status": [Status.PENDING, Status.FAILED]},
        {"backend": "sagemaker"},
        {"project": "speech"},
        {"name": "bert"},
        {"status": [Status.IN_PROGRESS, Status.COMPLETED], "project": "vision"},
        {"backend": "local", "name": "resnet", "project": "speech"},
        {"backend": "azure-ml"},
    ],
)
@pytest.mark.parametrize("limit", [100, 3])
def test_filters_alone_and_combined_with_paging(
    job_store: JobStore, mixed: list[JobRecord], query: dict[str, Any], limit: int
) -> None:
    def matches(job: JobRecord) -> bool:
        return ("status" not in query or job.status in query["status"]) and all(
            getattr(job, f) == query[f] for f in ("backend", "project", "name") if f in query
        )

    expected = [j.id for j in reversed(mixed) if matches(j)]
    ids, _ = _all_pages(job_store, "acct-a", limit=limit, **query)
    assert ids == expected


def test_an_empty_status_list_does_not_filter(job_store: JobStore, mixed: list[JobRecord]) -> None:
    ids, _ = _all_pages(job_store, "acct-a", status=[], limit=100)
    assert len(ids) == len(mixed)


@pytest.mark.parametrize(
    "cursor",
    ["not-a-cursor!", "eyJ4IjoxfQ", encode_cursor({"id": "x", "extra": 1}), encode_cursor({"at": "x"})],
)
def test_a_bad_cursor_is_a_bad_request(job_store: JobStore, cursor: str) -> None:
    _create(job_store, make_job())
    with pytest.raises(InvalidRequestError):
        job_store.list("acct-a", JobQuery(cursor=cursor))
    with pytest.raises(InvalidRequestError):
        job_store.list_active(cursor=cursor)


# ---- active index -----------------------------------------------------------------------------


def test_list_active_holds_only_non_terminal_jobs_across_accounts(job_store: JobStore, mixed: list[JobRecord]) -> None:
    other = _create(job_store, make_job("acct-b", seq=100), make_job("acct-b", seq=101, status=Status.CANCELED))
    expected = sorted([j.id for j in mixed if j.status in (Status.PENDING, Status.IN_PROGRESS)] + [other[0].id])
    assert _all_active(job_store, limit=100) == expected
    assert _all_active(job_store, limit=4) == expected
    assert _all_active(job_store, limit=len(expected)) == expected


def test_a_job_leaves_the_active_index_when_it_ends(job_store: JobStore) -> None:
    job = _create(job_store, make_job())[0]
    assert _all_active(job_store, limit=10) == [job.id]
    running = _advance(job_store, job, status=Status.IN_PROGRESS)
    assert _all_active(job_store, limit=10) == [job.id]
    _advance(job_store, running, status=Status.EXPIRED)
    assert job_store.list_active() == ([], None)


def test_list_active_returns_current_records(job_store: JobStore) -> None:
    job = _create(job_store, make_job())[0]
    running = _advance(job_store, job, status=Status.IN_PROGRESS, native_status="Running")
    page, _ = job_store.list_active()
    assert page == [running]


def _delivery(job: JobRecord, status: Status = Status.COMPLETED) -> Delivery:
    return Delivery(id=f"dlv_{job.id}_{status.value}", status=status, previous_status=Status.IN_PROGRESS,
                    attempt=job.attempt, occurred_at=T0, next_at=T0)


def test_an_ended_job_with_webhooks_to_deliver_stays_in_the_active_index(job_store: JobStore) -> None:
    job = _create(job_store, make_job(status=Status.IN_PROGRESS))[0]
    ended = _advance(job_store, job, status=Status.COMPLETED, outbox=[_delivery(job)])
    page, _ = job_store.list_active()
    assert page == [ended] and page[0].outbox == ended.outbox
    _advance(job_store, ended, outbox=[])
    assert job_store.list_active() == ([], None)


def test_a_job_created_ended_with_an_outbox_is_active_until_it_empties(job_store: JobStore) -> None:
    noisy = make_job(seq=2, status=Status.FAILED)
    noisy.outbox = [_delivery(noisy, Status.IN_PROGRESS), _delivery(noisy, Status.FAILED)]
    quiet, loud = _create(job_store, make_job(seq=1, status=Status.FAILED), noisy)
    assert _all_active(job_store, limit=1) == [loud.id]
    fewer = _advance(job_store, loud, outbox=loud.outbox[1:])
    assert _all_active(job_store, limit=10) == [loud.id]
    _advance(job_store, fewer, outbox=[])
    assert job_store.list_active() == ([], None)
    assert quiet.status == Status.FAILED


def test_an_active_job_with_an_outbox_is_listed_once(job_store: JobStore) -> None:
    job = _create(job_store, make_job())[0]
    running = _advance(job_store, job, status=Status.IN_PROGRESS, outbox=[_delivery(job, Status.IN_PROGRESS)])
    assert _all_active(job_store, limit=10) == [running.id]


# ---- native-id lookup -------------------------------------------------------------------------


def test_a_native_id_belongs_to_one_job(job_store: JobStore) -> None:
    first = job_store.create(make_job(backend="sagemaker", native_id="train-1"))[0]
    with pytest.raises(VersionConflictError):
        job_store.create(make_job(backend="sagemaker", native_id="train-1"))
    other = job_store.create(make_job(backend="sagemaker"))[0]
    with pytest.raises(VersionConflictError):
        _advance(job_store, other, native_id="train-1")
    assert job_store.get(other.account_id, other.id) == other
    assert job_store.find_by_native_id("sagemaker", "train-1") == first


def test_find_by_native_id_follows_updates(job_store: JobStore) -> None:
    job = _create(job_store, make_job(backend="sagemaker"))[0]
    assert job_store.find_by_native_id("sagemaker", "train-1") is None
    first = _advance(job_store, job, native_id="train-1")
    assert job_store.find_by_native_id("sagemaker", "train-1") == first
    retried = _advance(job_store, first, native_id="train-1-attempt-2", attempt=2)
    assert job_store.find_by_native_id("sagemaker", "train-1") is None
    assert job_store.find_by_native_id("sagemaker", "train-1-attempt-2") == retried


def test_find_by_native_id_is_scoped_by_backend(job_store: JobStore) -> None:
    job = _create(job_store, make_job(backend="vertex-ai", native_id="12345"))[0]
    assert job_store.find_by_native_id("vertex-ai", "12345") == job
    assert job_store.find_by_native_id("azure-ml", "12345") is None


def test_find_by_native_id_sees_terminal_jobs(job_store: JobStore) -> None:
    job = _create(job_store, make_job(native_id="run-9"))[0]
    done = _advance(job_store, job, status=Status.FAILED, status_reason="exit code 1")
    assert job_store.find_by_native_id("local", "run-9") == done
