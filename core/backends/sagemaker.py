"""The SageMaker backend: CreateTrainingJob / DescribeTrainingJob / StopTrainingJob, logs from
CloudWatch Logs and checkpoints from S3. I/O only; every translation is in ``sagemaker_map``.

boto3 is imported on first use. Endpoints and credentials come from the environment the way
boto3 reads them (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_SAGEMAKER``, ``AWS_ENDPOINT_URL_S3``,
``AWS_ENDPOINT_URL_CLOUDWATCH_LOGS``, ``AWS_MAX_ATTEMPTS``...). botocore errors become ours here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from core.backends.sagemaker_map import (
    MISSING,
    draft_record,
    from_sagemaker_job,
    from_sagemaker_state,
    to_sagemaker_request,
    training_job_name,
)
from core.errors import BackendError, FieldError, InvalidRequestError, TrainError, UnavailableError
from core.lifecycle import NativeUpdate
from core.model import Checkpoint, JobRecord, JobSpec, LogLine, LogPage, NativeJobRequest, Submission
from core.ports import SecretStore
from core.secrets.env import build_with, job_env, resolve_env
from core.secrets.masking import secret_scope
from core.stores.cursor import decode_cursor, encode_cursor

LOG_GROUP = "/aws/sagemaker/TrainingJobs"  # one stream per host: <job name>/algo-<n>-<epoch seconds>
MAX_LOG_EVENTS = 10000  # GetLogEvents limit
# Codes after which a later retry can succeed (besides every 5xx).
_RETRYABLE = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "SlowDown", "ServiceUnavailable", "InternalFailure", "InternalServerError", "RequestTimeout",
})
_NOT_FOUND = frozenset({"ResourceNotFound", "ResourceNotFoundException", "NoSuchKey"})
_SERVICES = {"sagemaker": "SageMaker", "logs": "CloudWatch Logs", "s3": "S3"}
_ENDED = frozenset({"Completed", "Failed", "Stopped", "Stopping"})


class SageMakerBackend:
    name = "sagemaker"

    def __init__(
        self,
        *,
        role_arn: str,
        output_s3_uri: str,
        job_prefix: str = "train",
        region: str | None = None,
        session_factory: Callable[[], Any] | None = None,
        secrets: SecretStore | None = None,
    ) -> None:
        self.role_arn = role_arn
        self.output_s3_uri = output_s3_uri.rstrip("/")
        self.job_prefix = job_prefix
        self.region = region
        self._session_factory = session_factory
        self.secrets = secrets
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    # ---- checks -------------------------------------------------------------------------------

    def check_spec(self, spec: JobSpec) -> None:
        job = draft_record(spec)
        build_with(resolve_env(spec.env, self.secrets), lambda values: self._request(job, values))

    def check_native(self, request: NativeJobRequest) -> None:
        self._request(draft_record(request))

    def _request(self, job: JobRecord, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
        return to_sagemaker_request(
            job, role_arn=self.role_arn, output_s3_uri=self.output_s3_uri, prefix=self.job_prefix, secrets=secrets
        )

    # ---- jobs ---------------------------------------------------------------------------------

    def native_id_for(self, job: JobRecord) -> str:
        return training_job_name(self.job_prefix, job.id, job.attempt)

    def submit(self, job: JobRecord) -> Submission:
        """A ``ResourceInUse`` answer means an earlier call for this attempt created the job: it is
        described and returned, never created twice. Secret values are read again for every call
        and go into ``Environment`` only."""
        from botocore.exceptions import ClientError

        name = self.native_id_for(job)
        resolved = resolve_env(job_env(job), self.secrets)
        with secret_scope(resolved.values.values()):
            request = build_with(resolved, lambda values: self._request(job, values))
            try:
                arn = str(self._call("sagemaker", "create_training_job", **request)["TrainingJobArn"])
                status = None
            except _Failed as failed:
                if not isinstance(failed.cause, ClientError) or _code(failed.cause) != "ResourceInUse":
                    raise failed.error from failed.cause
                described = self._describe(name)
                arn, status = str(described["TrainingJobArn"]), from_sagemaker_job(described).native_status
        return Submission(native_id=name, cloud_job_identifier={"job_name": name, "job_arn": arn}, native_status=status)

    def describe(self, job: JobRecord) -> NativeUpdate:
        name = self._name(job)
        try:
            described = self._describe(name)
        except _Gone:
            reason = f"SageMaker has no training job {name}"
            return from_sagemaker_state(MISSING, None, event_time=datetime.now(UTC), reason=reason, attempt=job.attempt)
        return from_sagemaker_job(described, attempt=job.attempt)

    def cancel(self, job: JobRecord) -> None:
        """StopTrainingJob; a job that already ended (or is stopping, or never existed) is left alone."""
        name = self._name(job)
        try:
            self._call("sagemaker", "stop_training_job", TrainingJobName=name)
        except _Failed as failed:
            code = _code(failed.cause)
            if code in _NOT_FOUND:
                return
            if code != "ValidationException":
                raise failed.error from failed.cause
            try:
                status = str(self._describe(name).get("TrainingJobStatus"))
            except _Gone:
                return
            if status not in _ENDED:
                raise failed.error from failed.cause

    def _describe(self, name: str) -> dict[str, Any]:
        """The job as SageMaker describes it. Its ``Environment`` holds secret values: the SDK's
        debug records of the call are withheld."""
        try:
            with secret_scope():
                return dict(self._call("sagemaker", "describe_training_job", TrainingJobName=name))
        except _Failed as failed:
            if _code(failed.cause) in _NOT_FOUND or "not found" in _message(failed.cause).lower():
                raise _Gone(name) from failed.cause
            raise failed.error from failed.cause

    def _name(self, job: JobRecord) -> str:
        return job.native_id or self.native_id_for(job)

    # ---- logs ---------------------------------------------------------------------------------

    def logs(self, job: JobRecord, *, cursor: str | None, limit: int, since: datetime | None) -> LogPage:
        """Lines of every host's stream merged by time. The cursor holds the time of the last line
        returned and how many lines at that very millisecond each stream has already given."""
        name = self._name(job)
        start, seen = _decode_log_cursor(cursor, name)
        if since is not None and _ms(since) > start:
            start, seen = _ms(since), {}
        limit = max(1, min(limit, MAX_LOG_EVENTS))
        events: list[tuple[int, str, str]] = []
        for stream in self._log_streams(name):
            skip = seen.get(stream, 0)
            for timestamp, message in self._stream_events(stream, start, limit + skip):
                if skip and timestamp == start:
                    skip -= 1
                    continue
                events.append((timestamp, stream, message))
        events.sort(key=lambda e: (e[0], e[1]))  # stable: a stream's own order is kept within a millisecond
        page = events[:limit]
        if page:
            last = page[-1][0]
            counts = dict(seen) if last == start else {}
            for timestamp, stream, _ in page:
                if timestamp == last:
                    counts[stream] = counts.get(stream, 0) + 1
            start, seen = last, counts
        lines = [
            LogLine(time=datetime.fromtimestamp(t / 1000, UTC), message=m.rstrip("\r\n"), source=_host(s, name))
            for t, s, m in page
        ]
        next_cursor = encode_cursor({"job": name, "t": start, "seen": json.dumps(seen, sort_keys=True)})
        return LogPage(lines=lines, next_cursor=next_cursor)

    def _log_streams(self, name: str) -> list[str]:
        streams: list[str] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": name + "/"}
            if token:
                params["nextToken"] = token
            try:
                answer = self._call("logs", "describe_log_streams", **params)
            except _Failed as failed:
                if _code(failed.cause) in _NOT_FOUND:
                    return streams  # no job has logged in this account and region yet
                raise failed.error from failed.cause
            streams += [str(s["logStreamName"]) for s in answer.get("logStreams", [])]
            token = answer.get("nextToken")
            if not token:
                return sorted(streams)

    def _stream_events(self, stream: str, start: int, need: int) -> Iterator[tuple[int, str]]:
        """Up to ``need`` events of ``stream`` from ``start`` (ms) on, oldest first. GetLogEvents
        may answer with empty pages before the end; the end is a forward token seen twice."""
        token: str | None = None
        given = 0
        while given < need:
            params: dict[str, Any] = {
                "logGroupName": LOG_GROUP, "logStreamName": stream, "startTime": start, "startFromHead": True,
                "limit": min(need - given, MAX_LOG_EVENTS),
            }
            if token:
                params["nextToken"] = token
            answer = self._call_or_raise("logs", "get_log_events", **params)
            for event in answer.get("events", []):
                if given < need:
                    given += 1
                    yield int(event["timestamp"]), str(event.get("message", ""))
            following = answer.get("nextForwardToken")
            if not following or following == token:
                return
            token = following

    # ---- checkpoints --------------------------------------------------------------------------

    def checkpoints(self, job: JobRecord) -> list[Checkpoint]:
        """Top-level entries under the job's checkpoint prefix, oldest first; a "directory" counts
        the size of everything under it and its newest time."""
        bucket, _, key = f"{self.output_s3_uri}/{job.id}/checkpoints/".removeprefix("s3://").partition("/")
        found: dict[str, tuple[int, datetime, bool]] = {}
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": bucket, "Prefix": key}
            if token:
                params["ContinuationToken"] = token
            answer = self._call_or_raise("s3", "list_objects_v2", **params)
            for item in answer.get("Contents", []):
                rest = str(item["Key"])[len(key):]
                if not rest:
                    continue
                top, slash, _ = rest.partition("/")
                size, when, _ = found.get(top, (0, datetime.min.replace(tzinfo=UTC), False))
                modified = item["LastModified"]
                found[top] = (size + int(item.get("Size", 0)), max(when, modified), bool(slash))
            token = answer.get("NextContinuationToken")
            if not answer.get("IsTruncated") or not token:
                break
        out = [
            Checkpoint(name=top, uri=f"s3://{bucket}/{key}{top}" + ("/" if is_dir else ""), size_bytes=size,
                       modified_at=when)
            for top, (size, when, is_dir) in found.items()
        ]
        return sorted(out, key=lambda c: (c.modified_at, c.name))

    # ---- calls --------------------------------------------------------------------------------

    def _client(self, service: str) -> Any:
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                from botocore.config import Config

                if self._session is None:
                    self._session = (self._session_factory or _default_session)()
                config = Config(retries={"mode": "standard"}, connect_timeout=5, read_timeout=60)
                client = self._session.client(service, region_name=self.region, config=config)
                self._clients[service] = client
            return client

    def _call(self, service: str, method: str, **params: Any) -> Any:
        """Call the API; a failure raises ``_Failed`` carrying the botocore error and ours."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client(service), method)(**params)
        except (ClientError, BotoCoreError) as exc:
            raise _Failed(exc, _error(exc, service, method)) from exc

    def _call_or_raise(self, service: str, method: str, **params: Any) -> Any:
        try:
            return self._call(service, method, **params)
        except _Failed as failed:
            raise failed.error from failed.cause


