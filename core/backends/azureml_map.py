"""Pure translation for Azure ML: a job → command job (in the command-job YAML field names), Azure
ML job states and Event Grid events → Train's terms. No I/O and no SDK import.

Native job name: ``<prefix>-<job id>-<attempt>``, deterministic, so a retried submit finds the
job an earlier call created, and an event's ``runId`` leads back to our job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from core.backends import drafts
from core.backends.azureml_native import native_job
from core.backends.azureml_request import (  # the VM table and Azure ML's rules live there
    CPU_VM,
    VM_TABLE,
    Built,
    checkpoint_uri,
    environment_asset,
    portable_job,
)
from core.backends.names import attempt_name, parse_attempt_name
from core.errors import InvalidSpecError
from core.lifecycle import NativeUpdate, Status
from core.model import JobRecord, JobSpec, NativeJobRequest

__all__ = [
    "CPU_VM", "VM_TABLE", "Built", "azureml_job_name", "checkpoint_uri", "draft_record", "environment_asset",
    "from_azureml_status", "from_eventgrid_event", "parse_azure_time", "parse_azureml_job_name",
    "to_azureml_command_job",
]

# Job names are ARM resource names under .../workspaces/<ws>/jobs/<name>: letters, digits, '-' and
# '_', starting with a letter or digit, at most 255 characters (CLI v2 command job YAML reference, `name`).
MAX_NAME = 255
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")

# JobStatus of the Azure ML REST API (2024-04 "JobStatus" enum) → Train (SPEC §6), compared
# case-insensitively: Event Grid deliveries and the doc samples differ in case.
PENDING_STATES = frozenset({"notstarted", "queued", "preparing", "provisioning", "starting"})
RUNNING_STATES = frozenset({"running", "finalizing", "cancelrequested"})
FINAL_STATES = {"completed": Status.COMPLETED, "failed": Status.FAILED, "canceled": Status.CANCELED}
MISSING = "NotFound"  # our own native state: the workspace has no job of that name
# "The max run duration ..., after which the job will be cancelled" (REST API, CommandJobLimits.timeout):
# a breach ends the job Canceled, told apart from a user's cancel by its run time or error text.
TIMEOUT_WORDS = ("timeout", "timed out", "max run duration", "exceeded the maximum", "maximum allowed time")
TIMEOUT_SLACK = timedelta(seconds=60)
# A spot (low-priority) node taken back ends a serverless job Failed with run error text about the
# preemption or eviction; Azure ML documents no fixed code for it, so the text is matched.
PREEMPTED_WORDS = re.compile(r"preempt|evict", re.IGNORECASE)

# Event Grid (Azure Event Grid docs, "Azure Machine Learning as an Event Grid source").
EVENT_TYPES = frozenset({
    "microsoft.machinelearningservices.runstatuschanged", "microsoft.machinelearningservices.runcompleted",
})
_WORKSPACE = re.compile(r"/providers/microsoft\.machinelearningservices/workspaces/([^/]+)", re.IGNORECASE)
_SUBJECT_RUN = re.compile(r"(?:^|/)runs/([^/]+)$")
_FRACTION = re.compile(r"^(.*T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$", re.IGNORECASE)


def azureml_job_name(prefix: str, job_id: str, attempt: int) -> str:
    name = attempt_name(prefix, job_id, attempt)
    if len(name) > MAX_NAME or not NAME_PATTERN.match(name):
        raise InvalidSpecError.at(("name",), f"'{name}' is not a valid Azure ML job name")
    return name


parse_azureml_job_name = parse_attempt_name


def to_azureml_command_job(
    job: JobRecord, *, prefix: str, compute: str | None = None, datastore: str = "workspaceblobstore",
    secrets: Mapping[str, str] | None = None,
) -> Built:
    """The command job for ``job``'s current attempt, and the image to register as its Environment;
    ``secrets`` holds the values of the spec's ``{secret: name}`` env entries by variable.

    Raises:
        InvalidSpecError: naming every field Azure ML cannot run, before any call.
    """
    name = azureml_job_name(prefix, job.id, job.attempt)
    if job.native_request is not None:
        built = native_job(job, name=name, compute=compute, datastore=datastore, prefix=prefix)
    else:
        built = portable_job(job, name=name, compute=compute, datastore=datastore, prefix=prefix, secrets=secrets or {})
    if built.errors:
        raise InvalidSpecError.of(built.errors)
    return built


def draft_record(source: JobSpec | NativeJobRequest) -> JobRecord:
    """A stand-in azure-ml job for checking a submission (see ``core.backends.drafts``)."""
    return drafts.draft_record(source, "azure-ml")



# ---- states ---------------------------------------------------------------------------------


def from_azureml_status(
    status: str,
    *,
    event_time: datetime,
    reason: str | None = None,
    attempt: int | None = None,
    timeout_seconds: int | None = None,
    run_seconds: float | None = None,
    cancel_requested: bool = False,
) -> NativeUpdate:
    """Map a JobStatus; a state not in SPEC §6 maps to None (logged by the service, status unchanged).

    A Canceled job we did not ask to stop is EXPIRED when it ran for its ``limits.timeout`` or its
    error says the time limit ended it.
    """
    key = status.strip().lower()
    mapped: Status | None = None
    if key in PENDING_STATES:
        mapped = Status.PENDING
    elif key in RUNNING_STATES:
        mapped = Status.IN_PROGRESS
    elif key == "canceled" and not cancel_requested and _timed_out(reason, timeout_seconds, run_seconds):
        mapped, reason = Status.EXPIRED, reason or "max_runtime exceeded"
    elif key in FINAL_STATES:
        mapped = FINAL_STATES[key]
    elif key == MISSING.lower():
        mapped = Status.FAILED
    preempted = key == "failed" and bool(reason and PREEMPTED_WORDS.search(reason))
    return NativeUpdate(status, mapped, event_time, reason, attempt, preempted)


def _timed_out(reason: str | None, timeout_seconds: int | None, run_seconds: float | None) -> bool:
    if reason and any(word in reason.lower() for word in TIMEOUT_WORDS):
        return True
    if timeout_seconds is None or run_seconds is None:
        return False
    return run_seconds + TIMEOUT_SLACK.total_seconds() >= timeout_seconds


def from_eventgrid_event(event: object, *, workspace: str | None = None) -> tuple[str, str] | None:
    """``(job name, status)`` of a ``RunStatusChanged`` / ``RunCompleted`` event, in the Event Grid
    schema (``eventType``, ``topic``, ``data.runId``, ``data.runStatus``) or CloudEvents 1.0
    (``type``, ``source``, ``subject``, ``data``); None for other types, other workspaces and
    malformed events. ``RunCompleted`` carries no status: it reports ``Completed``. The event is a
    hint: the caller re-reads the job for its real state and time."""
    if not isinstance(event, dict):
        return None
    kind = event.get("eventType", event.get("type"))
    if not isinstance(kind, str) or kind.lower() not in EVENT_TYPES:
        return None
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    if workspace is not None:
        scope = event.get("topic", event.get("source"))
        found = _WORKSPACE.search(scope) if isinstance(scope, str) else None
        if found is None or found.group(1).lower() != workspace.lower():
            return None
    run_id = data.get("runId")
    if not isinstance(run_id, str) or not run_id:
        subject = event.get("subject")
        match = _SUBJECT_RUN.search(subject) if isinstance(subject, str) else None
        run_id = match.group(1) if match else None
    if not run_id:
        return None
    status = data.get("runStatus")
    if kind.lower().endswith("runcompleted") and not status:
        status = "Completed"
    if not isinstance(status, str) or not status.strip():
        return None
    return run_id, status.strip()


def eventgrid_event_time(event: dict[str, Any]) -> datetime | None:
    """``eventTime`` (Event Grid) or ``time`` (CloudEvents)."""
    return parse_azure_time(event.get("eventTime", event.get("time")))


def parse_azure_time(value: object) -> datetime | None:
    """An ISO 8601 time as Azure writes it (up to 7 fractional digits, which ``fromisoformat``
    refuses past 6), or a datetime; naive times are UTC. None for anything else."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    match = _FRACTION.match(value.strip())
    if match is None:
        return None
    head, fraction, zone = match.groups()
    text = head + (f".{fraction[:6].ljust(6, '0')}" if fraction else "")
    if zone:
        text += "+00:00" if zone.upper() == "Z" else zone
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
