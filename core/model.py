"""The portable job spec (SPEC §4), the SGP-style native request, and the job record (SPEC §3).

The same models validate requests and generate ``/openapi.json``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from core.durations import Duration
from core.lifecycle import ACTIVE, Status

Backend = Literal["sagemaker", "vertex-ai", "azure-ml", "local"]
BACKENDS: tuple[str, ...] = ("sagemaker", "vertex-ai", "azure-ml", "local")
Accelerator = Literal["T4", "L4", "A10G", "L40S", "A100", "A100_80GB", "H100", "H200", "B200", "none"]

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV = re.compile(r"^(STORAGE_MOUNT_|TRAIN_)")
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
MOUNT_SCHEMES = ("s3", "gs", "azureml", "file")
MAX_ENV = 100
MAX_LIST = 256

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63, examples=["mnist"])]


def job_type(backend: str) -> str:
    return backend.replace("-", "_")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_source_uri(value: str) -> str:
    if "://" in value:
        scheme, _, rest = value.partition("://")
        if scheme not in MOUNT_SCHEMES:
            raise ValueError(f"unknown scheme '{scheme}://'; use s3://, gs://, azureml://, file:// or an absolute path")
        if not rest or (scheme != "file" and rest.startswith("/")):
            raise ValueError(f"'{value}' names no bucket or datastore")
        if scheme == "file" and not rest.startswith("/"):
            raise ValueError("file:// URIs take an absolute path, e.g. file:///data/mnist")
        return value
    if value.startswith("/"):
        return value
    raise ValueError("plain paths must be absolute (the CLI resolves relative ones against the spec file)")


def _check_abs_path(value: str) -> str:
    if not value.startswith("/") or "\0" in value:
        raise ValueError("must be an absolute path")
    return value


class StorageMount(StrictModel):
    source_uri: Annotated[str, AfterValidator(_check_source_uri), Field(min_length=1, max_length=1024)]
    mount_path: Annotated[str, AfterValidator(_check_abs_path), Field(max_length=512)] | None = None
    read_only: bool = False

    @property
    def scheme(self) -> str:
        return self.source_uri.partition("://")[0] if "://" in self.source_uri else "path"


class SecretRef(StrictModel):
    """An env value taken from the deployment's secret store at submission; never stored or shown."""

    secret: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-/]{1,256}$")]


EnvValue = Annotated[str, Field(max_length=32768)] | SecretRef


class Compute(StrictModel):
    accelerator: Accelerator = "none"
    accelerators_per_node: Annotated[int, Field(ge=0, le=16)] | None = None
    nodes: Annotated[int, Field(ge=1, le=256)] = 1
    instance_type: Annotated[str, Field(min_length=1, max_length=128)] | None = None

    @property
    def gpus_per_node(self) -> int:
        if self.accelerator == "none":
            return 0
        return 1 if self.accelerators_per_node is None else self.accelerators_per_node

    @model_validator(mode="after")
    def _count_matches_type(self) -> Compute:
        if self.accelerator == "none" and self.accelerators_per_node:
            raise ValueError("accelerators_per_node needs an accelerator")
        if self.accelerator != "none" and self.accelerators_per_node == 0:
            raise ValueError("accelerators_per_node must be at least 1 with an accelerator")
        return self


class Checkpointing(StrictModel):
    enabled: bool = False


class LoadCheckpoint(StrictModel):
    job_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    project: Name | None = None
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,255}$")] = "latest"

    @model_validator(mode="after")
    def _one_source(self) -> LoadCheckpoint:
        if (self.job_id is None) == (self.project is None):
            raise ValueError("give exactly one of job_id or project")
        return self


class Spot(StrictModel):
    enabled: bool = False
    max_wait: Duration | None = None


class Retries(StrictModel):
    on_preemption: Annotated[int, Field(ge=0, le=20)] = 0


class Notify(StrictModel):
    url: HttpUrl
    on: list[Status] = Field(default_factory=lambda: [Status.COMPLETED, Status.FAILED])


