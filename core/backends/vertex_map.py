"""Pure translation for Vertex AI: a job → ``CustomJob``, Vertex job states and Cloud Logging
entries → ``NativeUpdate`` and our job, the filters the adapter sends. No I/O (the
``aiplatform_v1`` message descriptors are loaded on first use to validate request shapes).

Vertex AI assigns a custom job's id itself; the native id Train records is the job's full
resource name ``projects/<project>/locations/<location>/customJobs/<id>``, and the job carries
our job id and attempt as labels (``train-job-id``, ``train-attempt``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from core.backends import drafts
from core.backends.vertex_machines import CPU_MACHINE, MACHINE_TABLE
from core.backends.vertex_request import (
    CHECKPOINTS,
    LABEL_ATTEMPT,
    LABEL_JOB_ID,
    native_job,
    output_uri,
    portable_job,
)
from core.errors import InvalidSpecError
from core.lifecycle import NativeUpdate, Status
from core.model import JobRecord, JobSpec, LogLine, NativeJobRequest

__all__ = [
    "CPU_MACHINE", "LABEL_ATTEMPT", "LABEL_JOB_ID", "MACHINE_TABLE", "MISSING", "checkpoint_location",
    "custom_job_name", "decode_pubsub_cloudevent", "draft_record", "from_vertex_job", "from_vertex_log_entry",
    "from_vertex_log_line", "from_vertex_state", "job_filter", "log_filter", "parse_custom_job_name",
    "parse_timestamp", "staging_uri", "to_vertex_custom_job", "train_labels",
]

# JobState → Train (SPEC §6). PAUSED, PARTIALLY_SUCCEEDED (batch prediction only) and
# UNSPECIFIED are not in the table: such updates are logged and change nothing.
STATE_TABLE: dict[str, Status] = {
    "JOB_STATE_QUEUED": Status.PENDING,
    "JOB_STATE_PENDING": Status.PENDING,
    "JOB_STATE_RUNNING": Status.IN_PROGRESS,
    "JOB_STATE_UPDATING": Status.IN_PROGRESS,
    "JOB_STATE_CANCELLING": Status.IN_PROGRESS,
    "JOB_STATE_SUCCEEDED": Status.COMPLETED,
    "JOB_STATE_FAILED": Status.FAILED,
    "JOB_STATE_CANCELLED": Status.CANCELED,
    "JOB_STATE_EXPIRED": Status.EXPIRED,
}
MISSING = "NOT_FOUND"  # our own native state: Vertex AI has no such custom job
_DEFAULT_REASONS = {"JOB_STATE_CANCELLED": "canceled", "JOB_STATE_EXPIRED": "expired"}

_RESOURCE = re.compile(r"^projects/([^/]+)/locations/([^/]+)/customJobs/([^/]+)$")
_JOB_ID = re.compile(r"^[0-9A-Za-z_-]{1,128}$")
# RFC 3339 as Google APIs write it: up to 9 fractional digits, "Z" or an offset.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
ML_JOB = "ml_job"  # Cloud Logging monitored-resource type of Vertex AI training jobs
_ERROR_SEVERITIES = frozenset({"ERROR", "CRITICAL", "ALERT", "EMERGENCY"})


def custom_job_name(project: str, location: str, job_id: str) -> str:
    return f"projects/{project}/locations/{location}/customJobs/{job_id}"


def parse_custom_job_name(name: str) -> tuple[str, str, str] | None:
    """``(project, location, job id)`` of a custom job's resource name; None for anything else."""
    found = _RESOURCE.match(name)
    return (found.group(1), found.group(2), found.group(3)) if found else None


def staging_uri(staging_bucket: str) -> str:
    """``bucket`` or ``gs://bucket[/path]`` → ``gs://bucket[/path]`` without a trailing slash."""
    bare = staging_bucket.removeprefix("gs://").strip("/")
    return f"gs://{bare}"


def to_vertex_custom_job(
    job: JobRecord, *, prefix: str, staging_bucket: str, service_account: str | None = None,
    secrets: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``CustomJob`` (snake_case dict) for ``job``'s current attempt; ``secrets`` holds the
    values of the spec's ``{secret: name}`` env entries by variable.

    Raises:
        InvalidSpecError: naming every field Vertex AI cannot run, before any call.
    """
    staging = staging_uri(staging_bucket)
    if job.native_request is not None:
        custom_job, errors = native_job(job, prefix=prefix, staging=staging, service_account=service_account)
    else:
        custom_job, errors = portable_job(
            job, prefix=prefix, staging=staging, service_account=service_account, secrets=secrets or {}
        )
    if errors:
        raise InvalidSpecError.of(errors)
    return custom_job


def draft_record(source: JobSpec | NativeJobRequest) -> JobRecord:
    """A stand-in vertex-ai job for checking a submission (see ``core.backends.drafts``)."""
    return drafts.draft_record(source, "vertex-ai")



def job_filter(job_id: str, attempt: int) -> str:
    """The ListCustomJobs filter that finds the native job of one attempt."""
    return f'labels.{LABEL_JOB_ID}="{job_id}" AND labels.{LABEL_ATTEMPT}="{attempt}"'


def log_filter(vertex_job_id: str, since: str | None = None) -> str:
    """The Cloud Logging filter for a custom job's entries (every replica and the service's own)."""
    text = f'resource.type="{ML_JOB}" AND resource.labels.job_id="{vertex_job_id}"'
    return text + (f' AND timestamp>="{since}"' if since else "")


def checkpoint_location(job: JobRecord, *, prefix: str, staging_bucket: str) -> tuple[str, str]:
    """``(bucket, object prefix)`` of the current attempt's checkpoints: ``<base_output_directory>/checkpoints/``."""
    base = output_uri(staging_uri(staging_bucket), prefix, job.id, job.attempt)
    if job.native_request is not None:
        given = job.native_request.get("job_config", {}).get("base_output_directory", {})
        if isinstance(given, dict) and str(given.get("output_uri_prefix", "")).startswith("gs://"):
            base = str(given["output_uri_prefix"])
    bucket, _, path = base.removeprefix("gs://").partition("/")
    path = path.strip("/")
    return bucket, (f"{path}/" if path else "") + f"{CHECKPOINTS}/"


