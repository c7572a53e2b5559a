"""Webhooks in the service: each chosen transition puts a delivery in the job's outbox in the same
write, it is sent right after, retried with backoff by the sweeper, and given up after a number of
tries; signing and the local secret file."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from core import outbox
from core.bootstrap import build_notifier, local_webhook_secret
from core.config import Settings
from core.errors import DeliveryError, InvalidSpecError
from core.lifecycle import NativeUpdate, Status
from core.model import MAX_OUTBOX, JobRecord, JobSpec
from core.notifiers.webhook import sign, verify
from core.outbox import Backoff
from core.service import TrainService
from tests.fakes import FakeBackend, FakeClock, InMemoryJobStore

HOOK = "https://hooks.example.com/train"


class Crash(BaseException):
    """Stands for the process dying right after the transition was written."""


class RecordingNotifier:
    """A ``Notifier`` that keeps what it was asked to send and fails as told."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, object]]] = []
        self.failures: list[BaseException] = []

    def send(self, url: str, delivery_id: str, body: bytes) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((url, delivery_id, json.loads(body)))


def make() -> tuple[TrainService, InMemoryJobStore, FakeClock, RecordingNotifier]:
    store, clock, notifier = InMemoryJobStore(), FakeClock(), RecordingNotifier()
    service = TrainService(store, {"local": FakeBackend()}, clock=clock, notifier=notifier,
                           webhook_backoff=Backoff(base=timedelta(seconds=30), max_tries=4))
    return service, store, clock, notifier


def submit(service: TrainService, on: list[str] | None = None) -> JobRecord:
    notify: dict[str, object] = {"url": HOOK}
    if on is not None:
        notify["on"] = on
    spec = JobSpec.model_validate({"name": "mnist", "backend": "local", "command": ["python", "t.py"],
                                   "notify": notify})
    return service.submit("acct", spec)[0]


def native(service: TrainService, clock: FakeClock, job: JobRecord, state: str, status: Status) -> None:
    clock.advance(seconds=1)
    service.apply_native_update("local", f"fake-{job.id}-1", NativeUpdate(state, status, clock(), None, 1))


def test_each_chosen_transition_is_sent_once_right_after_its_write() -> None:
    service, store, clock, notifier = make()
    job = submit(service, on=["IN_PROGRESS", "COMPLETED"])
    native(service, clock, job, "Running", Status.IN_PROGRESS)
    native(service, clock, job, "Succeeded", Status.COMPLETED)

    assert [(body["previous_status"], body["status"]) for _, _, body in notifier.sent] == [
        ("PENDING", "IN_PROGRESS"), ("IN_PROGRESS", "COMPLETED")
    ]
    url, delivery_id, body = notifier.sent[-1]
    assert url == HOOK and body["id"] == delivery_id and delivery_id.startswith("dlv_")
    assert body == {"id": delivery_id, "type": "job.status_changed", "job_id": job.id, "account_id": "acct",
                    "status": "COMPLETED", "previous_status": "IN_PROGRESS", "status_reason": None, "attempt": 1,
                    "occurred_at": str(body["occurred_at"])}
    assert str(body["occurred_at"]).endswith("Z")
    done = service.get("acct", job.id)
    assert done.outbox == [] and store.list_active() == ([], None)
    assert sum("delivered" in (e.reason or "") for e in done.events) == 2


def test_the_default_is_completed_and_failed_and_a_skipped_state_is_still_reported() -> None:
    service, _, clock, notifier = make()
    job = submit(service)
    native(service, clock, job, "Succeeded", Status.COMPLETED)  # PENDING → IN_PROGRESS → COMPLETED in one write
    assert [(b["previous_status"], b["status"]) for _, _, b in notifier.sent] == [("IN_PROGRESS", "COMPLETED")]


def test_train_decided_transitions_notify_too() -> None:
    service, _, _, notifier = make()
    job = submit(service, on=["CANCELED"])
    service.cancel("acct", job.id)  # FakeBackend has made the native job: the backend must confirm
    service.apply_native_update("local", f"fake-{job.id}-1", NativeUpdate("Stopped", Status.CANCELED,
                                                                          service.clock(), None, 1))
    assert [b["status"] for _, _, b in notifier.sent] == ["CANCELED"]


