"""A small in-memory stand-in for the Train HTTP API, on 127.0.0.1 and a free port, for the client
and CLI tests. It records every request and answers in the shapes of SPEC §3 (problem+json errors).

Each ``GET /v1/jobs/{id}`` moves a job one step along its script (PENDING, IN_PROGRESS...,
then COMPLETED, or FAILED when its args contain ``--fail``) and adds a log line per step.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "trn_abcdefabcdef_" + "s" * 43
ACCOUNT = "acct"
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeTrain:
    api_key: str = API_KEY
    account: str = ACCOUNT
    log_cursors: bool = True  # False: logs always come back whole, with next_cursor null
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    scripts: dict[str, list[str]] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    idempotency: dict[str, str] = field(default_factory=dict)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeTrain:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.handle(self, "GET")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # ---- jobs -----------------------------------------------------------------------------

    def add_job(self, body: dict[str, Any], backend: str | None = None, steps: int = 2) -> dict[str, Any]:
        job_id = f"job{len(self.jobs) + 1:04d}"
        final = "FAILED" if "--fail" in (body.get("args") or []) else "COMPLETED"
        job = {
            "id": job_id, "name": body.get("name"), "account_id": self.account,
            "project": body.get("project", "default"), "backend": backend or body.get("backend"),
            "job_type": (backend or body.get("backend") or "").replace("-", "_"), "status": "PENDING",
            "status_reason": None, "native_status": None, "attempt": 1, "cloud_job_identifier": {},
            "image": {"requested": body.get("image"), "resolved": None},
            "storage_mounts": body.get("storage_mounts", []), "spec": body, "labels": body.get("labels", {}),
            "created_at": f"2026-01-01T00:00:{len(self.jobs):02d}Z", "updated_at": "2026-01-01T00:00:00Z",
            "started_at": None, "ended_at": None,
        }
        if final == "FAILED":
            job["_reason"] = "exit code 1"
        self.jobs[job_id] = job
        self.scripts[job_id] = ["PENDING"] + ["IN_PROGRESS"] * steps + [final]
        self.logs[job_id] = []
        return job

    def advance(self, job: dict[str, Any]) -> None:
        script = self.scripts[job["id"]]
        if len(script) > 1 and job["status"] not in ("CANCELED",):
            script.pop(0)
            job["status"] = script[0]
            if job["status"] == "IN_PROGRESS":
                self.logs[job["id"]].append(f"epoch {len(self.logs[job['id']]) + 1} loss=0.1")
            elif job["status"] in ("COMPLETED", "FAILED"):
                self.logs[job["id"]].append("done" if job["status"] == "COMPLETED" else "boom")
                job["status_reason"] = job.get("_reason")

    @staticmethod
    def public(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    # ---- HTTP -----------------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        query = parse_qs(parts.query)
        self.requests.append(Recorded(method, parts.path, query, {k.lower(): v for k, v in h.headers.items()}, body))
        status, payload, ctype = self.route(method, parts.path, query, h.headers, body)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("content-type", ctype)
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def route(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: Any) -> tuple[
        int, Any, str
    ]:
        if path == "/health":
            return 200, {"status": "ok"}, "application/json"
        if headers.get("x-api-key") != self.api_key:
            return problem(401, "Unauthenticated", "the API key is unknown or revoked")
        if headers.get("x-selected-account-id") != self.account:
            return problem(403, "Forbidden", "this API key is not granted that account")
        if path == "/v1/jobs/plain500":
            return 500, b"upstream exploded", "text/plain"
        if path == "/v1/jobs/boom":
            return problem(500, "Internal error", "the store is down")
        native = re.fullmatch(r"/v1/([a-z-]+)/jobs", path)
        if method == "POST" and path == "/v1/jobs":
            return self.submit(body, None, headers)
        if method == "POST" and native:
            return self.submit(body, native.group(1), headers)
        if method == "GET" and path == "/v1/jobs":
            return self.list_jobs(query)
        match = re.fullmatch(r"/v1/jobs/([^/]+)(?:/(cancel|events|logs|checkpoints))?", path)
        if not match or match.group(1) not in self.jobs:
            return problem(404, "Not found", f"no job '{match.group(1) if match else path}'")
        job, action = self.jobs[match.group(1)], match.group(2)
        if action is None:
            self.advance(job)
            return 200, self.public(job), "application/json"
        if action == "cancel":
            if job["status"] in ("PENDING", "IN_PROGRESS"):
                job["status"] = "CANCELED"
                self.scripts[job["id"]] = ["CANCELED"]
            return 202, self.public(job), "application/json"
        if action == "events":
            events = [{"at": "2026-01-01T00:00:00Z", "kind": "transition", "status": "PENDING", "attempt": 1}]
            return 200, {"job_id": job["id"], "status": job["status"], "ignored_updates": 0, "events": events}, (
                "application/json"
            )
        if action == "logs":
            return self.log_page(job["id"], query)
        ckpt = {"name": "epoch-0001.json", "uri": "file:///ckpt/epoch-0001.json", "size_bytes": 2048,
                "modified_at": "2026-01-01T00:00:05Z"}
        return 200, {"job_id": job["id"], "checkpoints": [ckpt]}, "application/json"

    def submit(self, body: Any, backend: str | None, headers: Any) -> tuple[int, Any, str]:
        if not isinstance(body, dict) or not NAME.match(str(body.get("name", ""))):
            return problem(422, "Invalid job request", "name: must match [a-z0-9-]", [
                {"field": "name", "pointer": "/name", "message": "must match [a-z0-9-]"},
                {"field": "storage_mounts[0].source_uri", "pointer": "/storage_mounts/0/source_uri",
                 "message": "plain paths must be absolute"},
            ])
        key = headers.get("idempotency-key")
        if key and key in self.idempotency:
            return 200, self.public(self.jobs[self.idempotency[key]]), "application/json"
        job = self.add_job(body, backend)
        if key:
            self.idempotency[key] = job["id"]
        return 201, self.public(job), "application/json"

    def list_jobs(self, query: dict[str, list[str]]) -> tuple[int, Any, str]:
        jobs = sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=True)
        if "status" in query:
            jobs = [j for j in jobs if j["status"] in query["status"]]
        if "name" in query:
            jobs = [j for j in jobs if j["name"] == query["name"][0]]
        start = int(query.get("cursor", ["0"])[0])
        limit = int(query.get("limit", ["20"])[0])
        page = jobs[start:start + limit]
        more = start + limit < len(jobs)
        return 200, {"jobs": [self.public(j) for j in page], "next_cursor": str(start + limit) if more else None}, (
            "application/json"
        )

    def log_page(self, job_id: str, query: dict[str, list[str]]) -> tuple[int, Any, str]:
        lines = [{"time": "2026-01-01T00:00:01Z", "stream": "stdout", "message": m} for m in self.logs[job_id]]
        if not self.log_cursors:
            return 200, {"lines": lines, "next_cursor": None}, "application/json"
        start = int(query.get("cursor", ["0"])[0])
        limit = int(query.get("limit", ["100"])[0])
        page = lines[start:start + limit]
        return 200, {"lines": page, "next_cursor": str(start + len(page))}, "application/json"


def problem(status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None) -> tuple[
    int, Any, str
]:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return status, body, "application/problem+json"