# ---- states ---------------------------------------------------------------------------------


# A Spot VM that Compute Engine reclaims ends the custom job: JOB_STATE_FAILED with an error whose
# message says the VM was preempted. Google documents no fixed text or code for it (the prediction
# page names STOCKOUT for a different case), so the message is matched on "preempt".
PREEMPTED_WORDS = re.compile(r"preempt", re.IGNORECASE)


def from_vertex_state(
    state: str, *, event_time: datetime, reason: str | None = None, attempt: int | None = None
) -> NativeUpdate:
    mapped = STATE_TABLE.get(state, Status.FAILED if state == MISSING else None)
    preempted = state == "JOB_STATE_FAILED" and bool(reason and PREEMPTED_WORDS.search(reason))
    return NativeUpdate(state, mapped, event_time, reason or _DEFAULT_REASONS.get(state), attempt, preempted)


def from_vertex_job(job: Mapping[str, Any], *, attempt: int | None = None) -> NativeUpdate:
    """A CustomJob as JSON (snake_case or the REST camelCase): ``state``, ``update_time`` as the
    event time, ``error.message`` as the reason. Without ``attempt`` the ``train-attempt`` label gives it."""
    state = str(job.get("state") or "JOB_STATE_UNSPECIFIED")
    when = parse_timestamp(job.get("update_time", job.get("updateTime"))) or datetime.now(UTC)
    error = job.get("error")
    message = error.get("message") if isinstance(error, Mapping) else None
    if attempt is None:
        ours = train_labels(job)
        attempt = ours[1] if ours else None
    return from_vertex_state(state, event_time=when, reason=str(message) if message else None, attempt=attempt)


def train_labels(job: Mapping[str, Any]) -> tuple[str, int] | None:
    """``(our job id, attempt)`` from a CustomJob's labels; None for a job Train did not create."""
    labels = job.get("labels")
    if not isinstance(labels, Mapping):
        return None
    job_id, attempt = labels.get(LABEL_JOB_ID), labels.get(LABEL_ATTEMPT)
    if not isinstance(job_id, str) or not job_id or not isinstance(attempt, str) or not attempt.isdigit():
        return None
    return job_id, int(attempt)


# ---- Cloud Logging and Pub/Sub ---------------------------------------------------------------


def from_vertex_log_entry(entry: object) -> str | None:
    """The Vertex job id a Cloud Logging LogEntry is about (``resource.type == "ml_job"``,
    ``resource.labels.job_id``); None for any other entry. The entry is only a hint: read the
    job with GetCustomJob for its state."""
    if not isinstance(entry, Mapping):
        return None
    resource = entry.get("resource")
    if not isinstance(resource, Mapping) or resource.get("type") != ML_JOB:
        return None
    labels = resource.get("labels")
    job_id = labels.get("job_id") if isinstance(labels, Mapping) else None
    return job_id if isinstance(job_id, str) and _JOB_ID.match(job_id) else None


def log_entry_text(entry: Mapping[str, Any]) -> str | None:
    """The text of a LogEntry: ``jsonPayload.message`` or ``textPayload``, whichever it has."""
    payload = entry.get("jsonPayload")
    if isinstance(payload, Mapping) and isinstance(payload.get("message"), str):
        return str(payload["message"])
    text = entry.get("textPayload")
    return text if isinstance(text, str) else None


def from_vertex_log_line(entry: Mapping[str, Any]) -> LogLine | None:
    """A log line of an entries:list answer; error severities are the job's stderr."""
    text, when = log_entry_text(entry), parse_timestamp(entry.get("timestamp"))
    if text is None or when is None:
        return None
    labels = entry.get("labels")
    resource = entry.get("resource")
    source = labels.get("ml.googleapis.com/task_name") if isinstance(labels, Mapping) else None
    if source is None and isinstance(resource, Mapping) and isinstance(resource.get("labels"), Mapping):
        source = resource["labels"].get("task_name")
    stream = "stderr" if entry.get("severity") in _ERROR_SEVERITIES else "stdout"
    return LogLine(time=when, stream=stream, message=text.rstrip("\r\n"), source=str(source) if source else None)


def decode_pubsub_cloudevent(data: object) -> dict[str, Any] | None:
    """The JSON object a Pub/Sub ``messagePublished`` CloudEvent carries (``message.data``,
    base64); None when there is none or it is not a JSON object. Takes the event's ``data``
    member or the whole event."""
    if isinstance(data, Mapping) and "message" not in data and isinstance(data.get("data"), Mapping):
        data = data["data"]
    message = data.get("message") if isinstance(data, Mapping) else None
    encoded = message.get("data") if isinstance(message, Mapping) else None
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        decoded = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        return None
    return decoded if isinstance(decoded, dict) else None


def parse_timestamp(value: object) -> datetime | None:
    """RFC 3339 with up to 9 fractional digits (Google's), truncated to microseconds; a datetime
    as it is (naive taken as UTC); None otherwise."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    found = _RFC3339.match(value.strip())
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = found.groups()
    zone = UTC
    if not zulu:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        zone = timezone(-offset if sign == "-" else offset)
    micros = int((fraction or "0").ljust(6, "0")[:6])
    try:
        parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=zone)
    except ValueError:
        return None
    return parsed.astimezone(UTC)
