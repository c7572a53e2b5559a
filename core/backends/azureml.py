"""The Azure ML backend: command jobs through ``azure-ai-ml``'s ``MLClient`` (create, get,
cancel), each image registered once as an Environment version, logs from the run history's log
files and checkpoints listed from the checkpoint datastore's blob container. I/O only; every
translation is in ``azureml_map`` and ``azureml_request``.

``azure.ai.ml`` (about 0.9 s to import) is imported on first use. ``base_url`` points the client
at another Resource Manager endpoint (a sovereign cloud, or a test endpoint) through a custom cloud
entry; azure-core sends bearer tokens over https only. azure.core errors become ours here.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.backends.azureml_files import LogReader, list_checkpoints
from core.backends.azureml_map import (
    MISSING,
    Built,
    azureml_job_name,
    checkpoint_uri,
    draft_record,
    environment_asset,
    from_azureml_status,
    parse_azure_time,
    to_azureml_command_job,
)
from core.errors import BackendError, FieldError, InvalidSpecError, TrainError, UnavailableError
from core.lifecycle import NativeUpdate
from core.model import Checkpoint, JobRecord, JobSpec, LogPage, NativeJobRequest, Submission
from core.ports import SecretStore
from core.secrets.env import build_with, job_env, resolve_env
from core.secrets.masking import secret_scope

_TERMINAL = frozenset({"completed", "failed", "canceled"})


class AzureMLBackend:
    name = "azure-ml"

    def __init__(
        self,
        *,
        subscription_id: str,
        resource_group: str,
        workspace: str,
        compute: str | None = None,
        job_prefix: str = "train",
        credential: Any = None,
        base_url: str | None = None,
        checkpoint_datastore: str = "workspaceblobstore",
        blob_endpoint: str | None = None,
        retry_total: int | None = None,
        secrets: SecretStore | None = None,
    ) -> None:
        """``blob_endpoint`` is the Blob service URL of the checkpoint datastore's account when it is
        not ``https://<account>.blob.<suffix>`` (a private endpoint, Azurite); ``retry_total``
        overrides azure-core's retry count (10)."""
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace = workspace
        self.compute = compute
        self.job_prefix = job_prefix
        self.base_url = base_url.rstrip("/") if base_url else None
        self.checkpoint_datastore = checkpoint_datastore
        self.blob_endpoint = blob_endpoint.rstrip("/") if blob_endpoint else None
        self.retry_total = retry_total
        self.secrets = secrets
        self._credential_value = credential
        self._ml: Any = None
        self._logs: LogReader | None = None
        self._lock = threading.Lock()

    # ---- checks -------------------------------------------------------------------------------

    def check_spec(self, spec: JobSpec) -> None:
        job = draft_record(spec)
        build_with(resolve_env(spec.env, self.secrets), lambda values: self._checked(job, values))

    def check_native(self, request: NativeJobRequest) -> None:
        self._checked(draft_record(request))

    def _checked(self, job: JobRecord, secrets: Mapping[str, str] | None = None) -> Built:
        """The command job, checked by our rules and then by the SDK's schema. Schema problems in
        a native ``job_config`` are named under it; in a portable spec they come from
        ``backend_options`` (Train's own fields pass the schema)."""
        from core.backends.azureml_schema import schema_errors

        built = to_azureml_command_job(
            job, prefix=self.job_prefix, compute=self.compute, datastore=self.checkpoint_datastore, secrets=secrets
        )
        errors = schema_errors(built.job)
        if errors:
            if job.native_request is not None:
                raise InvalidSpecError.of([FieldError(("job_config", *e.path), e.message) for e in errors])
            options = (job.spec or {}).get("backend_options") or {}
            raise InvalidSpecError.of([
                FieldError(("backend_options", *e.path) if e.path[:1] and e.path[0] in options else e.path, e.message)
                for e in errors
            ])
        return built

    # ---- jobs ---------------------------------------------------------------------------------

    def native_id_for(self, job: JobRecord) -> str:
        return azureml_job_name(self.job_prefix, job.id, job.attempt)

    def submit(self, job: JobRecord) -> Submission:
        """Get before create: a job an earlier call for this attempt created is returned, never a
        second one (a PUT of the same name would only update it, but it would also resend it).
        Secret values are read again for every call and go into ``environment_variables`` only."""
        from core.backends.azureml_schema import to_command_job

        name = self.native_id_for(job)
        resolved = resolve_env(job_env(job), self.secrets)
        with secret_scope(resolved.values.values()):
            built = build_with(resolved, lambda values: self._checked(job, values))
            existing = self._get_job(name)
            if existing is None:
                if built.image is not None:
                    self._ensure_environment(built.image)
                existing = self._call("create job", lambda ml: ml.jobs.create_or_update(to_command_job(built.job)))
        return Submission(
            native_id=name,
            cloud_job_identifier={"job_name": name, "workspace": self.workspace, "job_id": str(existing.id or "")},
            native_status=_status(existing) or None,
        )

    def _ensure_environment(self, image: str) -> None:
        """One Environment version per image digest, looked up before it is created; a racing
        creator's version (409) is taken as ours."""
        from azure.ai.ml.entities import Environment

        name, version = environment_asset(self.job_prefix, image)
        if self._call_or_none("get environment", lambda ml: ml.environments.get(name=name, version=version)):
            return
        environment = Environment(name=name, version=version, image=image, tags={"train:image": image[:256]})
        try:
            self._call("register environment", lambda ml: ml.environments.create_or_update(environment))
        except _Conflict:
            return

    def describe(self, job: JobRecord) -> NativeUpdate:
        name = self._name(job)
        found = self._get_job(name)
        if found is None:
            gone = f"Azure ML has no job {name}"
            return from_azureml_status(MISSING, event_time=datetime.now(UTC), reason=gone, attempt=job.attempt)
        status = _status(found)
        context = getattr(found, "creation_context", None)
        when = parse_azure_time(getattr(context, "last_modified_at", None)) or datetime.now(UTC)
        reason: str | None = None
        run_seconds: float | None = None
        if status.lower() in ("failed", "canceled"):
            details = self._run_details(name)
            if details is not None:
                reason, run_seconds, ended = _from_details(details)
                when = max(when, ended or when)
        limits = getattr(found, "limits", None)
        timeout = getattr(limits, "timeout", None)
        return from_azureml_status(
            status, event_time=when, reason=reason, attempt=job.attempt,
            timeout_seconds=int(timeout) if isinstance(timeout, int | float) else None, run_seconds=run_seconds,
            cancel_requested=job.cancel_requested_at is not None,
        )

    def cancel(self, job: JobRecord) -> None:
        """Cancel the job unless it has ended or never existed; the poller is not waited on."""
        name = self._name(job)
        found = self._get_job(name)
        if found is None or _status(found).lower() in _TERMINAL:
            return
        try:
            self._call("cancel job", lambda ml: ml.jobs.begin_cancel(name, polling=False))
        except _Gone:
            return

    def _get_job(self, name: str) -> Any:
        """The job; its ``environment_variables`` hold secret values, so the SDK's debug records are withheld."""
        with secret_scope():
            return self._call_or_none("get job", lambda ml: ml.jobs.get(name))

    def _run_details(self, name: str) -> Any:
        """The run history's view of the job (times, error, log files); None if it has none yet.
        It can repeat the job's definition: the SDK's debug records are withheld."""
        with secret_scope():
            return self._call_or_none("read run details", lambda ml: ml.jobs._runs_operations.get_run_details(name))

    def _name(self, job: JobRecord) -> str:
        return job.native_id or self.native_id_for(job)

    # ---- logs and checkpoints -----------------------------------------------------------------

    def logs(self, job: JobRecord, *, cursor: str | None, limit: int, since: datetime | None) -> LogPage:
        name = self._name(job)
        details = self._run_details(name)
        files = dict(getattr(details, "log_files", None) or {}) if details is not None else {}
        return self._log_reader().page(name, files, cursor=cursor, limit=limit, since=since)

    def checkpoints(self, job: JobRecord) -> list[Checkpoint]:
        datastore = self._call("get datastore", lambda ml: ml.datastores.get(self.checkpoint_datastore))
        account = str(datastore.account_name)
        container = str(getattr(datastore, "container_name", ""))
        account_url = self.blob_endpoint or f"{datastore.protocol or 'https'}://{account}.blob.{datastore.endpoint}"
        uri = checkpoint_uri(self.checkpoint_datastore, self.job_prefix, job.id)
        prefix = uri.split("/paths/", 1)[1]
        return list(self._call(
            "list checkpoints", lambda _: list_checkpoints(account_url, container, prefix, uri, self._cred())
        ))

    # ---- calls --------------------------------------------------------------------------------

    def _cred(self) -> Any:
        with self._lock:
            if self._credential_value is None:
                from azure.identity import DefaultAzureCredential

                self._credential_value = DefaultAzureCredential()
            return self._credential_value

    def _client(self) -> Any:
        credential = self._cred()
        with self._lock:
            if self._ml is None:
                from azure.ai.ml import MLClient

                kwargs: dict[str, Any] = {"enable_telemetry": False, "show_progress": False}
                if self.retry_total is not None:
                    kwargs["retry_total"] = self.retry_total
                if self.base_url is not None:
                    kwargs |= _custom_cloud(self.base_url)
                self._ml = MLClient(credential, self.subscription_id, self.resource_group, self.workspace, **kwargs)
            return self._ml

    def _log_reader(self) -> LogReader:
        with self._lock:
            if self._logs is None:
                self._logs = LogReader(retry_total=self.retry_total)
            return self._logs

    def _call(self, what: str, call: Any) -> Any:
        """Run ``call(ml_client)``; azure.core and azure.ai.ml errors become ours."""
        from azure.core.exceptions import AzureError

        try:
            return call(self._client())
        except AzureError as exc:
            raise _error(exc, what) from exc
        except TrainError:
            raise
        except Exception as exc:  # azure.ai.ml's own (validation, MlException) and marshmallow's
            if type(exc).__module__.startswith(("azure.", "marshmallow")):
                raise BackendError(f"Azure ML {what} failed: {exc}", retryable=False) from exc
            raise

    def _call_or_none(self, what: str, call: Any) -> Any:
        try:
            return self._call(what, call)
        except _Gone:
            return None


