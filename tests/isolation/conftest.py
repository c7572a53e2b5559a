"""Two accounts on one real server, over each store that holds jobs and API keys.

``world`` (one per store and test module) runs ``LocalHTTPServer`` over ``TrainService`` with
the fake backend as ``local``; accounts ``acct-a`` and ``acct-b`` each own jobs submitted through
the API. Keys: ``a`` (acct-a), ``b`` (acct-b), ``ab`` (both), ``revoked`` (acct-a, revoked).
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core.api import create_app
from core.auth import create_key, revoke_key
from core.server import LocalHTTPServer
from core.service import TrainService
from core.stores.dynamodb import DynamoDBJobStore, create_table
from core.stores.sqlite import SQLiteJobStore
from tests.fakes import FakeBackend
from tests.servers import dynamodb_client

A, B = "acct-a", "acct-b"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Backing:
    """A store, a second handle on the same data (another connection or client, as another
    process would have), and a reader of everything stored, byte for byte."""

    store: Any
    second: Callable[[], Any]
    raw: Callable[[], bytes]


def _sqlite(tmp: Path) -> Backing:
    path = tmp / "train.db"

    def raw() -> bytes:
        dump = b""
        with sqlite3.connect(path) as conn:
            for table in ("jobs", "idempotency", "api_keys", "api_key_accounts"):
                dump += repr(conn.execute(f"SELECT * FROM {table}").fetchall()).encode()
        files = [p for p in tmp.iterdir() if p.name.startswith("train.db")]  # the file, its WAL and shm
        return dump + b"".join(p.read_bytes() for p in files)

    return Backing(SQLiteJobStore(path), lambda: SQLiteJobStore(path), raw)


def _dynamodb(endpoint: str) -> Backing:
    client = dynamodb_client(endpoint, max_pool_connections=16)
    name = f"train-iso-{uuid.uuid4().hex[:10]}"
    create_table(client, name)

    def raw() -> bytes:
        items, start = [], None
        while True:
            page = client.scan(TableName=name, **({"ExclusiveStartKey": start} if start else {}))
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return json.dumps(items).encode()

    return Backing(DynamoDBJobStore(name, client=client),
                   lambda: DynamoDBJobStore(name, client=dynamodb_client(endpoint)), raw)


STORES = ["sqlite", "dynamodb"]


def open_backing(kind: str, request: pytest.FixtureRequest, tmp: Path) -> Backing:
    if kind == "sqlite":
        return _sqlite(tmp)
    return _dynamodb(request.getfixturevalue("moto_endpoint"))


@dataclass
class World:
    backing: Backing
    server: LocalHTTPServer
    backend: FakeBackend
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def store(self) -> Any:
        return self.backing.store

    def call(self, method: str, path: str, *, key: str | None = "a", account: str | None = A,
             body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        """``key`` names one of ``keys`` (or is a literal header value when it is not a name)."""
        sent = dict(headers or {})
        if key is not None:
            sent["x-api-key"] = self.keys.get(key, key)
        if account is not None:
            sent["x-selected-account-id"] = account
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            text = response.read()
            headers_out = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        return Reply(response.status, headers_out, json.loads(text) if text else None)

    def submit(self, key: str, account: str, name: str, project: str = "default",
               idempotency_key: str | None = None) -> dict[str, Any]:
        spec = {"name": name, "project": project, "backend": "local", "command": ["python", "train.py"]}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        reply = self.call("POST", "/v1/jobs", key=key, account=account, body=spec, headers=headers)
        assert reply.status == 201, reply.body
        return reply.body


def build_world(backing: Backing) -> Iterator[World]:
    backend = FakeBackend("local")
    service = TrainService(backing.store, {"local": backend})
    server = LocalHTTPServer(lambda: create_app(service, backing.store), host="127.0.0.1", port=0).start()
    world = World(backing, server, backend)
    for name, accounts in {"a": [A], "b": [B], "ab": [A, B], "revoked": [A]}.items():
        world.keys[name], record = create_key(backing.store, accounts, label=f"key {name}")
        world.key_ids[name] = record.key_id
    revoke_key(backing.store, world.key_ids["revoked"])
    try:
        yield world
    finally:
        server.stop()
        close = getattr(backing.store, "close", None)
        if close is not None:
            close()


@pytest.fixture(params=STORES)
def fresh_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A world of its own (for tests that change keys or jobs)."""
    yield from build_world(open_backing(request.param, request, tmp_path))