class _Failed(Exception):
    """A call failed: ``cause`` is botocore's error (inspected only in this module), ``error`` ours."""

    def __init__(self, cause: Exception, error: TrainError) -> None:
        super().__init__(error.detail)
        self.cause, self.error = cause, error


class _Gone(Exception):
    """The training job does not exist."""


def _default_session() -> Any:
    import boto3

    return boto3.session.Session()


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _message(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Message", "")) or str(exc)


def _error(exc: Exception, service: str, method: str) -> TrainError:
    """Ours for a botocore error: throttling, 5xx and connection trouble are retryable; anything
    else (validation, quotas, permissions) is the service's refusal with its own message."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    product = _SERVICES.get(service, service)
    if isinstance(exc, ClientError):
        code = _code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _RETRYABLE or status >= 500:
            return UnavailableError(f"{product} is unavailable or throttling ({code or status}); retry later")
        return BackendError(f"{product} refused {method}: {code}: {_message(exc)}", retryable=False)
    if isinstance(exc, ConnectionError | HTTPClientError):
        return UnavailableError(f"{product} could not be reached; retry later: {exc}")
    return BackendError(f"{product} {method} failed: {exc}", retryable=False)


def _decode_log_cursor(cursor: str | None, name: str) -> tuple[int, dict[str, int]]:
    if not cursor:
        return 0, {}
    position = decode_cursor(cursor, keys=("job", "seen", "t"))
    if position["job"] != name:
        return 0, {}  # a cursor of an earlier attempt: start this attempt's logs from the top
    try:
        seen = json.loads(str(position["seen"]))
    except ValueError:
        seen = None
    if not isinstance(seen, dict) or not all(isinstance(v, int) for v in seen.values()):
        raise InvalidRequestError("cursor is not one this API returned", errors=[FieldError(("cursor",), "invalid")])
    return int(position["t"]), {str(k): v for k, v in seen.items()}


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _host(stream: str, name: str) -> str:
    """``<job name>/algo-2-1700000000`` → ``algo-2``."""
    host = stream[len(name) + 1:] if stream.startswith(name + "/") else stream
    head, _, tail = host.rpartition("-")
    return head if head and tail.isdigit() else host
