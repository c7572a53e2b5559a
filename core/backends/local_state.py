"""Pure translation for the local backend: native process states to Train statuses, and the
job environment of SPEC §5. No I/O here; ``local.py`` does the process work.

Native states of a local job:

| native | when | Train |
| --- | --- | --- |
| Starting | the launcher is being started | PENDING |
| Running | the launcher (and the user's process) is alive | IN_PROGRESS |
| Succeeded | the process exited 0 and nobody stopped it | COMPLETED |
| Failed | non-zero exit, a signal Train did not send, or it could not start | FAILED |
| Stopped | Train stopped it: cause Canceled → CANCELED, MaxRuntimeExceeded → EXPIRED | |
| Lost | no process and no exit record (it died while the server was down) | FAILED |
| Preempted | killed with a ``preempt`` marker written: a spot interruption (``preempt()``) | FAILED, preempted |
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from core.lifecycle import NativeUpdate, Status

CANCELED = "Canceled"
MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
LOST_REASON = "the process was lost while the server was down"

LOCAL_STATES: dict[str, Status] = {
    "Starting": Status.PENDING,
    "Running": Status.IN_PROGRESS,
    "Succeeded": Status.COMPLETED,
    "Failed": Status.FAILED,
    "Lost": Status.FAILED,
    "Preempted": Status.FAILED,
}
PREEMPTED_REASON = "preempted: the capacity was taken back"

STOP_CAUSES: dict[str, tuple[Status, str]] = {
    CANCELED: (Status.CANCELED, "canceled"),
    MAX_RUNTIME_EXCEEDED: (Status.EXPIRED, "max_runtime exceeded"),
}


def from_local_state(
    native_status: str,
    event_time: datetime,
    *,
    attempt: int | None = None,
    reason: str | None = None,
    stop_cause: str | None = None,
) -> NativeUpdate:
    """Map a native state to an update. ``Stopped`` takes its status from ``stop_cause``; a cause
    Train does not know leaves the status unknown (logged, unchanged), like any unknown state."""
    if native_status == "Stopped":
        status, default_reason = STOP_CAUSES.get(stop_cause or "", (None, f"stopped: {stop_cause}"))
        return NativeUpdate(native_status, status, event_time, reason or default_reason, attempt)
    if native_status == "Lost":
        reason = reason or LOST_REASON
    preempted = native_status == "Preempted"
    if preempted:
        reason = reason or PREEMPTED_REASON
    return NativeUpdate(native_status, LOCAL_STATES.get(native_status), event_time, reason, attempt, preempted)


def from_local_exit(exit_info: Mapping[str, Any], *, attempt: int | None = None) -> NativeUpdate:
    """Map the launcher's ``exit.json`` (``exit_code``, ``signal``, ``stop_cause``, ``ended_at``,
    ``error`` when the command could not start, ``lost`` when the backend found the launcher gone
    without an exit record, ``preempted`` when it was killed as a spot interruption) to the job's
    final update."""
    ended = parse_time(exit_info.get("ended_at"))
    if exit_info.get("preempted"):
        return from_local_state("Preempted", ended, attempt=attempt)
    if exit_info.get("lost"):
        return from_local_state("Lost", ended, attempt=attempt)
    cause = exit_info.get("stop_cause")
    if cause:
        return from_local_state("Stopped", ended, attempt=attempt, stop_cause=str(cause))
    error = exit_info.get("error")
    if error:
        return from_local_state("Failed", ended, attempt=attempt, reason=str(error))
    code = exit_info.get("exit_code")
    signal = exit_info.get("signal")
    if code == 0 and not signal:
        return from_local_state("Succeeded", ended, attempt=attempt)
    if signal:
        return from_local_state("Failed", ended, attempt=attempt, reason=f"killed by signal {signal}")
    return from_local_state("Failed", ended, attempt=attempt, reason=f"exit code {code}")


def parse_time(value: object) -> datetime:
    """An ISO 8601 time from a file we wrote; a missing or unreadable one is now."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return datetime.now(UTC)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)


def mount_local_path(source_uri: str) -> str | None:
    """The local path of a ``file://`` URI or plain absolute path; None for a cloud scheme."""
    if source_uri.startswith("file://"):
        return unquote(source_uri[len("file://"):])
    if "://" in source_uri:
        return None
    return source_uri


def identity_env(
    *, job_id: str, name: str, project: str, attempt: int, gpus_per_node: int, mount_paths: list[str]
) -> dict[str, str]:
    """The SPEC §5 variables a local job gets (one node, the leader is this machine)."""
    env = {f"STORAGE_MOUNT_{n}_PATH": path for n, path in enumerate(mount_paths)}
    env.update(
        TRAIN_JOB_ID=job_id,
        TRAIN_JOB_NAME=name,
        TRAIN_PROJECT=project,
        TRAIN_ATTEMPT=str(attempt),
        TRAIN_NUM_NODES="1",
        TRAIN_NODE_RANK="0",
        TRAIN_LEADER_ADDR="127.0.0.1",
        TRAIN_GPUS_PER_NODE=str(gpus_per_node),
    )
    return env


def inherited_env(parent: Mapping[str, str]) -> dict[str, str]:
    """The server's environment minus Train's own reserved names, which carry the server's
    configuration (store, keys) and would shadow the job's identity variables."""
    return {k: v for k, v in parent.items() if not k.startswith(("TRAIN_", "STORAGE_MOUNT_"))}
