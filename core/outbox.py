"""A job's webhook outbox: which transitions to notify, the body each delivery sends, and when a
failed delivery is tried again or given up. Functions over the ``JobRecord`` that never write it:
the service writes the outbox in the same conditional write as the transition, has
``send_due`` send through its ``Notifier``, and records the outcome with ``settle``.

Why an outbox on the record: the notification and the transition it reports become durable
together, so a crash between the write and the POST loses nothing (at least once). A job whose
outbox is not empty stays in the stores' sparse active index (``JobRecord.needs_sweep``) even after
it ended, which is how the sweeper, reading that index only, finds deliveries to retry.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.errors import DeliveryError
from core.lifecycle import Status
from core.model import MAX_OUTBOX, Delivery, JobEvent, JobRecord
from core.ports import Notifier

log = logging.getLogger("train.webhooks")

EVENT_TYPE = "job.status_changed"
MAX_TRIES = 8
MAX_ERROR = 200
NO_WEBHOOKS = "this deployment sends no webhooks (TRAIN_WEBHOOK_SECRET is not set)"


@dataclass(frozen=True)
class Backoff:
    """Delay before try ``n + 1`` after ``n`` failed tries: ``base · 2^(n-1)``, at most ``cap``."""

    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)
    max_tries: int = MAX_TRIES

    def delay(self, tries: int) -> timedelta:
        delay: timedelta = self.base * (2 ** max(0, tries - 1))
        return min(self.cap, delay)


def notify_target(job: JobRecord) -> tuple[str, frozenset[str]] | None:
    """``(url, statuses)`` of the job's ``notify``; None when it asked for no webhook."""
    notify = job.spec.get("notify") if job.native_request is None else None
    if not isinstance(notify, dict) or not notify.get("url"):
        return None
    return str(notify["url"]), frozenset(str(s) for s in notify.get("on") or ())


def enqueue(job: JobRecord, steps: Iterable[tuple[Status, Status]], now: datetime) -> None:
    """Add a delivery for each ``(previous, status)`` step the job asked to hear about. Past
    ``MAX_OUTBOX`` waiting deliveries the oldest is dropped, with a note in the job's history."""
    target = notify_target(job)
    if target is None:
        return
    _, wanted = target
    for previous, status in steps:
        if status.value not in wanted:
            continue
        job.outbox.append(Delivery(
            id=f"dlv_{uuid.uuid4().hex}", status=status, previous_status=previous,
            status_reason=job.status_reason if status == job.status else None,
            attempt=job.attempt, occurred_at=now, next_at=now,
        ))
    while len(job.outbox) > MAX_OUTBOX:
        dropped = job.outbox.pop(0)
        job.events.append(_note(job, now, f"webhook delivery {dropped.id} ({dropped.status.value}) dropped: "
                                          "outbox full"))


def due(job: JobRecord, now: datetime) -> list[Delivery]:
    return [d for d in job.outbox if d.next_at <= now]


def body(job: JobRecord, delivery: Delivery) -> bytes:
    """The JSON body of a delivery: the same bytes on every try, so a receiver may hash it too."""
    payload = {
        "id": delivery.id,
        "type": EVENT_TYPE,
        "job_id": job.id,
        "account_id": job.account_id,
        "status": delivery.status.value,
        "previous_status": delivery.previous_status.value,
        "status_reason": delivery.status_reason,
        "attempt": delivery.attempt,
        "occurred_at": delivery.occurred_at.isoformat().replace("+00:00", "Z"),
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def send_due(job: JobRecord, notifier: Notifier | None, now: datetime) -> tuple[set[str], dict[str, str]]:
    """Send each delivery that is due, in order: the ids delivered, and the failed ones with why."""
    target = notify_target(job)
    delivered: set[str] = set()
    failed: dict[str, str] = {}
    for delivery in due(job, now):
        try:
            if notifier is None or target is None:
                raise DeliveryError(NO_WEBHOOKS)
            notifier.send(target[0], delivery.id, body(job, delivery))
            delivered.add(delivery.id)
        except DeliveryError as exc:
            failed[delivery.id] = exc.detail
            log.warning("webhook delivery %s of job %s failed (try %d): %s", delivery.id, job.id,
                        delivery.tries + 1, exc.detail)
    return delivered, failed


def settle(
    job: JobRecord, delivered: set[str], failed: dict[str, str], now: datetime, backoff: Backoff
) -> bool:
    """Record the outcome of one round of sends: delivered ones leave the outbox, failed ones wait
    ``backoff`` longer or, after ``max_tries``, leave it with a note. Returns whether anything changed
    (ids not in the outbox any more, e.g. settled by a concurrent sweeper, are skipped)."""
    changed = False
    kept: list[Delivery] = []
    for delivery in job.outbox:
        if delivery.id in delivered:
            job.events.append(_note(job, now, f"webhook delivery {delivery.id} ({delivery.status.value}) delivered"))
            changed = True
            continue
        error = failed.get(delivery.id)
        if error is None:
            kept.append(delivery)
            continue
        changed = True
        tries = delivery.tries + 1
        if tries >= backoff.max_tries:
            job.events.append(_note(job, now, (
                f"webhook delivery {delivery.id} ({delivery.status.value}) given up after {tries} tries: {error}"
            )))
            continue
        kept.append(delivery.model_copy(update={
            "tries": tries, "next_at": now + backoff.delay(tries), "last_error": error[:MAX_ERROR],
        }))
    job.outbox = kept
    return changed


def _note(job: JobRecord, now: datetime, reason: str) -> JobEvent:
    return JobEvent(at=now, kind="note", status=job.status, reason=reason, attempt=job.attempt)
