"""A small fake Azure ML endpoint for tests: the real ``azure-ai-ml`` ``MLClient`` talks to it.

It answers, over HTTPS on 127.0.0.1 with a self-signed certificate made at start (point
``REQUESTS_CA_BUNDLE`` at ``fake.ca_file``; azure-core refuses bearer tokens over plain http), the
ARM routes the SDK calls for what Train uses: the workspace and its discovery document, jobs
(create, get, cancel), environment versions (get, create) and datastores (get); the run history
``runs/<id>/details`` with each job's log files; the log files themselves (with ``Range``); and the
Blob service's List Blobs for checkpoint folders. Jobs live in memory and move when the test says
so. Every request body is recorded: it is what left the real client.

    with FakeAzureML() as fake:
        backend = AzureMLBackend(..., base_url=fake.url, credential=FakeCredential())
        fake.advance(name, "Running")
        fake.fail("PUT", "/jobs/", status=429)      # the next matching call fails once
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from tests.loopback import Loopback

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
RESOURCE_GROUP = "train-rg"
WORKSPACE = "train-ws"
ACCOUNT = "trainstore"
CONTAINER = "azureml-blobstore"
TERMINAL = ("completed", "failed", "canceled")
_WS = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.MachineLearningServices/workspaces/([^/]+)(.*)$",
    re.IGNORECASE,
)


class FakeCredential:
    """A TokenCredential that hands out a dummy token: nothing here reaches Azure."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("fake-token", int(time.time()) + 3600)


@dataclass
class Failure:
    method: str
    path_part: str
    status: int
    code: str


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class FakeJob:
    name: str
    body: dict[str, Any]
    status: str = "NotStarted"
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    modified: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    error: str | None = None
    logs: dict[str, bytes] = field(default_factory=dict)


