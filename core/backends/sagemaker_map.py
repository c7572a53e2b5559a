"""Pure translation for SageMaker: a job → CreateTrainingJob, SageMaker states and EventBridge
events → ``NativeUpdate``, the accelerator → instance table and SageMaker's own limits. No I/O
(botocore's bundled service model is read from disk, once, to validate request shapes).

Native job name: ``<prefix>-<job id>-<attempt>``, deterministic, so a retried submit that meets
``ResourceInUse`` knows the job is already there, and an event's name leads back to our job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.backends import drafts
from core.backends.names import attempt_name, parse_attempt_name
from core.backends.sagemaker_request import (  # the instance table and SageMaker's limits live there
    CPU_INSTANCE,
    INSTANCE_TABLE,
    native_request,
    portable_request,
)
from core.errors import InvalidSpecError
from core.lifecycle import NativeUpdate, Status
from core.model import JobRecord, JobSpec, NativeJobRequest

# Where SageMaker's training state-change events come from (SageMaker developer guide,
# "Automating SageMaker with Amazon EventBridge").
EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = "SageMaker Training Job State Change"

# TrainingJobName: 1-63 characters matching [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
# (botocore sagemaker service-2.json, shape TrainingJobName).
MAX_NAME = 63
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")

# TrainingJobStatus + SecondaryStatus → Train (SPEC §6). Secondary statuses are listed in the API
# reference of DescribeTrainingJob (SecondaryStatus). "Stopped" is decided by _stopped().
PENDING_SECONDARY = frozenset({
    "Starting", "Pending", "LaunchingMLInstances", "PreparingTrainingStack", "Downloading",
    "DownloadingTrainingImage",
})
RUNNING_SECONDARY = frozenset({"Training", "Uploading", "Restarting", "Interrupted", "Updating"})
# "Interrupted - The job stopped because the managed spot training instances were interrupted"
# (DescribeTrainingJob, SecondaryStatus; "Managed Spot Training Lifecycle" in the developer guide
# shows InProgress: ... Training → Interrupted → Starting ... when SageMaker resumes the job itself).
# It is the one documented spot signal: FailureReason texts are not documented, so none is matched.
PREEMPTED_SECONDARY = "Interrupted"
EXPIRED_SECONDARY = {"MaxRuntimeExceeded": "max_runtime exceeded", "MaxWaitTimeExceeded": "spot max_wait exceeded"}
FINAL_STATES = {"Completed": Status.COMPLETED, "Failed": Status.FAILED}
MISSING = "NotFound"  # our own native state: SageMaker has no job of that name

__all__ = [
    "CPU_INSTANCE", "INSTANCE_TABLE", "draft_record", "from_sagemaker_event", "from_sagemaker_job",
    "from_sagemaker_state", "parse_training_job_name", "to_sagemaker_request", "training_job_name",
]


def training_job_name(prefix: str, job_id: str, attempt: int) -> str:
    name = attempt_name(prefix, job_id, attempt)
    if len(name) > MAX_NAME or not NAME_PATTERN.match(name):
        raise InvalidSpecError.at(("name",), f"'{name}' is not a valid SageMaker training job name")
    return name


parse_training_job_name = parse_attempt_name


def to_sagemaker_request(
    job: JobRecord, *, role_arn: str, output_s3_uri: str, prefix: str, secrets: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The CreateTrainingJob request (PascalCase, as boto3 takes it) for ``job``'s current attempt;
    ``secrets`` holds the values of the spec's ``{secret: name}`` env entries by variable.

    Raises:
        InvalidSpecError: naming every field SageMaker cannot run, before any call.
    """
    name = training_job_name(prefix, job.id, job.attempt)
    if job.native_request is not None:
        request, errors = native_request(job, name=name, role_arn=role_arn, output_s3_uri=output_s3_uri)
    else:
        request, errors = portable_request(
            job, name=name, role_arn=role_arn, output_s3_uri=output_s3_uri, secrets=secrets or {}
        )
    if errors:
        raise InvalidSpecError.of(errors)
    return request


