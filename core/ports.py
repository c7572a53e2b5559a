"""The ports the service is written against. Adapters implement them without inheriting.

Every store adapter passes ``tests/contract/test_job_store.py``; no SDK type crosses a port.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.lifecycle import NativeUpdate, Status
from core.model import ApiKey, Checkpoint, JobQuery, JobRecord, JobSpec, LogPage, NativeJobRequest, Submission


@dataclass(frozen=True)
class IdempotencyClaim:
    """An ``Idempotency-Key`` and the hash of the request body it was first used with."""

    key: str
    request_hash: str


JobPage = tuple[list[JobRecord], str | None]  # named here: a method called `list` shadows the builtin


class JobStore(Protocol):
    """Job records partitioned by account, with a sparse index of non-terminal jobs and a lookup
    from a backend's native job id to our job."""

    def create(self, job: JobRecord, idempotency: IdempotencyClaim | None = None) -> tuple[JobRecord, bool]:
        """Store a new job, atomically with its idempotency claim.

        Returns:
            ``(job, True)`` when stored; ``(first_job, False)`` when the claim's key was already
            used in this account with the same request hash.

        Raises:
            IdempotencyMismatchError: the key was used with a different request hash.
        """
        ...

    def get(self, account_id: str, job_id: str) -> JobRecord | None:
        """The job, or None if it does not exist in that account."""
        ...

    def update(self, job: JobRecord, *, expected_version: int, expected_status: Status) -> JobRecord:
        """Replace the stored job if it still has ``expected_version`` and ``expected_status``.

        The stored copy gets ``version = expected_version + 1``; the native-id lookup and the
        active index follow ``job.native_id`` and ``job.status``.

        Raises:
            VersionConflictError: the job changed (or vanished) since it was read.
        """
        ...

    def list(self, account_id: str, query: JobQuery) -> JobPage:
        """One page of the account's jobs, newest first, and the cursor of the next page."""
        ...

    def list_active(self, *, limit: int = 100, cursor: str | None = None) -> JobPage:
        """One page of non-terminal jobs across accounts, read through the sparse index only."""
        ...

    def find_by_native_id(self, backend: str, native_id: str) -> JobRecord | None:
        """The job whose current attempt runs as ``native_id`` on ``backend``."""
        ...


KeyList = list[ApiKey]


class KeyStore(Protocol):
    """API keys, stored hashed."""

    def put_key(self, key: ApiKey) -> None: ...

    def get_key(self, key_id: str) -> ApiKey | None: ...

    def list_keys(self, account_id: str | None = None) -> KeyList: ...

    def revoke_key(self, key_id: str, at: datetime) -> bool:
        """Mark the key revoked; False if there is no such key."""
        ...


class TrainingBackend(Protocol):
    """One product that runs training jobs (SageMaker, Vertex AI, Azure ML, this machine)."""

    name: str

    def check_spec(self, spec: JobSpec) -> None:
        """Refuse, before any cloud call, what this backend cannot run.

        Raises:
            InvalidSpecError: naming each field and the reason.
        """
        ...

    def check_native(self, request: NativeJobRequest) -> None:
        """Validate a native ``job_config`` (merged with Train's own fields) without calling out.

        Raises:
            InvalidSpecError: naming each field under ``job_config``.
        """
        ...

    def native_id_for(self, job: JobRecord) -> str | None:
        """The native job id this attempt will run as, when the backend lets us choose it
        (deterministic names); None when the backend assigns ids itself. The service records it
        before the create call so that an event racing the create still finds the job."""
        ...

    def submit(self, job: JobRecord) -> Submission:
        """Create the native job for ``job``'s current attempt.

        Idempotent per (job, attempt): a retried call finds the native job a lost earlier call
        created and returns it, never a second one.
        """
        ...

    def describe(self, job: JobRecord) -> NativeUpdate:
        """Read the native job's current state (used by the sweeper when events may be lost)."""
        ...

    def cancel(self, job: JobRecord) -> None:
        """Ask the native job to stop. Idempotent; the job ends when the backend confirms."""
        ...

    def logs(self, job: JobRecord, *, cursor: str | None, limit: int, since: datetime | None) -> LogPage: ...

    def checkpoints(self, job: JobRecord) -> list[Checkpoint]: ...


@dataclass(frozen=True)
class Pinned:
    """An image reference as the user gave it and the digest it named at submission."""

    requested: str
    resolved: str  # <registry>/<repository>@sha256:...


class ImageRegistry(Protocol):
    """Pins image references to digests and copies images to the registry a backend pulls from."""

    def resolve(self, account_id: str, ref: str) -> Pinned | None:
        """Pin ``ref`` to the digest of its linux/amd64 manifest.

        Returns:
            None when ``ref`` lives in a registry this deployment does not resolve.

        Raises:
            InvalidSpecError: (422, naming ``image``) malformed, missing, outside the account's
                namespace, or a manifest type Train cannot run.
            RegistryError: (502, naming the registry) unreachable or failing after retries.
        """
        ...

    def replicate(self, pinned: Pinned, backend: str) -> str:
        """Copy the pinned image to ``backend``'s registry when it is not there yet.

        Returns:
            The reference the native job runs, ``<cloud-registry>/<repo>@sha256:...`` (or
            ``pinned.resolved`` when the backend pulls from the source itself).
        """
        ...


class SecretStore(Protocol):
    """Where ``{secret: name}`` env values live (AWS Secrets Manager, GCP Secret Manager, Azure Key
    Vault, files in local mode). Values are read right before each native submit and never kept."""

    def resolve(self, name: str) -> str:
        """The current value of secret ``name``.

        Raises:
            InvalidSpecError: (422) no such secret, or this deployment may not read it; the caller
                names the env field.
            UnavailableError: (503, retryable) the store cannot be reached or is throttling.
        """
        ...


class Notifier(Protocol):
    """Sends a job's webhook deliveries (``notify``), signed with the deployment's secret."""

    def send(self, url: str, delivery_id: str, body: bytes) -> None:
        """POST ``body`` to ``url`` once.

        Raises:
            DeliveryError: the receiver did not answer 2xx (a redirect, an error status, a timeout,
                or a target this deployment may not reach); the outbox tries again later.
        """
        ...


class Clock(Protocol):
    def __call__(self) -> datetime: ...