class FakeAzureML:
    def __init__(self) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.environments: dict[tuple[str, str], dict[str, Any]] = {}
        self.blobs: dict[str, tuple[bytes, dt.datetime]] = {}  # key in CONTAINER → content, time
        self.requests: list[Recorded] = []
        self.created_jobs = 0
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._http = Loopback("fake-azureml", tls=True)
        self.ca_file = str(self._http.ca_file)

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._http.start(Handler)
        return self.url

    def stop(self) -> None:
        self._http.stop()

    @property
    def url(self) -> str:
        return self._http.url

    @property
    def blob_endpoint(self) -> str:
        return f"{self.url}/{ACCOUNT}"

    def __enter__(self) -> FakeAzureML:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    # ---- scripting ----------------------------------------------------------------------------

    def advance(self, name: str, status: str, *, error: str | None = None) -> None:
        """Move job ``name`` to ``status`` now (its modification time strictly increases)."""
        with self._lock:
            job = self.jobs[name]
            now = max(dt.datetime.now(dt.UTC), job.modified + dt.timedelta(microseconds=1))
            job.status, job.modified = status, now
            if status.lower() == "running" and job.started is None:
                job.started = now
            if status.lower() in TERMINAL:
                job.ended = now
            if error:
                job.error = error

    def write_log(self, name: str, file: str, text: str) -> None:
        with self._lock:
            job = self.jobs[name]
            job.logs[file] = job.logs.get(file, b"") + text.encode()

    def put_blob(self, key: str, data: bytes) -> None:
        with self._lock:
            self.blobs[key] = (data, dt.datetime.now(dt.UTC).replace(microsecond=0))

    def fail(self, method: str, path_part: str, *, status: int = 429, code: str = "TooManyRequests",
             times: int = 1) -> None:
        """The next ``times`` ``method`` calls whose path contains ``path_part`` answer ``status``."""
        with self._lock:
            self._failures += [Failure(method, path_part, status, code)] * times

    def calls(self, method: str, path_part: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method and path_part in r.path]

    # ---- handling -----------------------------------------------------------------------------

    def _failure(self, method: str, path: str) -> Failure | None:
        with self._lock:
            for n, failure in enumerate(self._failures):
                if failure.method == method and failure.path_part in path:
                    return self._failures.pop(n)
        return None

    def _record(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> None:
        with self._lock:
            self.requests.append(Recorded(method, path, query, body))

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any,
               headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        self._record(method, path, query, body)
        failure = self._failure(method, path)
        if failure is not None:
            return failure.status, _error(failure.code, "injected failure"), {"Retry-After": "0"}
        if path == "/discovery":
            return 200, {key: self.url for key in ("api", "catalog", "experimentation", "history",
                                                   "modelmanagement", "pipelines", "studio")}, {}
        if path.startswith("/logs/"):
            return self._log(path, headers)
        if path.startswith(f"/{ACCOUNT}/{CONTAINER}") and query.get("comp") == ["list"]:
            return self._list_blobs(query)
        match = _WS.match(path.removeprefix("/history/v1.0"))
        if match is None:
            return 404, _error("NotFound", f"no route {path}"), {}
        rest = match.group(4)
        if path.startswith("/history/v1.0"):
            return self._run_details(rest)
        return self._arm(method, rest, body, match.group(3))

    def _arm(self, method: str, rest: str, body: Any, workspace: str) -> tuple[int, Any, dict[str, str]]:
        parts = [p for p in rest.split("/") if p]
        if not parts and method == "GET":
            return 200, self._workspace(workspace), {}
        if parts[:1] == ["jobs"] and len(parts) == 2:
            return self._put_job(parts[1], body) if method == "PUT" else self._get_job(parts[1])
        if parts[:1] == ["jobs"] and len(parts) == 3 and parts[2] == "cancel" and method == "POST":
            return self._cancel(parts[1])
        if parts[:1] == ["environments"] and len(parts) == 4 and parts[2] == "versions":
            return self._environment(method, parts[1], parts[3], body)
        if parts[:1] == ["datastores"] and len(parts) == 2 and method == "GET":
            return 200, self._datastore(parts[1]), {}
        return 404, _error("NotFound", f"no route {method} {rest}"), {}

    def _workspace(self, name: str) -> dict[str, Any]:
        arm = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"
        return {
            "id": f"{arm}/providers/Microsoft.MachineLearningServices/workspaces/{name}", "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces", "location": "eastus",
            "properties": {"discoveryUrl": f"{self.url}/discovery", "workspaceId": str(uuid.UUID(int=1)),
                           "friendlyName": name},
        }

    def _job_json(self, job: FakeJob) -> dict[str, Any]:
        properties = dict(job.body.get("properties", {}))
        properties["status"] = job.status
        stamp = job.modified.isoformat().replace("+00:00", "Z")
        return {
            "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                  f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}/jobs/{job.name}",
            "name": job.name, "type": "Microsoft.MachineLearningServices/workspaces/jobs",
            "properties": properties,
            "systemData": {"createdAt": job.created.isoformat().replace("+00:00", "Z"), "createdBy": "train",
                           "lastModifiedAt": stamp},
        }

    def _put_job(self, name: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            job = self.jobs.get(name)
            if job is None:
                job = self.jobs[name] = FakeJob(name=name, body=body)
                self.created_jobs += 1
                job.logs["user_logs/std_log.txt"] = b""
                return 201, self._job_json(job), {}
            return 200, self._job_json(job), {}  # the same name again: an update, never a second run

    def _get_job(self, name: str) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            job = self.jobs.get(name)
            if job is None:
                return 404, _error("UserError", f"job {name} not found"), {}
            return 200, self._job_json(job), {}

    def _cancel(self, name: str) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            job = self.jobs.get(name)
            if job is None:
                return 404, _error("UserError", f"job {name} not found"), {}
            if job.status.lower() in TERMINAL:
                return 400, _error("UserError", f"job {name} already ended"), {}
            job.status, job.modified = "CancelRequested", dt.datetime.now(dt.UTC)
            return 202, None, {}

    def _environment(self, method: str, name: str, version: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            key = (name, version)
            if method == "PUT":
                if key in self.environments:
                    return 409, _error("Conflict", "environment versions are immutable"), {}
                self.environments[key] = body
            elif key not in self.environments:
                return 404, _error("UserError", f"environment {name}:{version} not found"), {}
            arm = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/" \
                  f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}"
            return 200, {"id": f"{arm}/environments/{name}/versions/{version}", "name": version,
                         "properties": self.environments[key].get("properties", {})}, {}

    def _datastore(self, name: str) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                  f"Microsoft.MachineLearningServices/workspaces/{WORKSPACE}/datastores/{name}",
            "name": name,
            "properties": {"datastoreType": "AzureBlob", "accountName": ACCOUNT, "containerName": CONTAINER,
                           "endpoint": "core.windows.net", "protocol": "https",
                           "credentials": {"credentialsType": "None"}, "isDefault": True},
        }

    def _run_details(self, rest: str) -> tuple[int, Any, dict[str, str]]:
        parts = [p for p in rest.split("/") if p]
        if len(parts) != 3 or parts[0] != "runs" or parts[2] != "details":
            return 404, _error("NotFound", rest), {}
        with self._lock:
            job = self.jobs.get(parts[1])
            if job is None:
                return 404, _error("UserError", "run not found"), {}
            details: dict[str, Any] = {
                "runId": job.name, "status": job.status,
                "createdTimeUtc": job.created.isoformat(),
                "logFiles": {f: f"{self.url}/logs/{job.name}/{f}?sv=2021&sig=fake" for f in sorted(job.logs)},
            }
            if job.started:
                details["startTimeUtc"] = job.started.isoformat()
            if job.ended:
                details["endTimeUtc"] = job.ended.isoformat()
            if job.error:
                details["error"] = {"error": {"code": "UserError", "message": job.error}}
            return 200, details, {}

    def _log(self, path: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        _, _, name, file = path.split("/", 3)
        with self._lock:
            job = self.jobs.get(name)
            data = job.logs.get(file) if job else None
            modified = job.modified if job else None
        if data is None or modified is None:
            return 404, _error("BlobNotFound", path), {}
        start = 0
        match = re.match(r"bytes=(\d+)-(\d*)$", headers.get("range", ""))
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) + 1 if match.group(2) else len(data)
            if start >= len(data):
                return 416, b"", {}
            data = data[start:end]
        return (206 if match else 200), data, {"Last-Modified": format_datetime(modified, usegmt=True)}

    def _list_blobs(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        prefix = query.get("prefix", [""])[0]
        with self._lock:
            items = sorted((k, v) for k, v in self.blobs.items() if k.startswith(prefix))
        blobs = "".join(
            f"<Blob><Name>{escape(k)}</Name><Properties><Last-Modified>{format_datetime(t, usegmt=True)}"
            f"</Last-Modified><Content-Length>{len(d)}</Content-Length><BlobType>BlockBlob</BlobType>"
            f"</Properties></Blob>"
            for k, (d, t) in items
        )
        xml = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="{self.url}/{ACCOUNT}" '
               f'ContainerName="{CONTAINER}"><Prefix>{escape(prefix)}</Prefix><Blobs>{blobs}</Blobs>'
               f"<NextMarker /></EnumerationResults>")
        return 200, xml.encode(), {"Content-Type": "application/xml"}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeAzureML
    protocol_version = "HTTP/1.1"

    def _any(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload, extra = self.owner.handle(self.command, parts.path, parse_qs(parts.query), body, headers)
        if isinstance(payload, bytes):
            data, kind = payload, extra.pop("Content-Type", "application/octet-stream")
        else:
            data, kind = (b"" if payload is None else json.dumps(payload).encode()), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _any

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