def draft_record(source: JobSpec | NativeJobRequest) -> JobRecord:
    """A stand-in sagemaker job for checking a submission (see ``core.backends.drafts``)."""
    return drafts.draft_record(source, "sagemaker")



# ---- states ---------------------------------------------------------------------------------


def from_sagemaker_state(
    status: str,
    secondary: str | None,
    *,
    event_time: datetime,
    reason: str | None = None,
    attempt: int | None = None,
) -> NativeUpdate:
    """Map ``TrainingJobStatus`` and ``SecondaryStatus``; a pair not in SPEC §6 maps to None
    (logged by the service, status unchanged)."""
    native = status if not secondary or secondary == status else f"{status}/{secondary}"
    mapped: Status | None = None
    if status == "InProgress":
        if secondary is None or secondary in PENDING_SECONDARY:
            mapped = Status.PENDING
        elif secondary in RUNNING_SECONDARY:
            mapped = Status.IN_PROGRESS
        if secondary == PREEMPTED_SECONDARY:
            reason = reason or "spot capacity interrupted"
            return NativeUpdate(native, mapped, event_time, reason, attempt, preempted=True)
    elif status == "Stopping":
        mapped = Status.IN_PROGRESS
    elif status == "Stopped":
        mapped, default = _stopped(secondary)
        reason = reason or default
    elif status in FINAL_STATES:
        mapped = FINAL_STATES[status]
    elif status == MISSING:
        mapped = Status.FAILED
    return NativeUpdate(native, mapped, event_time, reason, attempt)


def _stopped(secondary: str | None) -> tuple[Status, str]:
    if secondary in EXPIRED_SECONDARY:
        return Status.EXPIRED, EXPIRED_SECONDARY[secondary]
    return Status.CANCELED, "stopped"


def from_sagemaker_job(described: dict[str, Any], *, attempt: int | None = None) -> NativeUpdate:
    """A DescribeTrainingJob answer (or an event's ``detail``, which has the same fields)."""
    when = parse_event_time(described.get("LastModifiedTime")) or datetime.now(UTC)
    reason = described.get("FailureReason")
    return from_sagemaker_state(
        str(described["TrainingJobStatus"]), _str_or_none(described.get("SecondaryStatus")),
        event_time=when, reason=str(reason) if reason else None, attempt=attempt,
    )


def from_sagemaker_event(event: object, prefix: str) -> tuple[str, NativeUpdate] | None:
    """``(training job name, update)`` for an EventBridge "SageMaker Training Job State Change"
    event of one of our jobs; None for a foreign or malformed one.

    The job name comes from ``detail.TrainingJobName``: the ARN's suffix need not match it.
    ``LastModifiedTime`` arrives as epoch milliseconds in a string (numbers are accepted too);
    without it the event's own ``time`` is used.
    """
    if not isinstance(event, dict):
        return None
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != EVENT_DETAIL_TYPE:
        return None
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return None
    name, status = detail.get("TrainingJobName"), detail.get("TrainingJobStatus")
    if not isinstance(name, str) or not isinstance(status, str) or not status:
        return None
    parsed = parse_training_job_name(name, prefix)
    if parsed is None:
        return None
    when = parse_event_time(detail.get("LastModifiedTime")) or parse_event_time(event.get("time"))
    if when is None:
        return None
    secondary = _str_or_none(detail.get("SecondaryStatus"))
    reason = detail.get("FailureReason")
    update = from_sagemaker_state(
        status, secondary, event_time=when, reason=str(reason) if reason else None, attempt=parsed[1]
    )
    return name, update


def parse_event_time(value: object) -> datetime | None:
    """Epoch milliseconds (string or number), an ISO 8601 string, or a datetime; None otherwise."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
