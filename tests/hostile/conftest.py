"""A real Train server on 127.0.0.1 for the hostile-input tests: SQLite in a temporary directory,
the fake backend as ``local``, one API key granted ``acct-a``."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.api import create_app
from core.auth import create_key
from core.server import LocalHTTPServer
from core.service import TrainService
from core.stores.sqlite import SQLiteJobStore
from tests.fakes import FakeBackend

ACCOUNT = "acct-a"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Live:
    server: LocalHTTPServer
    store: SQLiteJobStore
    backend: FakeBackend
    key: str

    @property
    def url(self) -> str:
        return self.server.url

    def auth(self) -> dict[str, str]:
        return {"x-api-key": self.key, "x-selected-account-id": ACCOUNT}

    def send(self, method: str, path: str, body: bytes | None = None,
             headers: list[tuple[str, str]] | None = None) -> Reply:
        """One raw request over a fresh connection: headers are sent exactly as given (repeats and
        all), with no client-side checks."""
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers or []:
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def stored_jobs(self) -> int:
        return len(self.store.list(ACCOUNT, _all())[0])


def _all() -> Any:
    from core.model import JobQuery

    return JobQuery(limit=100)


def start_live(tmp: Path) -> Iterator[Live]:
    store = SQLiteJobStore(tmp / "train.db")
    key, _ = create_key(store, [ACCOUNT])
    backend = FakeBackend("local")
    service = TrainService(store, {"local": backend})
    server = LocalHTTPServer(lambda: create_app(service, store), host="127.0.0.1", port=0).start()
    try:
        yield Live(server, store, backend, key)
    finally:
        server.stop()
        store.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    yield from start_live(tmp_path)


def assert_problem(reply: Reply, status: int | None = None) -> dict[str, Any]:
    """``reply`` is an RFC 9457 problem document (with ``status`` when given)."""
    assert reply.headers.get("content-type", "").split(";")[0] == "application/problem+json", reply
    doc = reply.json
    assert isinstance(doc, dict), doc
    for field in ("type", "title", "status", "detail"):
        assert field in doc, doc
    assert doc["status"] == reply.status
    if status is not None:
        assert reply.status == status, doc
    return doc


def send_raw(live: Live, data: bytes) -> bytes:
    """Write ``data`` to a fresh connection as is and return everything the server answers."""
    with socket.create_connection((live.server.host, live.server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def parse_raw(answer: bytes) -> Reply:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(status_line.split()[1]), headers, body)
