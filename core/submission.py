"""What a submission is checked against before its job is written: the ``Idempotency-Key`` claim
and the earlier job a ``load_checkpoint`` reference points to."""

from __future__ import annotations

import hashlib
import json

from core.errors import InvalidSpecError
from core.model import JobQuery, JobSpec
from core.ports import IdempotencyClaim, JobStore


def idempotency_claim(key: str | None, body: dict[str, object]) -> IdempotencyClaim | None:
    """The claim for ``key`` over the canonical JSON of the validated request: the same key with a
    different body is a different hash."""
    if not key:
        return None
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return IdempotencyClaim(key=key, request_hash=digest)


def resolve_load_checkpoint(store: JobStore, account_id: str, spec: JobSpec) -> str | None:
    """The id of the job whose checkpoints ``spec.load_checkpoint`` names, within the account: the
    job itself, or the newest job of the project that ran with checkpointing on.

    Raises:
        InvalidSpecError: naming ``load_checkpoint.job_id`` or ``load_checkpoint.project``.
    """
    ref = spec.load_checkpoint
    if ref is None:
        return None
    if ref.job_id is not None:
        if store.get(account_id, ref.job_id) is None:
            raise InvalidSpecError.at(("load_checkpoint", "job_id"), f"no job '{ref.job_id}' in this account")
        return ref.job_id
    cursor = None
    while True:
        jobs, cursor = store.list(account_id, JobQuery(project=ref.project, limit=100, cursor=cursor))
        for job in jobs:
            if job.spec.get("checkpointing", {}).get("enabled") and job.started_at is not None:
                return job.id
        if cursor is None:
            raise InvalidSpecError.at(
                ("load_checkpoint", "project"), f"no job in project '{ref.project}' has written checkpoints"
            )
