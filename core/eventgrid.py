"""Event Grid deliveries of Azure ML run events → the job's status (SPEC §7).

An event arrives through the Functions Event Grid trigger (one event per invocation, as the
trigger object of ``azure.functions``) or through the webhook variant (the raw body: an array of
Event Grid schema events, one CloudEvents 1.0 event, or a CloudEvents batch). Both end in
``handle``: the event is a hint. Its ``data.runId`` leads to our job through the native id; a job
still running is re-read with the backend's ``describe`` for its real state and time (Event Grid
neither orders nor de-duplicates, and the doc samples spell statuses in either case). A job that
has already ended is not re-read: the event's own status is recorded as an ignored update, so a
redelivery costs no Azure ML call and no ``azure.ai.ml`` import.

Outcomes follow ``core.hosts``: foreign, other-workspace and malformed events are logged and
acknowledged; only retryable errors (store outages, Azure ML throttling) are raised, so Event Grid
delivers again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core import hosts
from core.backends.azureml_map import (
    eventgrid_event_time,
    from_azureml_status,
    from_eventgrid_event,
    parse_azureml_job_name,
)
from core.errors import InvalidRequestError, TrainError
from core.lifecycle import is_terminal

log = logging.getLogger("train.functions")

BACKEND = "azure-ml"
# Event Grid webhook delivery: the handshake a new subscription sends (Event Grid schema only;
# CloudEvents subscriptions use the OPTIONS handshake instead).
VALIDATION_EVENT = "microsoft.eventgrid.subscriptionvalidationevent"


def from_trigger(event: Any) -> dict[str, Any]:
    """The schema dict of the trigger object ``azure.functions`` hands the function: an
    ``EventGridEvent`` or, when the subscription delivers CloudEvents 1.0, a ``CloudEvent``.
    Times stay the datetimes the worker parsed (it drops a 7th fractional digit itself)."""
    if hasattr(event, "specversion"):
        out: dict[str, Any] = {
            "specversion": event.specversion, "id": event.id, "source": event.source, "type": event.type,
            "time": event.time, "subject": event.subject, "data": event.get_json(),
        }
        out.update(getattr(event, "extension_attrs", {}) or {})
        return out
    return {
        "id": event.id, "topic": event.topic, "subject": event.subject, "eventType": event.event_type,
        "eventTime": event.event_time, "data": event.get_json(), "dataVersion": event.data_version,
    }


def parse_body(body: bytes | str) -> list[Any]:
    """The events of a webhook delivery body: a JSON array (Event Grid schema, CloudEvents batch)
    or one JSON object (a CloudEvent in structured mode).

    Raises:
        InvalidRequestError: the body is not a JSON object or array.
    """
    try:
        decoded = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError("the delivery body is not JSON") from exc
    if isinstance(decoded, dict):
        return [decoded]
    if isinstance(decoded, list):
        return decoded
    raise InvalidRequestError("the delivery body is neither an event nor an array of events")


def validation_code(events: list[Any]) -> str | None:
    """The code of a ``SubscriptionValidationEvent`` among ``events``, which the webhook echoes
    back as ``{"validationResponse": code}``; None when the delivery is not a handshake."""
    for event in events:
        if not isinstance(event, Mapping):
            continue
        kind = event.get("eventType", event.get("type"))
        data = event.get("data")
        if isinstance(kind, str) and kind.lower() == VALIDATION_EVENT and isinstance(data, Mapping):
            code = data.get("validationCode")
            if isinstance(code, str) and code:
                return code
    return None


def handle(event: object) -> str:
    """Apply one delivered event to its job and say what became of it (``Outcome`` value,
    ``hosts.UNKNOWN_JOB`` or ``hosts.DROPPED``). Raises only retryable ``TrainError``s."""
    wiring = hosts.wiring()
    if BACKEND not in wiring.backends:
        return hosts.drop(_summary(event), "the azure-ml backend is not enabled in this deployment")
    if not isinstance(event, dict):
        return hosts.drop(event, "an event is a JSON object")
    workspace = wiring.settings.azureml_workspace
    parsed = from_eventgrid_event(event, workspace=workspace)
    if parsed is None:
        return hosts.drop(_summary(event), f"not a RunStatusChanged/RunCompleted event of workspace {workspace}")
    run_id, status = parsed
    event_id = hosts.event_id(event)
    name = parse_azureml_job_name(run_id, wiring.settings.job_prefix)
    if name is None:
        log.info("event %s: run %s is not a Train job; ignored", event_id, run_id)
        return hosts.UNKNOWN_JOB
    try:
        job = wiring.store.find_by_native_id(BACKEND, run_id)
        if job is None:
            log.info("event %s: no job runs as %s; ignored", event_id, run_id)
            return hosts.UNKNOWN_JOB
        if is_terminal(job.status):
            when = eventgrid_event_time(event) or datetime.now(UTC)
            update = from_azureml_status(status, event_time=when, attempt=name[1])
        else:
            update = wiring.backends[BACKEND].describe(job)
    except TrainError as exc:
        if exc.retryable:
            log.warning("event %s for %s %s not applied, to be retried: %s", event_id, BACKEND, run_id, exc.detail)
            raise
        log.error("event %s for %s %s dropped: %s", event_id, BACKEND, run_id, exc.detail)
        return hosts.DROPPED
    return hosts.deliver(wiring.service, BACKEND, run_id, update, event_id=event_id)


def _summary(event: object) -> dict[str, Any] | object:
    """What ``hosts.drop`` logs about an event: its id, where it comes from and its type."""
    if not isinstance(event, Mapping):
        return event
    return {
        "id": event.get("id"),
        "source": event.get("topic", event.get("source")),
        "detail-type": event.get("eventType", event.get("type")),
    }
