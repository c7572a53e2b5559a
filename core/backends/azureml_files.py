"""Reading an Azure ML job's files: its ``std_log`` files page by page, and its checkpoint folder.

The run history lists a job's log files with a read-only SAS URL each (``logFiles`` of the run
details): ``user_logs/std_log.txt`` for one process, ``user_logs/std_log_process_<n>.txt`` or
``user_logs/std_log_node_<n>_...`` when there are several. The files hold the process's raw
output without timestamps, so each line carries its file's last-modified time. The cursor holds
the file index and the byte offset in it; a partial last line waits for its newline.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from core.errors import BackendError, FieldError, InvalidRequestError, UnavailableError
from core.model import Checkpoint, LogLine, LogPage
from core.stores.cursor import decode_cursor, encode_cursor

STD_LOG = re.compile(r"(^|/)std_log[^/]*\.txt$")
MAX_BYTES = 1 << 20  # read at most 1 MiB of one file per page
MAX_LINES = 10000


def log_files(files: dict[str, str]) -> list[tuple[str, str]]:
    """The user's ``std_log`` files by name, ``user_logs/`` first (older runtimes kept them under ``azureml-logs/``)."""
    chosen = sorted((n, u) for n, u in files.items() if STD_LOG.search(n) and n.startswith("user_logs/"))
    return chosen or sorted((n, u) for n, u in files.items() if STD_LOG.search(n))


def source_of(name: str) -> str | None:
    """``user_logs/std_log_node_1_process_0.txt`` → ``node_1_process_0``; None for the single ``std_log.txt``."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".txt").removeprefix("std_log")
    return stem.lstrip("_") or None


class LogReader:
    def __init__(self, *, retry_total: int | None = None) -> None:
        self.retry_total = retry_total
        self._client: Any = None
        self._lock = threading.Lock()

    def page(self, job_name: str, files: dict[str, str], *, cursor: str | None, limit: int,
             since: datetime | None) -> LogPage:
        index, offset = _decode(cursor, job_name)
        limit = max(1, min(limit, MAX_LINES))
        chosen = log_files(files)
        lines: list[LogLine] = []
        while index < len(chosen) and len(lines) < limit:
            name, url = chosen[index]
            data, modified = self._read(url, offset)
            consumed = 0
            for raw in data.splitlines(keepends=True):
                if len(lines) >= limit or not raw.endswith(b"\n"):
                    break
                consumed += len(raw)
                if since is not None and modified < since:
                    continue
                text = raw.decode(errors="replace").rstrip("\r\n")
                lines.append(LogLine(time=modified, message=text, source=source_of(name)))
            offset += consumed
            if len(lines) >= limit or index == len(chosen) - 1 or len(data) >= MAX_BYTES:
                break
            index, offset = index + 1, 0  # this file gave what it has; the next one starts at its top
        return LogPage(lines=lines, next_cursor=encode_cursor({"job": job_name, "file": index, "offset": offset}))

    def _read(self, url: str, offset: int) -> tuple[bytes, datetime]:
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        request = HttpRequest("GET", url, headers={"Range": f"bytes={offset}-{offset + MAX_BYTES - 1}"})
        try:
            response = self._pipeline().send_request(request)
        except AzureError as exc:
            raise UnavailableError(f"Azure ML log file could not be read; retry later: {exc}") from exc
        if response.status_code == 416:  # nothing past the offset yet
            return b"", datetime.now(UTC)
        if response.status_code == 429 or response.status_code >= 500:
            raise UnavailableError(f"Azure ML log storage is unavailable ({response.status_code}); retry later")
        if response.status_code >= 400:
            raise BackendError(f"Azure ML log file refused ({response.status_code})", retryable=False)
        data = response.read()
        if response.status_code == 200 and offset:
            data = data[offset:offset + MAX_BYTES]  # the server ignored Range
        return data, _modified(response.headers.get("Last-Modified"))

    def _pipeline(self) -> Any:
        with self._lock:
            if self._client is None:
                from azure.core import PipelineClient
                from azure.core.pipeline.policies import RetryPolicy

                # the SAS in each URL is the credential; no content decoding (the files are raw bytes)
                retry = RetryPolicy() if self.retry_total is None else RetryPolicy(retry_total=self.retry_total)
                self._client = PipelineClient(base_url="", policies=[retry])
            return self._client


def _modified(value: str | None) -> datetime:
    if value:
        try:
            parsed = parsedate_to_datetime(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def _decode(cursor: str | None, job_name: str) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    position = decode_cursor(cursor, keys=("file", "job", "offset"))
    if position["job"] != job_name:
        return 0, 0  # a cursor of an earlier attempt: this attempt's logs start at the top
    index, offset = position["file"], position["offset"]
    if not isinstance(index, int) or not isinstance(offset, int) or index < 0 or offset < 0:
        raise InvalidRequestError("cursor is not one this API returned", errors=[FieldError(("cursor",), "invalid")])
    return index, offset


def list_checkpoints(account_url: str, container: str, prefix: str, uri: str, credential: Any) -> list[Checkpoint]:
    """Top-level entries under ``prefix`` in the checkpoint datastore's container, oldest first; a
    folder counts the size of everything under it and its newest time. ``uri`` is ``prefix`` as an
    ``azureml://`` URI. azure.core errors pass through to the caller's boundary."""
    from azure.storage.blob import ContainerClient

    client = ContainerClient(account_url, container, credential=credential)
    found: dict[str, tuple[int, datetime, bool]] = {}
    for blob in client.list_blobs(name_starts_with=prefix):
        rest = str(blob.name)[len(prefix):]
        if not rest:
            continue
        top, slash, _ = rest.partition("/")
        modified = blob.last_modified if blob.last_modified.tzinfo else blob.last_modified.replace(tzinfo=UTC)
        total, newest, _ = found.get(top, (0, datetime.min.replace(tzinfo=UTC), False))
        found[top] = (total + int(blob.size or 0), max(newest, modified), bool(slash))
    out = [Checkpoint(name=top, uri=uri + top + ("/" if is_dir else ""), size_bytes=size, modified_at=when)
           for top, (size, when, is_dir) in found.items()]
    return sorted(out, key=lambda c: (c.modified_at, c.name))
