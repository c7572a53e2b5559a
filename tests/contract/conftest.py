"""Store factories for the contract suites. A new adapter joins every contract test by adding one
entry to ``STORE_FACTORIES`` (and to ``KEY_STORE_FACTORIES`` when it also stores API keys).

A factory takes the test's ``tmp_path`` and returns the store; when the store has a ``close``
method the fixture calls it after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.ids import new_id
from core.lifecycle import Status
from core.model import JobRecord
from core.stores.sqlite import SQLiteJobStore
from tests.fakes import InMemoryJobStore, InMemoryKeyStore
from tests.firestore_emulator import new_firestore_store
from tests.servers import new_dynamodb_store

Factory = Callable[[Path], Any]

STORE_FACTORIES: dict[str, Factory] = {
    "memory": lambda tmp_path: InMemoryJobStore(),
    "sqlite": lambda tmp_path: SQLiteJobStore(tmp_path / "train.db"),
    "dynamodb": lambda tmp_path: new_dynamodb_store(),
    "firestore": lambda tmp_path: new_firestore_store(),
}

KEY_STORE_FACTORIES: dict[str, Factory] = {
    "memory": lambda tmp_path: InMemoryKeyStore(),
    "sqlite": lambda tmp_path: SQLiteJobStore(tmp_path / "train.db"),
    "dynamodb": lambda tmp_path: new_dynamodb_store(),
    "firestore": lambda tmp_path: new_firestore_store(),
}


def _open(factory: Factory, tmp_path: Path) -> Iterator[Any]:
    store = factory(tmp_path)
    try:
        yield store
    finally:
        close = getattr(store, "close", None)
        if close is not None:
            close()


@pytest.fixture(params=list(STORE_FACTORIES))
def job_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    yield from _open(STORE_FACTORIES[request.param], tmp_path)


@pytest.fixture(params=list(KEY_STORE_FACTORIES))
def key_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    yield from _open(KEY_STORE_FACTORIES[request.param], tmp_path)


T0 = datetime(2026, 1, 1, tzinfo=UTC)
BASE_MS = int(T0.timestamp() * 1000)


def make_job(
    account_id: str = "acct-a",
    *,
    name: str = "mnist",
    project: str = "default",
    backend: str = "local",
    status: Status = Status.PENDING,
    native_id: str | None = None,
    seq: int | None = None,
) -> JobRecord:
    """A minimal valid job record. Its id is fresh; with ``seq`` it also sorts after every job made
    with a smaller ``seq`` (ids made in the same millisecond have no order of their own)."""
    spec = {"name": name, "project": project, "backend": backend, "command": ["python", "train.py"]}
    return JobRecord(
        id=new_id(None if seq is None else BASE_MS + seq),
        account_id=account_id,
        name=name,
        project=project,
        backend=backend,
        status=status,
        native_id=native_id,
        spec=spec,
        created_at=T0,
        updated_at=T0,
    )
