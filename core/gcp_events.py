"""Google Cloud Functions (gen2) envelopes in and out of core, for ``functions/gcp/main.py``.

- HTTP: a Flask request becomes the API Gateway HTTP API payload 2.0 event the route table
  resolves (``core.server.to_event``, the local host's converter), and the resolver's answer a
  Flask ``(body, status, headers)`` tuple. The framework serves requests on several threads and
  the resolver keeps per-request state, so each request borrows a resolver from a pool.
- Vertex AI log sink: a Pub/Sub ``messagePublished`` CloudEvent whose message is a Cloud Logging
  LogEntry of a custom job (``resource.type="ml_job"``). The entry is only a hint: its
  ``resource.labels.job_id`` names the job, which is read with GetCustomJob for its real state
  and ``updateTime``. The labels carry no region, so the resource name uses the deployment's
  configured location (and project). Anything else is logged and acknowledged; a retryable
  error (Firestore or Vertex AI unavailable, a lost race) is raised so Pub/Sub delivers again.
- Sweeper: Cloud Scheduler by HTTP POST, or by Pub/Sub (a CloudEvent, or a push delivery or
  Eventarc request reaching the HTTP entry point). The trigger only names the log line.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from core import hosts
from core.errors import TrainError

if TYPE_CHECKING:
    from core.bootstrap import Wiring

log = logging.getLogger("train.functions")

VERTEX = "vertex-ai"
MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
SCHEDULER_AGENT = "Google-Cloud-Scheduler"
JSON_HEADERS = [("Content-Type", "application/json")]
_HOP_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})

FlaskResult = tuple[bytes, int, list[tuple[str, str]]]



# ---- HTTP ---------------------------------------------------------------------------------------


def serve_http(request: Any) -> FlaskResult:
    """Answer one Flask request with the route table over this container's wiring."""
    from core.server import to_event

    environ: Mapping[str, Any] = request.environ
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or _target(request)
    forwarded = str(request.headers.get("X-Forwarded-For") or "").split(",")[0].strip()
    event = to_event(
        request.method, str(target), list(request.headers.items()), request.get_data(),
        forwarded or str(request.remote_addr or ""), str(environ.get("SERVER_PROTOCOL") or "HTTP/1.1"),
    )
    with hosts.resolvers().lend() as app:
        result = app.resolve(event, None)
    return to_flask_result(result)


def _target(request: Any) -> str:
    query = request.query_string.decode("latin-1")
    return quote(request.path) + (f"?{query}" if query else "")


def to_flask_result(result: Mapping[str, Any]) -> FlaskResult:
    """A resolver's payload 2.0 answer as Flask's ``(body, status, headers)``; cookies become
    ``Set-Cookie`` headers and Flask sets the length itself."""
    text = result.get("body") or ""
    body = base64.b64decode(text) if result.get("isBase64Encoded") else str(text).encode("utf-8")
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items() if k.lower() not in _HOP_HEADERS]
    headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
    return body, int(result.get("statusCode", 200)), headers


# ---- Vertex AI job state, from the log sink -----------------------------------------------------


def vertex_log_event(wiring: Wiring, attributes: Mapping[str, Any], data: object) -> str:
    """Apply what a log-sink message says about a custom job; returns the outcome it logged.

    Raises:
        TrainError: only a retryable one, so Pub/Sub redelivers the message.
    """
    from core.backends.vertex_map import (
        custom_job_name,
        decode_pubsub_cloudevent,
        from_vertex_log_entry,
        log_entry_text,
    )

    envelope = {"id": attributes.get("id"), "source": attributes.get("source"), "detail-type": attributes.get("type")}
    event_id = str(attributes.get("id") or "-")
    if attributes.get("type") != MESSAGE_PUBLISHED:
        return hosts.drop(envelope, "not a Pub/Sub message")
    entry = decode_pubsub_cloudevent(data)
    if entry is None:
        return hosts.drop(envelope, "the message data is not a base64 JSON object")
    vertex_job_id = from_vertex_log_entry(entry)
    if vertex_job_id is None:
        return hosts.drop(envelope, "not a Cloud Logging entry of a Vertex AI custom job")
    settings, backend = wiring.settings, wiring.backends.get(VERTEX)
    if backend is None or not settings.vertex_project or not settings.vertex_location:
        return hosts.drop(envelope, "this deployment does not run the vertex-ai backend")
    native_id = custom_job_name(settings.vertex_project, settings.vertex_location, vertex_job_id)
    log.debug("event %s: %s says %r", event_id, native_id, (log_entry_text(entry) or "")[:200])
    try:
        job = wiring.store.find_by_native_id(VERTEX, native_id)
        if job is None:
            log.info("event %s: no job of ours runs as %s; acknowledged", event_id, native_id)
            return hosts.UNKNOWN_JOB
        update = backend.describe(job)  # GetCustomJob: the real state, at its updateTime
    except TrainError as exc:
        if exc.retryable:
            log.warning("event %s for %s not applied, to be retried: %s", event_id, native_id, exc.detail)
            raise
        log.error("event %s for %s dropped: %s", event_id, native_id, exc.detail)
        return hosts.DROPPED
    return hosts.deliver(wiring.service, VERTEX, native_id, update, event_id=event_id)


# ---- sweeper ------------------------------------------------------------------------------------


def sweep_http(request: Any) -> FlaskResult:
    """Cloud Scheduler's HTTP POST (or a Pub/Sub push / Eventarc delivery) → one sweep, answered
    with its counts as JSON. Anything but POST is refused: a sweep changes state."""
    if request.method != "POST":
        body = json.dumps({"title": "Method not allowed", "status": 405, "detail": "POST to run a sweep"})
        return body.encode(), 405, [("Content-Type", "application/problem+json"), ("Allow", "POST")]
    report = hosts.sweep(hosts.wiring().service, http_trigger(request.headers))
    return json.dumps(report).encode(), 200, JSON_HEADERS


def http_trigger(headers: Mapping[str, Any]) -> str:
    if headers.get("ce-type") == MESSAGE_PUBLISHED:
        return "pubsub-eventarc"
    if str(headers.get("User-Agent") or "").startswith(SCHEDULER_AGENT):
        return "cloud-scheduler"
    return "http"


def cloud_event_trigger(attributes: Mapping[str, Any]) -> str:
    return "pubsub" if attributes.get("type") == MESSAGE_PUBLISHED else str(attributes.get("type") or "cloudevent")
