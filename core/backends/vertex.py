"""The Vertex AI backend: CreateCustomJob / GetCustomJob / CancelCustomJob through
``aiplatform_v1.JobServiceClient`` (REST transport), logs from Cloud Logging ``entries:list`` and
checkpoints from the Cloud Storage JSON API. I/O only; every translation is in ``vertex_map``.

Google libraries are imported on first use. ``client_options`` go to the JobServiceClient
(``api_endpoint`` may be ``http://host:port`` for a local endpoint) except Train's own
``logging_endpoint`` and ``storage_endpoint``. Calls to a plain-http endpoint carry anonymous
credentials; every other call uses Application Default Credentials. Errors become ours in ``vertex_client``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.backends.vertex_client import HTTP_TIMEOUT, CallFailed, GoogleCalls, as_dict
from core.backends.vertex_map import (
    MISSING,
    checkpoint_location,
    custom_job_name,  # re-exported: the functions build native ids with it
    draft_record,
    from_vertex_job,
    from_vertex_log_line,
    from_vertex_state,
    job_filter,
    log_filter,
    parse_custom_job_name,
    parse_timestamp,
    to_vertex_custom_job,
)
from core.errors import FieldError, InvalidRequestError
from core.lifecycle import NativeUpdate
from core.model import Checkpoint, JobRecord, JobSpec, LogLine, LogPage, NativeJobRequest, Submission
from core.ports import SecretStore
from core.secrets.env import build_with, job_env, resolve_env
from core.secrets.masking import secret_scope
from core.stores.cursor import decode_cursor, encode_cursor

LOGGING_ENDPOINT = "https://logging.googleapis.com"
STORAGE_ENDPOINT = "https://storage.googleapis.com"
MAX_LOG_PAGE = 1000  # entries:list pageSize limit
_ENDED = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED",
                    "JOB_STATE_CANCELLING"})

__all__ = ["VertexBackend", "custom_job_name"]


class VertexBackend:
    name = "vertex-ai"

    def __init__(
        self,
        *,
        project: str,
        location: str,
        staging_bucket: str,
        job_prefix: str = "train",
        service_account: str | None = None,
        client_options: dict[str, Any] | None = None,
        secrets: SecretStore | None = None,
    ) -> None:
        self.project = project
        self.secrets = secrets
        self.location = location
        self.staging_bucket = staging_bucket
        self.job_prefix = job_prefix
        self.service_account = service_account
        options = dict(client_options or {})
        self.logging_endpoint = str(options.pop("logging_endpoint", LOGGING_ENDPOINT)).rstrip("/")
        self.storage_endpoint = str(options.pop("storage_endpoint", STORAGE_ENDPOINT)).rstrip("/")
        self._google = GoogleCalls(options)

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    # ---- checks -------------------------------------------------------------------------------

    def check_spec(self, spec: JobSpec) -> None:
        job = draft_record(spec)
        build_with(resolve_env(spec.env, self.secrets), lambda values: self._custom_job(job, values))

    def check_native(self, request: NativeJobRequest) -> None:
        self._custom_job(draft_record(request))

    def _custom_job(self, job: JobRecord, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
        return to_vertex_custom_job(
            job, prefix=self.job_prefix, staging_bucket=self.staging_bucket, service_account=self.service_account,
            secrets=secrets,
        )

    # ---- jobs ---------------------------------------------------------------------------------

    def native_id_for(self, job: JobRecord) -> None:
        return None  # Vertex AI assigns the id; the service records it from the Submission

    def submit(self, job: JobRecord) -> Submission:
        """Vertex AI takes no client job id, so the attempt's job is first looked up by its labels:
        a lost earlier call's job is returned, never created twice. Secret values are read again
        for every call and go into the pools' ``container_spec.env`` only."""
        from google.cloud import aiplatform_v1
        from google.protobuf import json_format

        resolved = resolve_env(job_env(job), self.secrets)
        with secret_scope(resolved.values.values()):
            custom_job = build_with(resolved, lambda values: self._custom_job(job, values))
            found = self._find(job)
            if found is None:
                message = json_format.ParseDict(custom_job, aiplatform_v1.CustomJob.pb()())
                request = aiplatform_v1.CreateCustomJobRequest(parent=self.parent, custom_job=message)
                client = self._google.jobs()
                try:
                    found = as_dict(self._google.call("create", lambda: client.create_custom_job(
                        request=request, retry=None, timeout=HTTP_TIMEOUT)))
                except CallFailed as failed:
                    raise failed.error from failed.cause
        name = str(found["name"])
        return Submission(native_id=name, cloud_job_identifier={"job_name": name},
                          native_status=str(found.get("state") or "") or None)

    def describe(self, job: JobRecord) -> NativeUpdate:
        name = self._name(job)
        found = self._get(name) if name else None
        if found is None:
            reason = f"Vertex AI has no custom job {name or 'for attempt ' + str(job.attempt)}"
            return from_vertex_state(MISSING, event_time=datetime.now(UTC), reason=reason, attempt=job.attempt)
        return from_vertex_job(found, attempt=job.attempt)

    def cancel(self, job: JobRecord) -> None:
        """CancelCustomJob; a job that already ended, is being cancelled or never existed is left alone."""
        from google.api_core import exceptions

        name = self._name(job)
        if not name:
            return
        try:
            client = self._google.jobs()
            self._google.call("cancel", lambda: client.cancel_custom_job(
                name=name, retry=self._google.read_retry(), timeout=HTTP_TIMEOUT))
        except CallFailed as failed:
            if isinstance(failed.cause, exceptions.NotFound):
                return
            if not isinstance(failed.cause, exceptions.FailedPrecondition | exceptions.BadRequest):
                raise failed.error from failed.cause
            current = self._get(name)
            if current is not None and str(current.get("state")) not in _ENDED:
                raise failed.error from failed.cause

    def _get(self, name: str) -> dict[str, Any] | None:
        """The custom job; its pools' env holds secret values, so the SDK's debug records are withheld."""
        from google.api_core import exceptions

        try:
            client = self._google.jobs()
            with secret_scope():
                return as_dict(self._google.call("get", lambda: client.get_custom_job(
                    name=name, retry=self._google.read_retry(), timeout=HTTP_TIMEOUT)))
        except CallFailed as failed:
            if isinstance(failed.cause, exceptions.NotFound):
                return None
            raise failed.error from failed.cause

    def _find(self, job: JobRecord) -> dict[str, Any] | None:
        """The custom job labelled with this attempt (the oldest, should there be several)."""
        from google.cloud import aiplatform_v1

        request = aiplatform_v1.ListCustomJobsRequest(parent=self.parent, filter=job_filter(job.id, job.attempt))
        client = self._google.jobs()
        retry = self._google.read_retry()
        try:
            with secret_scope():
                found = self._google.call("list", lambda: [
                    as_dict(item)  # iterating fetches the later pages
                    for item in client.list_custom_jobs(request=request, retry=retry, timeout=HTTP_TIMEOUT)
                ])
        except CallFailed as failed:
            raise failed.error from failed.cause
        found.sort(key=lambda j: (parse_timestamp(j.get("create_time")) or datetime.max.replace(tzinfo=UTC)))
        return found[0] if found else None

    def _name(self, job: JobRecord) -> str | None:
        name = job.native_id or job.cloud_job_identifier.get("job_name")
        if name:
            return name
        found = self._find(job)
        return str(found["name"]) if found else None

    # ---- logs ---------------------------------------------------------------------------------

    def logs(self, job: JobRecord, *, cursor: str | None, limit: int, since: datetime | None) -> LogPage:
        """Entries of every replica in time order. The cursor holds the timestamp of the last line
        returned (as Cloud Logging wrote it) and the insertIds already given at that timestamp."""
        name = self._name(job)
        parsed = parse_custom_job_name(name or "")
        if parsed is None:
            return LogPage(lines=[], next_cursor=cursor)
        start, seen = _decode_log_cursor(cursor, parsed[2])
        since = parse_timestamp(since)
        if since is not None:
            start_time = parse_timestamp(start)
            if start_time is None or since > start_time:
                start, seen = since.isoformat().replace("+00:00", "Z"), set()
        limit = max(1, min(limit, MAX_LOG_PAGE))
        body: dict[str, Any] = {
            "resourceNames": [f"projects/{parsed[0]}"], "filter": log_filter(parsed[2], start),
            "orderBy": "timestamp asc", "pageSize": min(MAX_LOG_PAGE, limit + len(seen)),
        }
        picked: list[tuple[str, str, LogLine]] = []
        while len(picked) < limit:
            answer = self._google.rest("Cloud Logging", "POST", f"{self.logging_endpoint}/v2/entries:list",
                                       json_body=body)
            for entry in answer.get("entries", []):
                stamp, insert_id = str(entry.get("timestamp", "")), str(entry.get("insertId", ""))
                line = from_vertex_log_line(entry)
                if line is None or (stamp == start and insert_id in seen) or len(picked) >= limit:
                    continue
                picked.append((stamp, insert_id, line))
            token = answer.get("nextPageToken")
            if not token:
                break
            body["pageToken"] = token
        if picked:
            last = picked[-1][0]
            ids = {i for s, i, _ in picked if s == last} | (seen if last == start else set())
            start, seen = last, ids
        next_cursor = encode_cursor({"job": parsed[2], "t": start or "", "ids": json.dumps(sorted(seen))})
        return LogPage(lines=[line for _, _, line in picked], next_cursor=next_cursor)

    # ---- checkpoints --------------------------------------------------------------------------

    def checkpoints(self, job: JobRecord) -> list[Checkpoint]:
        """Top-level entries under the attempt's ``checkpoints/`` prefix, oldest first; a
        "directory" counts the size of everything under it and its newest time."""
        bucket, prefix = checkpoint_location(job, prefix=self.job_prefix, staging_bucket=self.staging_bucket)
        found: dict[str, tuple[int, datetime, bool]] = {}
        params: dict[str, str] = {"prefix": prefix}
        url = f"{self.storage_endpoint}/storage/v1/b/{bucket}/o"
        while True:
            answer = self._google.rest("Cloud Storage", "GET", url, params=params, missing_ok=True)
            for item in answer.get("items", []):
                rest = str(item.get("name", ""))[len(prefix):]
                if not rest:
                    continue
                top, slash, _ = rest.partition("/")
                size, when, _ = found.get(top, (0, datetime.min.replace(tzinfo=UTC), False))
                modified = parse_timestamp(item.get("updated")) or when
                found[top] = (size + int(item.get("size", 0) or 0), max(when, modified), bool(slash))
            token = answer.get("nextPageToken")
            if not token:
                break
            params["pageToken"] = str(token)
        out = [
            Checkpoint(name=top, uri=f"gs://{bucket}/{prefix}{top}" + ("/" if is_dir else ""), size_bytes=size,
                       modified_at=when)
            for top, (size, when, is_dir) in found.items()
        ]
        return sorted(out, key=lambda c: (c.modified_at, c.name))


def _decode_log_cursor(cursor: str | None, vertex_job_id: str) -> tuple[str | None, set[str]]:
    if not cursor:
        return None, set()
    position = decode_cursor(cursor, keys=("ids", "job", "t"))
    if position["job"] != vertex_job_id:
        return None, set()  # a cursor of an earlier attempt: start this attempt's logs from the top
    try:
        ids = json.loads(str(position["ids"]))
    except ValueError:
        ids = None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InvalidRequestError("cursor is not one this API returned", errors=[FieldError(("cursor",), "invalid")])
    return str(position["t"]) or None, set(ids)