def _check_env_name(key: str) -> str:
    if not ENV_NAME.match(key):
        raise ValueError(f"'{key}' is not a valid variable name")
    if RESERVED_ENV.match(key):
        raise ValueError(f"'{key}' collides with a variable Train sets (STORAGE_MOUNT_*, TRAIN_*)")
    return key


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > 32:
        raise ValueError("at most 32 labels")
    for key, value in labels.items():
        if not LABEL_KEY.match(key):
            raise ValueError(f"label key '{key}' must match [a-z][a-z0-9_-]{{0,62}}")
        if not LABEL_VALUE.match(value):
            raise ValueError(f"label value '{value}' must match [a-z0-9_-]{{0,63}}")
    return labels


Env = Annotated[
    dict[Annotated[str, AfterValidator(_check_env_name), Field(max_length=256)], EnvValue], Field(max_length=MAX_ENV)
]
Labels = Annotated[dict[str, str], AfterValidator(_check_labels)]
Args = Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=MAX_LIST)]


class JobSpec(StrictModel):
    """The portable job spec: one shape for every backend."""

    name: Name
    project: Name = "default"
    backend: Backend
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    command: Annotated[Args, Field(min_length=1)] | None = None
    start_commands: Annotated[Args, Field(min_length=1)] | None = None
    args: Args = Field(default_factory=list)
    env: Env = Field(default_factory=dict)
    compute: Compute = Field(default_factory=Compute)
    storage_mounts: Annotated[list[StorageMount], Field(max_length=32)] = Field(default_factory=list)
    checkpointing: Checkpointing = Field(default_factory=Checkpointing)
    load_checkpoint: LoadCheckpoint | None = None
    max_runtime: Duration | None = None
    max_pending: Duration | None = None
    spot: Spot = Field(default_factory=Spot)
    retries: Retries = Field(default_factory=Retries)
    labels: Labels = Field(default_factory=dict)
    notify: Notify | None = None
    backend_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_entrypoint(self) -> JobSpec:
        if (self.command is None) == (self.start_commands is None):
            raise ValueError("give exactly one of command or start_commands")
        if self.start_commands is not None and self.args:
            raise ValueError("args go with command; put them in the last of start_commands")
        paths = [m.mount_path for m in self.storage_mounts if m.mount_path]
        if len(paths) != len(set(paths)):
            raise ValueError("storage_mounts: two mounts share a mount_path")
        return self

    def entrypoint(self) -> list[str]:
        """The argv to run: ``command + args``, or the start commands chained in one shell."""
        if self.command is not None:
            return [*self.command, *self.args]
        return ["/bin/sh", "-c", " && ".join(self.start_commands or [])]


class SubmitRequest(JobSpec):
    """``POST /v1/jobs``: a portable spec."""


