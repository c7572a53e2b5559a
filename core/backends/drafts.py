"""Stand-in job records for checking a submission before the service has created the job: each
cloud backend runs its real translation on one, so ``check_spec`` and ``submit`` cannot disagree."""

from __future__ import annotations

from datetime import UTC, datetime

from core.ids import new_id
from core.model import ImageRef, JobRecord, JobSpec, NativeJobRequest


def draft_record(source: JobSpec | NativeJobRequest, backend: str) -> JobRecord:
    """A job as the service would store it for ``source``, with a made-up id of the real length."""
    now = datetime.now(UTC)
    spec = source if isinstance(source, JobSpec) else None
    load_from = None
    if spec is not None and spec.load_checkpoint is not None:
        load_from = spec.load_checkpoint.job_id or new_id(0)
    return JobRecord(
        id=new_id(0), account_id="check", name=source.name, project=source.project, backend=backend,
        storage_mounts=list(source.storage_mounts), labels=dict(source.labels),
        spec=spec.model_dump(mode="json") if spec is not None else {},
        native_request=None if spec is not None else source.model_dump(mode="json"),
        image=ImageRef(requested=spec.image if spec is not None else None), created_at=now, updated_at=now,
        load_checkpoint_job_id=load_from,
    )