def test_the_delivery_is_durable_with_the_transition_and_the_sweeper_sends_it() -> None:
    service, store, clock, notifier = make()
    job = submit(service)
    notifier.failures.append(Crash())
    with pytest.raises(Crash):
        native(service, clock, job, "Succeeded", Status.COMPLETED)

    ended = service.get("acct", job.id)
    assert ended.status == Status.COMPLETED and len(ended.outbox) == 1
    assert [j.id for j in store.list_active()[0]] == [job.id]  # ended, but its webhook is owed
    report = service.sweep()
    assert report.notified == 1 and report.submitted == report.reconciled == 0
    assert [d for _, d, _ in notifier.sent] == [ended.outbox[0].id]
    assert store.list_active() == ([], None)


def test_failures_wait_longer_each_time_and_keep_their_delivery_id() -> None:
    service, _, clock, notifier = make()
    job = submit(service)
    notifier.failures += [DeliveryError("hooks.example.com answered 500"), DeliveryError("timed out")]
    native(service, clock, job, "Succeeded", Status.COMPLETED)
    [waiting] = service.get("acct", job.id).outbox
    assert waiting.tries == 1 and waiting.next_at == clock() + timedelta(seconds=30)
    assert waiting.last_error == "hooks.example.com answered 500"

    clock.advance(seconds=29)
    assert service.sweep().notified == 0  # not due yet
    clock.advance(seconds=1)
    service.sweep()
    [waiting] = service.get("acct", job.id).outbox
    assert waiting.tries == 2 and waiting.next_at == clock() + timedelta(seconds=60)
    clock.advance(seconds=60)
    service.sweep()
    assert service.get("acct", job.id).outbox == []
    assert [d for _, d, _ in notifier.sent] == [waiting.id]


def test_a_delivery_is_given_up_after_its_tries_with_a_note() -> None:
    service, store, clock, notifier = make()
    job = submit(service)
    notifier.failures += [DeliveryError("answered 503")] * 10
    native(service, clock, job, "Succeeded", Status.COMPLETED)
    for _ in range(5):
        clock.advance(hours=1)
        service.sweep()
    done = service.get("acct", job.id)
    assert done.outbox == [] and store.list_active() == ([], None) and notifier.sent == []
    assert done.events[-1].kind == "note" and "given up after 4 tries: answered 503" in (done.events[-1].reason or "")


def test_the_outbox_is_capped() -> None:
    service, _, clock, _ = make()
    job = submit(service, on=["IN_PROGRESS"])
    record = service.get("acct", job.id)
    for _ in range(MAX_OUTBOX + 2):
        outbox.enqueue(record, [(Status.PENDING, Status.IN_PROGRESS)], clock())
    assert len(record.outbox) == MAX_OUTBOX
    assert sum("outbox full" in (e.reason or "") for e in record.events) == 2


def test_notify_needs_a_webhook_secret() -> None:
    service = TrainService(InMemoryJobStore(), {"local": FakeBackend()})
    with pytest.raises(InvalidSpecError) as caught:
        submit(service)
    assert caught.value.errors[0].field == "notify" and "TRAIN_WEBHOOK_SECRET" in caught.value.errors[0].message


def test_signatures_verify_and_refuse_tampering_and_old_timestamps() -> None:
    secret, body = b"s3cr3t", b'{"id":"dlv_1"}'
    header = sign(secret, 1_700_000_000, body)
    assert header.startswith("t=1700000000,v1=") and len(header.rpartition("=")[2]) == 64
    assert verify(secret, header, body, now=1_700_000_100)
    assert not verify(secret, header, body + b" ", now=1_700_000_100)
    assert not verify(b"other", header, body, now=1_700_000_100)
    assert not verify(secret, header, body, now=1_700_000_000 + 301)
    assert not verify(secret, "v1=abc", body, now=1_700_000_000)


def test_local_mode_generates_one_private_secret(tmp_path: Path) -> None:
    first = local_webhook_secret(tmp_path)
    assert local_webhook_secret(tmp_path) == first and len(first) == 64
    assert stat.S_IMODE(os.stat(tmp_path / "webhook_secret").st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["webhook_secret"]
    assert build_notifier(Settings(data_dir=tmp_path)) is not None
    cloud = Settings(data_dir=tmp_path / "cloud", store="dynamodb://t")
    assert build_notifier(cloud) is None and not (tmp_path / "cloud").exists()
    configured = build_notifier(Settings(data_dir=tmp_path, store="dynamodb://t", webhook_secret="abc"))
    assert configured is not None and "abc" not in repr(configured)
