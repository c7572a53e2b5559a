"""Webhooks over real HTTP: ``WebhookNotifier`` against a receiver on 127.0.0.1 that verifies every
signature and de-duplicates by delivery id; the service over SQLite retries failures (500s,
timeouts, redirects) with backoff until each transition is delivered; the secret reaches no log
line and no stored record."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from core.errors import DeliveryError
from core.lifecycle import NativeUpdate, Status
from core.model import JobSpec
from core.notifiers.webhook import WebhookNotifier
from core.outbox import Backoff
from core.service import TrainService
from core.stores.sqlite import SQLiteJobStore
from tests.fakes import FakeBackend, FakeClock
from tests.webhook_receiver import WebhookReceiver

SECRET = b"whsec-0123456789abcdef-not-for-logs"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET, slow_seconds=1.5) as running:
        yield running


def notifier(**options: object) -> WebhookNotifier:
    return WebhookNotifier(SECRET, timeout=0.5, allow_private=True, **options)  # type: ignore[arg-type]


def test_a_delivery_is_signed_and_carries_its_id(receiver: WebhookReceiver) -> None:
    body = json.dumps({"id": "dlv_1", "type": "job.status_changed"}).encode()
    notifier().send(receiver.url, "dlv_1", body)
    [request] = receiver.requests
    assert request["signed"] and request["body"] == body and request["path"] == "/hooks/train"
    headers = request["headers"]
    assert headers["train-delivery"] == "dlv_1" and headers["content-type"] == "application/json"
    assert headers["train-signature"].startswith("t=") and ",v1=" in headers["train-signature"]
    assert receiver.unique == {"dlv_1": {"id": "dlv_1", "type": "job.status_changed"}}


@pytest.mark.parametrize(("answer", "words"), [("500", "answered 500"), ("404", "answered 404"),
                                                ("redirect", "answered 307"), ("slow", "unreachable")])
def test_anything_but_2xx_is_a_failed_delivery(receiver: WebhookReceiver, answer: str, words: str) -> None:
    receiver.script(answer)
    started = time.monotonic()
    with pytest.raises(DeliveryError) as caught:
        notifier().send(receiver.url, "dlv_2", b"{}")
    assert words in caught.value.detail and time.monotonic() - started < 1.4  # the timeout, not the sleep
    assert [r["path"] for r in receiver.requests] == ["/hooks/train"]  # a redirect is not followed
    assert receiver.unique == {}


def test_private_targets_are_refused_unless_allowed(receiver: WebhookReceiver) -> None:
    strict = WebhookNotifier(SECRET, timeout=0.5)
    for url in (receiver.url, "http://169.254.169.254/latest/meta-data", "http://[::1]:9/x"):
        with pytest.raises(DeliveryError) as caught:
            strict.send(url, "dlv_3", b"{}")
        assert "may not reach" in caught.value.detail
    with pytest.raises(DeliveryError):
        strict.send("ftp://example.com/x", "dlv_3", b"{}")
    assert receiver.requests == []


def test_the_service_delivers_every_transition_at_least_once_through_failures(
    receiver: WebhookReceiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store, clock = SQLiteJobStore(tmp_path / "train.db"), FakeClock()
    service = TrainService(store, {"local": FakeBackend()}, clock=clock, notifier=notifier(),
                           webhook_backoff=Backoff(base=timedelta(seconds=10), max_tries=6))
    spec = JobSpec.model_validate({"name": "hooked", "backend": "local", "command": ["python", "t.py"],
                                   "notify": {"url": receiver.url, "on": ["IN_PROGRESS", "COMPLETED"]}})
    job = service.submit("acct", spec)[0]
    # IN_PROGRESS: 500, then a redirect, then 204; COMPLETED: too slow (timeout), then 204
    receiver.script("500", "slow", "redirect")

    for state, status in (("Running", Status.IN_PROGRESS), ("Succeeded", Status.COMPLETED)):
        clock.advance(seconds=1)
        service.apply_native_update("local", f"fake-{job.id}-1", NativeUpdate(state, status, clock(), None, 1))
    waiting = store.get("acct", job.id)
    assert waiting is not None and waiting.status == Status.COMPLETED
    assert [(d.status, d.tries) for d in waiting.outbox] == [(Status.IN_PROGRESS, 1), (Status.COMPLETED, 1)]
    assert [j.id for j in store.list_active()[0]] == [job.id]  # ended, in the index for its outbox

    for _ in range(6):
        clock.advance(seconds=80)
        service.sweep()
    store_after = store.get("acct", job.id)
    assert store_after is not None and store_after.outbox == [] and store.list_active() == ([], None)

    assert receiver.bad_signatures == 0 and len(receiver.requests) == 5
    tries = [json.loads(r["body"])["id"] for r in receiver.requests]
    assert len(set(tries)) == 2  # retries carry the same delivery id
    assert sorted(p["status"] for p in receiver.unique.values()) == ["COMPLETED", "IN_PROGRESS"]
    assert all(p["job_id"] == job.id and p["account_id"] == "acct" for p in receiver.unique.values())

    secret = SECRET.decode()
    assert not [r for r in caplog.records if secret in r.getMessage()]
    assert any("webhook delivery" in r.getMessage() for r in caplog.records)  # failures were logged
    raw = store._conn().execute("SELECT record FROM jobs").fetchall()
    assert raw and not [row for row in raw if secret in row[0]]
    store.close()
