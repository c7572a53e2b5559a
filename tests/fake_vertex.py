"""A small fake Vertex AI endpoint for tests: the real ``JobServiceClient`` (REST transport) talks to it.

It speaks the REST surface the client sends (``POST/GET .../customJobs``, ``GET .../customJobs/<id>``,
``GET .../customJobs?filter=``, ``POST .../customJobs/<id>:cancel``), plus Cloud Logging
``POST /v2/entries:list`` and the Cloud Storage JSON API object listing
(``GET /storage/v1/b/<bucket>/o``). Jobs are kept as ``aiplatform_v1`` protobuf messages, so a
create body that is not a valid ``CustomJob`` is refused as Vertex would, and answers honour
``$alt=json;enum-encoding=int`` as the client asks. Times carry nanoseconds (9 fractional digits).

    with FakeVertex() as fake:                          # 127.0.0.1, a free port
        backend = VertexBackend(..., client_options=fake.client_options())
        fake.set_state(job_id, "JOB_STATE_RUNNING")
        fake.fail("create", status=503, commit=True)    # the next create happens, its answer is lost
"""

from __future__ import annotations

import calendar
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from google.cloud import aiplatform_v1
from google.protobuf import json_format, timestamp_pb2

from tests.loopback import Loopback

PROJECT = "test-project"
LOCATION = "us-central1"
TERMINAL = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_JOBS = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/customJobs(?:/([^/:]+))?(:cancel)?$")
_OBJECTS = re.compile(r"^/storage/v1/b/([^/]+)/o$")
_LABEL_TERM = re.compile(r'^labels\.([a-z][a-z0-9_-]*)\s*=\s*"?([^"\s]*)"?$')
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z$")


@dataclass
class Failure:
    status: int
    commit: bool  # do the operation, then answer with the error (a lost response)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any


