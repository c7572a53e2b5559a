"""A small client for the Train HTTP API (SPEC §3), standard library only; the CLI is built on it.

Errors come back as ``TrainClientError`` carrying the problem+json ``title``, ``detail`` and field
errors; a server that cannot be reached is a ``TrainConnectionError``.
"""

from __future__ import annotations

import builtins
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import FieldError, TrainError

TERMINAL_STATUSES = frozenset({"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})
CREDENTIALS_FILE = "credentials.json"
USER_AGENT = "train-client/0.1"

Json = dict[str, Any]


class TrainClientError(TrainError):
    """An error response from the API, parsed from its problem+json body."""

    title = "Request failed"

    def __init__(self, status: int, title: str, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail, errors=errors)
        self.status = status  # type: ignore[misc]
        self.title = title  # type: ignore[misc]

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}" if self.status else f"{self.title}: {self.detail}"


class TrainConnectionError(TrainClientError):
    """The server could not be reached or did not answer in time."""

    retryable = True

    def __init__(self, detail: str) -> None:
        super().__init__(0, "Cannot reach Train", detail)


class MissingCredentialsError(TrainError):
    status, title, slug = 400, "Missing credentials", "missing-credentials"


def field_errors(problem: Json) -> list[FieldError]:
    """The ``errors`` of a problem document as ``FieldError``s, their paths read from the JSON pointers."""
    out: list[FieldError] = []
    for item in problem.get("errors") or []:
        if not isinstance(item, dict):
            continue
        pointer = str(item.get("pointer") or "")
        if pointer.startswith("/"):
            parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
            path: tuple[str | int, ...] = tuple(int(p) if p.isdigit() else p for p in parts)
        else:
            path = (str(item.get("field") or ""),)
        out.append(FieldError(path, str(item.get("message") or "")))
    return out


def _read_credentials(path: Path) -> Json:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise MissingCredentialsError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


class TrainClient:
    def __init__(self, url: str, api_key: str, account_id: str, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.account_id = account_id
        self.timeout = timeout

    def __repr__(self) -> str:  # never shows the key
        return f"TrainClient(url={self.url!r}, account_id={self.account_id!r})"

    @classmethod
    def from_env(
        cls,
        data_dir: Path | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        account_id: str | None = None,
        timeout: float = 30,
    ) -> TrainClient:
        """Explicit arguments first, then ``TRAIN_URL`` / ``TRAIN_API_KEY`` / ``TRAIN_ACCOUNT_ID``, then,
        field by field, the ``credentials.json`` that ``train serve`` writes into the data directory."""
        if data_dir is None:
            from core.config import default_data_dir

            data_dir = default_data_dir()
        path = Path(data_dir).expanduser() / CREDENTIALS_FILE
        values = {
            "url": url or os.environ.get("TRAIN_URL"),
            "api_key": api_key or os.environ.get("TRAIN_API_KEY"),
            "account_id": account_id or os.environ.get("TRAIN_ACCOUNT_ID"),
        }
        if not all(values.values()):
            stored = _read_credentials(path)
            for name in values:
                values[name] = values[name] or (str(stored[name]) if stored.get(name) else None)
        missing = [f"TRAIN_{name.upper()}" for name, value in values.items() if not value]
        if missing:
            raise MissingCredentialsError(
                f"no {', '.join(missing)}: set {'them' if len(missing) > 1 else 'it'} in the environment, "
                f"or start `train serve`, which writes {path}"
            )
        return cls(str(values["url"]), str(values["api_key"]), str(values["account_id"]), timeout=timeout)

    # ---- transport ----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Json | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Json:
        url = self.url + path
        params = {k: v for k, v in (query or {}).items() if v is not None and v != []}
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        sent = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        if auth:
            sent["x-api-key"] = self.api_key
            sent["x-selected-account-id"] = self.account_id
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        if not url.startswith(("http://", "https://")):
            raise MissingCredentialsError(f"the Train URL must start with http:// or https://, got {self.url!r}")
        request = urllib.request.Request(url, data=data, headers=sent, method=method)  # noqa: S310 (http(s) only)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise _problem(exc) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrainConnectionError(f"{self.url}: {reason}") from exc
        if not raw:
            return {}
        try:
            parsed = json.loads(raw)
        except ValueError as exc:
            raise TrainClientError(502, "Bad response", f"{method} {path} did not return JSON") from exc
        return parsed if isinstance(parsed, dict) else {"items": parsed}

    # ---- routes -------------------------------------------------------------------------------

    def health(self) -> Json:
        return self._request("GET", "/health", auth=False)

    def submit(self, spec: Json, idempotency_key: str | None = None) -> Json:
        return self._request("POST", "/v1/jobs", body=spec, headers=_idempotency(idempotency_key))

    def submit_native(self, backend: str, body: Json, idempotency_key: str | None = None) -> Json:
        path = f"/v1/{_quote(backend)}/jobs"
        return self._request("POST", path, body=body, headers=_idempotency(idempotency_key))

    def get(self, job_id: str) -> Json:
        return self._request("GET", f"/v1/jobs/{_quote(job_id)}")

    def list(
        self,
        status: str | list[str] | None = None,
        backend: str | None = None,
        project: str | None = None,
        name: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Json:
        """One page: ``{"jobs": [...], "next_cursor": ...}``, newest first."""
        statuses = [status] if isinstance(status, str) else status
        query = {"status": statuses, "backend": backend, "project": project, "name": name, "limit": limit,
                 "cursor": cursor}
        return self._request("GET", "/v1/jobs", query=query)

    def iter_jobs(
        self,
        status: str | builtins.list[str] | None = None,
        backend: str | None = None,
        project: str | None = None,
        name: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Json]:
        cursor: str | None = None
        while True:
            page = self.list(status, backend, project, name, limit=page_size, cursor=cursor)
            yield from page.get("jobs", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel(self, job_id: str) -> Json:
        return self._request("POST", f"/v1/jobs/{_quote(job_id)}/cancel")

    def events(self, job_id: str) -> Json:
        return self._request("GET", f"/v1/jobs/{_quote(job_id)}/events")

    def logs(
        self, job_id: str, cursor: str | None = None, limit: int = 100, since: datetime | str | None = None
    ) -> Json:
        """One page of log lines: ``{"lines": [...], "next_cursor": ...}``."""
        when = since.isoformat() if isinstance(since, datetime) else since
        query = {"cursor": cursor, "limit": limit, "since": when}
        return self._request("GET", f"/v1/jobs/{_quote(job_id)}/logs", query=query)

    def checkpoints(self, job_id: str) -> Json:
        return self._request("GET", f"/v1/jobs/{_quote(job_id)}/checkpoints")

    # ---- following a job ----------------------------------------------------------------------

    def follow(
        self,
        job_id: str,
        on_status: Callable[[Json], None] | None = None,
        on_log: Callable[[Json], None] | None = None,
        poll: float = 1.0,
        since: datetime | str | None = None,
        known_status: str | None = None,
    ) -> Json:
        """Poll the job and its logs until it reaches a terminal status, then drain the logs.

        ``on_status`` gets the job at each status change (the first read too, unless its status
        is ``known_status``), ``on_log`` each new log line once. Returns the final job.
        """
        tail = LogTail(self, job_id, since=since)
        last_status = known_status
        while True:
            job = self.get(job_id)
            status = job.get("status")
            finished = status in TERMINAL_STATUSES
            if status != last_status and not finished:
                last_status = status
                if on_status is not None:
                    on_status(job)
            while True:  # a finished job's lines are all read before its end is reported
                lines = tail.fetch()
                for line in lines:
                    if on_log is not None:
                        on_log(line)
                if not lines or not (finished or tail.more):
                    break
            if finished:
                if on_status is not None:
                    on_status(job)
                return job
            time.sleep(poll)


class LogTail:
    """Reads a job's log lines once each, following the API's cursors.

    A page whose ``next_cursor`` is null is read again from the same cursor next time, skipping
    the lines already delivered, so a backend that gives no cursor still yields each line once.
    """

    def __init__(self, client: TrainClient, job_id: str, *, since: datetime | str | None = None,
                 page_size: int = 100) -> None:
        self.client = client
        self.job_id = job_id
        self.since = since
        self.page_size = page_size
        self.cursor: str | None = None
        self.seen = 0
        self.more = False

    def fetch(self) -> list[Json]:
        page = self.client.logs(self.job_id, cursor=self.cursor, limit=self.page_size, since=self.since)
        lines = [line for line in page.get("lines", []) if isinstance(line, dict)]
        next_cursor = page.get("next_cursor")
        fresh = lines[self.seen:]
        if next_cursor and next_cursor != self.cursor:
            self.cursor, self.seen = next_cursor, 0
            self.more = len(lines) >= self.page_size
            return fresh
        self.seen = max(self.seen, len(lines))
        self.more = False
        return fresh


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}


def _problem(exc: urllib.error.HTTPError) -> TrainClientError:
    try:
        raw = exc.read()
    except OSError:
        raw = b""
    try:
        problem = json.loads(raw) if raw else {}
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    title = str(problem.get("title") or exc.reason or "HTTP error")
    detail = str(problem.get("detail") or raw[:500].decode("utf-8", "replace").strip() or title)
    status = int(problem.get("status") or exc.code)
    return TrainClientError(status, title, detail, field_errors(problem))