class _Gone(BackendError):
    """The resource does not exist (404)."""


class _Conflict(BackendError):
    """The resource exists already (409)."""


def _error(exc: Exception, what: str) -> TrainError:
    """Ours for an azure.core error: connection trouble, throttling and 5xx are retryable; 404 and
    409 are told apart for the caller; anything else is Azure ML's refusal with its own message."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return UnavailableError(f"Azure ML could not be reached ({what}); retry later: {exc}")
    status = int(getattr(exc, "status_code", 0) or 0) if isinstance(exc, HttpResponseError) else 0
    message = str(getattr(exc, "message", "") or exc).splitlines()[0] if str(exc) else type(exc).__name__
    if status == 429 or status >= 500:
        return UnavailableError(f"Azure ML is unavailable or throttling ({what}: {status}); retry later")
    if status == 404:
        return _Gone(f"Azure ML {what}: not found: {message}")
    if status == 409:
        return _Conflict(f"Azure ML {what}: conflict: {message}")
    return BackendError(f"Azure ML refused {what} ({status or type(exc).__name__}): {message}", retryable=False)


def _custom_cloud(base_url: str) -> dict[str, Any]:
    """MLClient kwargs for a Resource Manager endpoint of our choosing: a cloud entry named after
    the URL (the SDK keeps clouds in a process-wide table that refuses to overwrite a name)."""
    url = base_url + "/"
    name = "train-" + hashlib.sha256(url.encode()).hexdigest()[:12]
    metadata = {
        "azure_portal": url, "resource_manager": url, "active_directory": url, "aml_resource_id": url,
        "storage_endpoint": "core.windows.net", "registry_discovery_endpoint": url,
    }
    return {"cloud": name, "cloud_metadata": metadata}


def _status(job: Any) -> str:
    """The job's JobStatus as Azure ML spells it (the SDK hands back an enum member)."""
    status = getattr(job, "status", None)
    return str(getattr(status, "value", status) or "")


def _from_details(details: Any) -> tuple[str | None, float | None, datetime | None]:
    """Error message, run seconds and end time from run history details."""
    error = getattr(getattr(details, "error", None), "error", None)
    reason = str(error.message) if error is not None and getattr(error, "message", None) else None
    start = parse_azure_time(getattr(details, "start_time_utc", None))
    end = parse_azure_time(getattr(details, "end_time_utc", None))
    seconds = (end - start).total_seconds() if start and end else None
    return reason, seconds, end