class NativeJobRequest(StrictModel):
    """``POST /v1/{backend}/jobs``: the SGP Train shape; ``job_config`` mirrors the backend's own
    job API in snake_case and is validated by the backend adapter."""

    name: Name
    project: Name = "default"
    job_config: dict[str, Any]
    storage_mounts: Annotated[list[StorageMount], Field(max_length=32)] = Field(default_factory=list)
    labels: Labels = Field(default_factory=dict)

    @field_validator("job_config")
    @classmethod
    def _not_empty(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("job_config may not be empty")
        return value


class ImageRef(BaseModel):
    """``resolved`` is the digest the tag named at submission; ``replicated`` the copy in the
    backend's own registry that the native job runs (set once it is submitted)."""

    requested: str | None = None
    resolved: str | None = None
    replicated: str | None = None


class JobEvent(BaseModel):
    """One line of a job's history: a transition, or an update that was ignored and why."""

    at: datetime
    kind: Literal["transition", "refresh", "ignored", "note"]
    status: Status
    native_status: str | None = None
    reason: str | None = None
    event_time: datetime | None = None
    attempt: int = 1


MAX_IGNORED_EVENTS = 50
MAX_OUTBOX = 20


class Delivery(BaseModel):
    """A webhook notification of one transition, waiting in the job's outbox until the receiver
    answers 2xx. Stored in the same conditional write as the transition (at least once); ``id``
    stays the same across retries so the receiver can drop duplicates."""

    id: str
    status: Status
    previous_status: Status
    status_reason: str | None = None
    attempt: int
    occurred_at: datetime
    tries: int = 0
    next_at: datetime
    last_error: str | None = None


class PreviousAttempt(BaseModel):
    """An attempt whose native job was preempted and replaced by a new attempt."""

    attempt: int
    native_id: str | None = None
    cloud_job_identifier: dict[str, str] = Field(default_factory=dict)
    native_status: str | None = None
    reason: str | None = None
    ended_at: datetime


class JobRecord(BaseModel):
    """A job as stored. ``version`` guards every conditional write."""

    model_config = ConfigDict(extra="ignore")

    id: str
    account_id: str
    name: str
    project: str
    backend: str
    status: Status = Status.PENDING
    status_reason: str | None = None
    native_status: str | None = None
    native_time: datetime | None = None
    attempt: int = 1
    native_id: str | None = None
    cloud_job_identifier: dict[str, str] = Field(default_factory=dict)
    image: ImageRef = Field(default_factory=ImageRef)
    storage_mounts: list[StorageMount] = Field(default_factory=list)
    spec: dict[str, Any] = Field(default_factory=dict)
    native_request: dict[str, Any] | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    version: int = 1
    cancel_requested_at: datetime | None = None
    submit_claimed_at: datetime | None = None
    load_checkpoint_job_id: str | None = None
    events: list[JobEvent] = Field(default_factory=list)
    ignored_updates: int = 0
    outbox: list[Delivery] = Field(default_factory=list)
    previous_attempts: list[PreviousAttempt] = Field(default_factory=list)

    @property
    def needs_sweep(self) -> bool:
        """Whether the stores' sparse active index holds the job: while it is non-terminal, and
        after that while webhook deliveries wait in its outbox (the sweeper retries them)."""
        return self.status in ACTIVE or bool(self.outbox)

    @property
    def portable_spec(self) -> JobSpec | None:
        return JobSpec.model_validate(self.spec) if self.native_request is None else None

    @property
    def job_type(self) -> str:
        return job_type(self.backend)


class JobOut(BaseModel):
    """A job as the API returns it."""

    id: str
    name: str
    account_id: str
    project: str
    backend: str
    job_type: str
    status: Status
    status_reason: str | None
    native_status: str | None
    attempt: int
    cloud_job_identifier: dict[str, str]
    image: ImageRef
    storage_mounts: list[StorageMount]
    spec: dict[str, Any]
    labels: dict[str, str]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def of(cls, job: JobRecord) -> JobOut:
        spec = job.spec if job.native_request is None else {"job_config": job.native_request.get("job_config", {})}
        return cls(
            **job.model_dump(include=set(cls.model_fields) - {"job_type", "spec"}),
            job_type=job.job_type,
            spec=spec,
        )


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = None


class EventsOut(BaseModel):
    job_id: str
    status: Status
    ignored_updates: int
    events: list[JobEvent]


class LogLine(BaseModel):
    time: datetime
    stream: str = "stdout"
    message: str
    source: str | None = None  # host or node, where the backend has several


class LogPage(BaseModel):
    lines: list[LogLine]
    next_cursor: str | None = None


class Checkpoint(BaseModel):
    name: str
    uri: str
    size_bytes: int
    modified_at: datetime


class CheckpointsOut(BaseModel):
    job_id: str
    checkpoints: list[Checkpoint]


class JobQuery(BaseModel):
    """Filters and paging for listing an account's jobs, newest first."""

    status: list[Status] | None = None
    backend: str | None = None
    project: str | None = None
    name: str | None = None
    limit: int = 20
    cursor: str | None = None


class Submission(BaseModel):
    """What a backend returns once its native job exists."""

    native_id: str
    cloud_job_identifier: dict[str, str]
    native_status: str | None = None


class ApiKey(BaseModel):
    """An API key as stored: the secret only as a hash."""

    key_id: str
    secret_hash: str
    account_ids: list[str]
    label: str | None = None
    created_at: datetime
    revoked_at: datetime | None = None