class _Answer(Exception):
    def __init__(self, status: int, message: str, grpc_status: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.grpc_status = grpc_status or STATUS_NAMES.get(status, "UNKNOWN")


class FakeVertex:
    def __init__(self, project: str = PROJECT, location: str = LOCATION) -> None:
        self.project, self.location = project, location
        self.jobs: dict[str, Any] = {}  # id → CustomJob protobuf message
        self.requests: list[Recorded] = []
        self.logs: list[dict[str, Any]] = []
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}
        self.page_size = 1000  # objects and log entries per answer at most
        self._failures: dict[str, list[Failure]] = {}
        self._lock = threading.Lock()
        self._http = Loopback("fake-vertex")
        self._next_id = 3000721679224668160
        self._last_ns = 0

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._http.start(Handler)
        return self.url

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> FakeVertex:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self._http.url

    def client_options(self) -> dict[str, str]:
        return {"api_endpoint": self.url, "logging_endpoint": self.url, "storage_endpoint": self.url}

    # ---- scripting ----------------------------------------------------------------------------

    def name(self, job_id: str) -> str:
        return f"projects/{self.project}/locations/{self.location}/customJobs/{job_id}"

    def set_state(self, job: str, state: str, *, error: str | None = None) -> dict[str, Any]:
        """Move a job (by id or resource name) to ``state``; ``error`` becomes ``error.message``."""
        with self._lock:
            message = self.jobs[job.rsplit("/", 1)[-1]]
            message.state = int(getattr(aiplatform_v1.JobState, state))
            stamp = self._now()
            message.update_time.CopyFrom(stamp)
            if state == "JOB_STATE_RUNNING" and not message.HasField("start_time"):
                message.start_time.CopyFrom(stamp)
            if state in TERMINAL:
                message.end_time.CopyFrom(stamp)
            if error is not None:
                message.error.code, message.error.message = 9, error
            return _to_dict(message)

    def job(self, job: str) -> dict[str, Any]:
        """A job as snake_case JSON with enum names (for assertions)."""
        with self._lock:
            return _to_dict(self.jobs[job.rsplit("/", 1)[-1]])

    def fail(self, op: str, *, status: int = 503, times: int = 1, commit: bool = False) -> None:
        """The next ``times`` calls of ``op`` (create, get, list, cancel, logs, storage) answer ``status``."""
        with self._lock:
            self._failures.setdefault(op, []).extend(Failure(status, commit) for _ in range(times))

    def add_log(self, job_id: str, message: str, *, timestamp: str | None = None, severity: str = "INFO",
                text_payload: bool = False, task_name: str = "workerpool0-0") -> dict[str, Any]:
        with self._lock:
            stamp = timestamp or json_format.MessageToDict(self._now())
            entry: dict[str, Any] = {
                "insertId": f"i{len(self.logs):06d}", "timestamp": stamp, "severity": severity,
                "resource": {"type": "ml_job", "labels": {"job_id": job_id, "project_id": self.project,
                                                          "task_name": task_name}},
                "labels": {"ml.googleapis.com/task_name": task_name},
                "logName": f"projects/{self.project}/logs/{task_name}",
            }
            entry |= {"textPayload": message} if text_payload else {"jsonPayload": {"message": message}}
            self.logs.append(entry)
            return entry

    def put_object(self, bucket: str, name: str, *, size: int = 1, updated: str | None = None) -> None:
        with self._lock:
            stamp = updated or json_format.MessageToDict(self._now())
            self.objects.setdefault(bucket, {})[name] = {
                "kind": "storage#object", "bucket": bucket, "name": name, "size": str(size), "updated": stamp,
            }

    def created(self) -> list[dict[str, Any]]:
        """The body of every CreateCustomJob request, as sent (camelCase)."""
        return [r.body for r in self.requests if r.method == "POST" and r.path.endswith("/customJobs")]

    # ---- handling -----------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, body: Any) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append(Recorded(method, path, query, body))
        int_enums = "enum-encoding=int" in query.get("$alt", "")
        op, run = self._route(method, path, query, body, int_enums)
        with self._lock:
            queued = self._failures.get(op, [])
            failure = queued.pop(0) if queued else None
        if failure is not None and not failure.commit:
            raise _Answer(failure.status, f"injected {failure.status} for {op}")
        answer = run()
        if failure is not None:
            raise _Answer(failure.status, f"injected {failure.status} for {op} (after doing it)")
        return 200, answer

    def _route(self, method: str, path: str, query: dict[str, str], body: Any, int_enums: bool) -> tuple[str, Any]:
        found = _JOBS.match(path)
        if found:
            project, location, job_id, cancel = found.groups()
            if (project, location) != (self.project, self.location):
                raise _Answer(404, f"no location {project}/{location} here")
            if method == "POST" and job_id is None:
                return "create", lambda: self._create(body, int_enums)
            if method == "GET" and job_id is None:
                return "list", lambda: self._list(query, int_enums)
            if method == "GET" and not cancel:
                return "get", lambda: self._out(self._existing(job_id), int_enums)
            if method == "POST" and cancel:
                return "cancel", lambda: self._cancel(job_id)
        if method == "POST" and path == "/v2/entries:list":
            return "logs", lambda: self._entries(body)
        objects = _OBJECTS.match(path)
        if method == "GET" and objects:
            return "storage", lambda: self._objects(objects.group(1), query)
        raise _Answer(404, f"no route {method} {path}")

    def _create(self, body: Any, int_enums: bool) -> dict[str, Any]:
        message = aiplatform_v1.CustomJob.pb()()
        try:
            json_format.ParseDict(body, message, ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise _Answer(400, f"Invalid JSON payload received. {exc}") from exc
        if not message.job_spec.worker_pool_specs:
            raise _Answer(400, "job_spec.worker_pool_specs is required")
        with self._lock:
            job_id = str(self._next_id)
            self._next_id += 1
            message.name = self.name(job_id)
            message.state = int(aiplatform_v1.JobState.JOB_STATE_PENDING)
            stamp = self._now()
            message.create_time.CopyFrom(stamp)
            message.update_time.CopyFrom(stamp)
            self.jobs[job_id] = message
        return self._out(message, int_enums)

    def _existing(self, job_id: str) -> Any:
        with self._lock:
            message = self.jobs.get(job_id)
        if message is None:
            raise _Answer(404, f'The CustomJob "{self.name(job_id)}" does not exist.')
        return message

    def _list(self, query: dict[str, str], int_enums: bool) -> dict[str, Any]:
        wanted: dict[str, str] = {}
        for term in filter(None, (t.strip() for t in query.get("filter", "").split(" AND "))):
            found = _LABEL_TERM.match(term)
            if found is None:
                raise _Answer(400, f"unsupported filter term {term!r}")
            wanted[found.group(1)] = found.group(2)
        with self._lock:
            jobs = [m for m in self.jobs.values() if all(m.labels.get(k) == v for k, v in wanted.items())]
        start, size = int(query.get("pageToken") or 0), int(query.get("pageSize") or 100)
        page = jobs[start:start + size]
        answer: dict[str, Any] = {"customJobs": [self._out(m, int_enums) for m in page]}
        if start + size < len(jobs):
            answer["nextPageToken"] = str(start + size)
        return answer

    def _cancel(self, job_id: str) -> dict[str, Any]:
        message = self._existing(job_id)
        state = aiplatform_v1.JobState(message.state).name
        if state in TERMINAL:
            raise _Answer(400, f"Cannot cancel job {self.name(job_id)} in state {state}.", "FAILED_PRECONDITION")
        self.set_state(job_id, "JOB_STATE_CANCELLING")
        return {}

    def _entries(self, body: Any) -> dict[str, Any]:
        text = str((body or {}).get("filter", ""))
        job = re.search(r'resource\.labels\.job_id="([^"]+)"', text)
        since = re.search(r'timestamp>="([^"]+)"', text)
        if 'resource.type="ml_job"' not in text or job is None:
            raise _Answer(400, f"unsupported filter {text!r}")
        floor = _nanos(since.group(1)) if since else 0
        with self._lock:
            entries = [e for e in self.logs if e["resource"]["labels"]["job_id"] == job.group(1)
                       and _nanos(e["timestamp"]) >= floor]
        entries.sort(key=lambda e: _nanos(e["timestamp"]))
        start = int(body.get("pageToken") or 0)
        size = min(int(body.get("pageSize") or 50), self.page_size)
        answer: dict[str, Any] = {"entries": entries[start:start + size]}
        if start + size < len(entries):
            answer["nextPageToken"] = str(start + size)
        return answer

    def _objects(self, bucket: str, query: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            if bucket not in self.objects:
                raise _Answer(404, "The specified bucket does not exist.")
            items = sorted((o for n, o in self.objects[bucket].items() if n.startswith(query.get("prefix", ""))),
                           key=lambda o: o["name"])
        start = int(query.get("pageToken") or 0)
        answer: dict[str, Any] = {"kind": "storage#objects", "items": items[start:start + self.page_size]}
        if start + self.page_size < len(items):
            answer["nextPageToken"] = str(start + self.page_size)
        return answer

    def _out(self, message: Any, int_enums: bool) -> dict[str, Any]:
        return dict(json_format.MessageToDict(message, use_integers_for_enums=int_enums))

    def _now(self) -> Any:
        """Now, with nanoseconds that do not end in 000 (so the JSON has 9 fractional digits)."""
        ns = max(time.time_ns(), self._last_ns + 1)
        if ns % 1000 == 0:
            ns += 1
        self._last_ns = ns
        stamp = timestamp_pb2.Timestamp()
        stamp.FromNanoseconds(ns)
        return stamp


def _to_dict(message: Any) -> dict[str, Any]:
    return dict(json_format.MessageToDict(message, preserving_proto_field_name=True))


def _nanos(stamp: str) -> int:
    found = _TIME.match(stamp)
    if found is None:
        raise _Answer(400, f"bad timestamp {stamp!r}")
    seconds = calendar.timegm(time.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int((found.group(2) or "0").ljust(9, "0"))


class _Handler(BaseHTTPRequestHandler):
    owner: FakeVertex
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
            status, answer = self.owner.handle(self.command, self.path, body)
        except _Answer as exc:
            status = exc.status
            answer = {"error": {"code": exc.status, "message": exc.message, "status": exc.grpc_status}}
        except ValueError as exc:
            status, answer = 400, {"error": {"code": 400, "message": str(exc), "status": "INVALID_ARGUMENT"}}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return
