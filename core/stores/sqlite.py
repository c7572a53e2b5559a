"""The embedded store for local mode: jobs, idempotency claims and API keys in one SQLite file.

Concurrency model: one connection per thread (``threading.local``), every connection in
autocommit mode with explicit ``BEGIN IMMEDIATE`` for multi-statement writes. In WAL mode each
reader works on its own snapshot, so API threads never queue behind the local runner's writes;
writers are serialised by SQLite's own file lock, waiting up to ``busy_timeout``. That one lock is
also what keeps a second process safe (``train keys create --data-dir X`` while ``train serve``
runs), so threads and processes go through the same mechanism and there is no Python lock to get
out of step with it. A single connection behind a lock would make every reader wait while a
writer sits in the busy handler for another process.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import (
    IdempotencyMismatchError,
    TrainError,
    UnavailableError,
    VersionConflictError,
)
from core.lifecycle import ACTIVE, Status
from core.model import ApiKey, JobQuery, JobRecord
from core.ports import IdempotencyClaim
from core.stores.cursor import check_limit, decode_id_cursor, encode_cursor

# The partial index and the query that reads it must spell the predicate identically. The index
# holds what JobRecord.needs_sweep says: non-terminal jobs, and ended ones with webhooks to deliver.
_STATUS_SQL = "status IN (" + ",".join(f"'{s.value}'" for s in sorted(ACTIVE)) + ")"
_ACTIVE_SQL = f"({_STATUS_SQL} OR outbox > 0)"

# _MIGRATIONS[n] takes the file from schema version n to n + 1 (PRAGMA user_version).
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS jobs (
            id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            project TEXT NOT NULL,
            name TEXT NOT NULL,
            backend TEXT NOT NULL,
            status TEXT NOT NULL,
            version INTEGER NOT NULL,
            native_id TEXT,
            created_at TEXT NOT NULL,
            record TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS jobs_by_account ON jobs (account_id, id DESC)",
        f"CREATE INDEX IF NOT EXISTS jobs_active ON jobs (id) WHERE {_STATUS_SQL}",
        "CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_native_id ON jobs (backend, native_id) WHERE native_id IS NOT NULL",
        """CREATE TABLE IF NOT EXISTS idempotency (
            account_id TEXT NOT NULL,
            key TEXT NOT NULL,
            request_hash TEXT NOT NULL,
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            PRIMARY KEY (account_id, key)
        )""",
        """CREATE TABLE IF NOT EXISTS api_keys (
            key_id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            revoked_at TEXT,
            record TEXT NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS api_key_accounts (
            account_id TEXT NOT NULL,
            key_id TEXT NOT NULL REFERENCES api_keys (key_id) ON DELETE CASCADE,
            PRIMARY KEY (account_id, key_id)
        )""",
    ),
    (
        # outbox: how many webhook deliveries wait in the record's outbox.
        "ALTER TABLE jobs ADD COLUMN outbox INTEGER NOT NULL DEFAULT 0",
        "DROP INDEX IF EXISTS jobs_active",
        f"CREATE INDEX jobs_active ON jobs (id) WHERE {_ACTIVE_SQL}",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_Page = tuple[list[JobRecord], str | None]  # a class attribute named `list` shadows the builtin

# Primary result codes that mean "try again later" rather than a bug in a statement.
_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PROTOCOL,
    }
)


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced, so ``close`` reaches every thread's one."""


class SQLiteJobStore:
    """``JobStore`` and ``KeyStore`` over one SQLite file in WAL mode."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._all_lock = threading.Lock()
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _translated():
            conn = self._conn()
            conn.execute("PRAGMA journal_mode = WAL")
            self._migrate(conn)

    # ---- connections and transactions -----------------------------------------------------------

    def _conn(self) -> _Connection:
        if self._closed:
            raise UnavailableError("the job store is closed")
        conn: _Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,  # sets sqlite3_busy_timeout on the connection
                isolation_level=None,
                check_same_thread=False,  # only its own thread uses it; close() may come from another
                factory=_Connection,
            )
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._all_lock:
                self._all.add(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[_Connection]:
        """One write transaction holding the file's write lock from its first statement, so a
        read inside it cannot go stale before the write (no read-modify-write race)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _migrate(self, conn: _Connection) -> None:
        with self._write():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise TrainError(f"{self.path} has schema version {version}; this Train knows {SCHEMA_VERSION}")
            for step in _MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns = list(self._all)
            self._all.clear()
        for conn in conns:
            conn.close()

    # ---- JobStore -------------------------------------------------------------------------------

    def create(self, job: JobRecord, idempotency: IdempotencyClaim | None = None) -> tuple[JobRecord, bool]:
        with _translated(), self._write() as conn:
            if idempotency is not None:
                seen = conn.execute(
                    "SELECT request_hash, record FROM idempotency JOIN jobs ON jobs.id = idempotency.job_id"
                    " WHERE idempotency.account_id = ? AND key = ?",
                    (job.account_id, idempotency.key),
                ).fetchone()
                if seen is not None:
                    if seen[0] != idempotency.request_hash:
                        raise IdempotencyMismatchError("Idempotency-Key was used with a different request")
                    return JobRecord.model_validate_json(seen[1]), False
            try:
                conn.execute(
                    "INSERT INTO jobs (id, account_id, project, name, backend, status, version, native_id,"
                    " outbox, created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job.id, job.account_id, *_columns(job), job.created_at.isoformat(), job.model_dump_json()),
                )
            except sqlite3.IntegrityError as exc:
                raise _conflict(job, exc) from exc
            if idempotency is not None:
                conn.execute(
                    "INSERT INTO idempotency (account_id, key, request_hash, job_id) VALUES (?, ?, ?, ?)",
                    (job.account_id, idempotency.key, idempotency.request_hash, job.id),
                )
        return job.model_copy(deep=True), True

    def get(self, account_id: str, job_id: str) -> JobRecord | None:
        with _translated():
            row = (
                self._conn()
                .execute("SELECT record FROM jobs WHERE id = ? AND account_id = ?", (job_id, account_id))
                .fetchone()
            )
        return JobRecord.model_validate_json(row[0]) if row else None

    def update(self, job: JobRecord, *, expected_version: int, expected_status: Status) -> JobRecord:
        stored = job.model_copy(deep=True, update={"version": expected_version + 1})
        with _translated():
            try:
                cur = self._conn().execute(
                    "UPDATE jobs SET project = ?, name = ?, backend = ?, status = ?, version = ?, native_id = ?,"
                    " outbox = ?, record = ? WHERE id = ? AND account_id = ? AND version = ? AND status = ?",
                    (
                        *_columns(stored),
                        stored.model_dump_json(),
                        job.id,
                        job.account_id,
                        expected_version,
                        Status(expected_status).value,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise _conflict(job, exc) from exc
        if cur.rowcount != 1:
            raise VersionConflictError(f"job {job.id} changed since it was read")
        return stored

    def list(self, account_id: str, query: JobQuery) -> _Page:
        check_limit(query.limit)
        where, params = ["account_id = ?"], [account_id]
        if query.cursor:
            where.append("id < ?")
            params.append(decode_id_cursor(query.cursor))
        if query.status:
            where.append(f"status IN ({', '.join('?' for _ in query.status)})")
            params.extend(Status(s).value for s in query.status)
        for column in ("backend", "project", "name"):
            value = getattr(query, column)
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT record FROM jobs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"  # noqa: S608
        return self._page(sql, [*params, query.limit + 1], query.limit)

    def list_active(self, *, limit: int = 100, cursor: str | None = None) -> _Page:
        check_limit(limit)
        after = decode_id_cursor(cursor) if cursor else ""
        # INDEXED BY makes SQLite fail rather than fall back to scanning the whole table.
        sql = f"SELECT record FROM jobs INDEXED BY jobs_active WHERE {_ACTIVE_SQL} AND id > ? ORDER BY id LIMIT ?"  # noqa: S608
        return self._page(sql, [after, limit + 1], limit)

    def _page(self, sql: str, params: builtins.list[Any], limit: int) -> _Page:
        with _translated():
            rows = self._conn().execute(sql, params).fetchall()
        page = [JobRecord.model_validate_json(row[0]) for row in rows[:limit]]
        return page, (encode_cursor({"id": page[-1].id}) if len(rows) > limit else None)

    def find_by_native_id(self, backend: str, native_id: str) -> JobRecord | None:
        with _translated():
            row = (
                self._conn()
                .execute("SELECT record FROM jobs WHERE backend = ? AND native_id = ?", (backend, native_id))
                .fetchone()
            )
        return JobRecord.model_validate_json(row[0]) if row else None

    # ---- KeyStore -------------------------------------------------------------------------------

    def put_key(self, key: ApiKey) -> None:
        with _translated(), self._write() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, created_at, revoked_at, record) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (key_id) DO UPDATE SET created_at = excluded.created_at,"
                " revoked_at = excluded.revoked_at, record = excluded.record",
                (key.key_id, key.created_at.isoformat(), _iso(key.revoked_at), key.model_dump_json()),
            )
            conn.execute("DELETE FROM api_key_accounts WHERE key_id = ?", (key.key_id,))
            conn.executemany(
                "INSERT OR IGNORE INTO api_key_accounts (account_id, key_id) VALUES (?, ?)",
                [(account, key.key_id) for account in key.account_ids],
            )

    def get_key(self, key_id: str) -> ApiKey | None:
        with _translated():
            row = self._conn().execute("SELECT record FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return ApiKey.model_validate_json(row[0]) if row else None

    def list_keys(self, account_id: str | None = None) -> builtins.list[ApiKey]:
        with _translated():
            if account_id is None:
                rows = self._conn().execute("SELECT record FROM api_keys ORDER BY created_at, key_id").fetchall()
            else:
                rows = (
                    self._conn()
                    .execute(
                        "SELECT record FROM api_keys JOIN api_key_accounts USING (key_id)"
                        " WHERE account_id = ? ORDER BY created_at, key_id",
                        (account_id,),
                    )
                    .fetchall()
                )
        return [ApiKey.model_validate_json(row[0]) for row in rows]

    def revoke_key(self, key_id: str, at: datetime) -> bool:
        with _translated(), self._write() as conn:
            row = conn.execute("SELECT record FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
            if row is None:
                return False
            key = ApiKey.model_validate_json(row[0])
            if key.revoked_at is None:  # the first revocation time stands
                key = key.model_copy(update={"revoked_at": at})
                conn.execute(
                    "UPDATE api_keys SET revoked_at = ?, record = ? WHERE key_id = ?",
                    (_iso(at), key.model_dump_json(), key_id),
                )
        return True


def _columns(job: JobRecord) -> tuple[Any, ...]:
    """The denormalised columns in the order both INSERT and UPDATE write them."""
    return (job.project, job.name, job.backend, Status(job.status).value, job.version, job.native_id, len(job.outbox))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _conflict(job: JobRecord, exc: sqlite3.IntegrityError) -> VersionConflictError:
    if "native_id" in str(exc):
        return VersionConflictError(f"native id {job.native_id} on {job.backend} already belongs to another job")
    return VersionConflictError(f"job {job.id} already exists")


@contextmanager
def _translated() -> Iterator[None]:
    """Re-raise sqlite3 errors as ours: lock and I/O trouble as retryable 503s, the rest as 500s."""
    try:
        yield
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in _UNAVAILABLE_CODES:
            raise UnavailableError(f"job store unavailable: {exc}") from exc
        raise TrainError(f"job store error: {exc}") from exc
