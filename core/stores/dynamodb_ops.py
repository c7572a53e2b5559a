"""The write operations of ``DynamoDBJobStore`` as plain request parameters, with no I/O.

Each builder returns one ``Op``: the operation's kind and its parameters (TableName is added
when it is sent). ``Table.write`` sends one op as a single conditional write and several as one
TransactWriteItems.
"""

from __future__ import annotations

from typing import Any

from core.errors import InvalidRequestError
from core.model import ApiKey, JobRecord
from core.ports import IdempotencyClaim
from core.stores.dynamodb_table import (
    NATIVE_KEY,
    PK,
    RECORD,
    TTL,
    Item,
    Plain,
    account_pk,
    api_key_key,
    directory_key,
    grant_key,
    idem_key,
    job_attributes,
    job_item,
    job_key,
    native_item_key,
    to_wire,
)

Op = tuple[str, dict[str, Any]]  # ("Put" | "Update" | "Delete", parameters without TableName)

MAX_TRANSACTION = 100  # TransactWriteItems holds at most 100 actions


class Expr:
    """Placeholders for one request's expressions: ``#attr`` names and ``:vN`` values."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._values: Item = {}

    def n(self, attr: str) -> str:
        placeholder = f"#{attr}"
        self._names[placeholder] = attr
        return placeholder

    def v(self, value: str | int) -> str:
        placeholder = f":v{len(self._values)}"
        self._values.update(to_wire({placeholder: value}))
        return placeholder

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self._names:
            out["ExpressionAttributeNames"] = dict(self._names)
        if self._values:
            out["ExpressionAttributeValues"] = dict(self._values)
        return out


def put_new_job(job: JobRecord) -> Op:
    e = Expr()
    condition = f"attribute_not_exists({e.n(PK)})"
    return ("Put", {"Item": to_wire(job_item(job)), "ConditionExpression": condition, **e.params()})


def update_job(job: JobRecord, expected_version: int, expected_status: str, stored_native: str | None) -> Op:
    """One UpdateItem of the whole job item, conditional on version, status and the native key
    the item holds now. A job that no longer needs the sweeper REMOVEs the active index attributes."""
    attrs, absent = job_attributes(job)
    e = Expr()
    expression = "SET " + ", ".join(f"{e.n(attr)} = {e.v(value)}" for attr, value in attrs.items())
    if absent:
        expression += " REMOVE " + ", ".join(e.n(attr) for attr in absent)
    condition = (
        f"attribute_exists({e.n(PK)}) AND {e.n('version')} = {e.v(expected_version)}"
        f" AND {e.n('status')} = {e.v(expected_status)} AND "
    )
    if stored_native is None:
        condition += f"attribute_not_exists({e.n(NATIVE_KEY)})"
    else:
        condition += f"{e.n(NATIVE_KEY)} = {e.v(stored_native)}"
    key = to_wire(job_key(job.account_id, job.id))
    return ("Update", {"Key": key, "UpdateExpression": expression, "ConditionExpression": condition, **e.params()})


def put_native(job: JobRecord, key: str) -> Op:
    """The native-id lookup item, refused when it already points at another job."""
    e = Expr()
    item: Plain = {**native_item_key(key), "job_pk": account_pk(job.account_id), "job_id": job.id}
    condition = f"attribute_not_exists({e.n(PK)}) OR {e.n('job_id')} = {e.v(job.id)}"
    return ("Put", {"Item": to_wire(item), "ConditionExpression": condition, **e.params()})


def delete_native(key: str, job_id: str) -> Op:
    """Drop a lookup item this job no longer runs as; never one that points at another job."""
    e = Expr()
    condition = f"attribute_not_exists({e.n(PK)}) OR {e.n('job_id')} = {e.v(job_id)}"
    return ("Delete", {"Key": to_wire(native_item_key(key)), "ConditionExpression": condition, **e.params()})


def put_claim(job: JobRecord, claim: IdempotencyClaim, *, now: int, ttl_seconds: int) -> Op:
    item: Plain = {
        **idem_key(job.account_id, claim.key),
        "request_hash": claim.request_hash,
        "job_id": job.id,
        TTL: now + ttl_seconds,
    }
    # TTL deletes expired items lazily (often hours late); an expired claim no longer counts.
    e = Expr()
    condition = f"attribute_not_exists({e.n(PK)}) OR {e.n(TTL)} < {e.v(now)}"
    return ("Put", {"Item": to_wire(item), "ConditionExpression": condition, **e.params()})


def put_key(key: ApiKey, current: Plain | None) -> list[Op]:
    """Write the key, its directory entry and one grant item per account, dropping the grants of
    accounts it no longer has; conditional on the key item being what was just read."""
    e = Expr()
    if current is None:
        condition = f"attribute_not_exists({e.n(PK)})"
        old_accounts: set[str] = set()
    else:
        condition = f"{e.n(RECORD)} = {e.v(str(current[RECORD]))}"
        old_accounts = set(ApiKey.model_validate_json(str(current[RECORD])).account_ids)
    item: Plain = {**api_key_key(key.key_id), "key_id": key.key_id, RECORD: key.model_dump_json()}
    ops: list[Op] = [
        ("Put", {"Item": to_wire(item), "ConditionExpression": condition, **e.params()}),
        ("Put", {"Item": to_wire({**directory_key(key.key_id), "key_id": key.key_id})}),
    ]
    accounts = sorted(set(key.account_ids))
    ops += [("Put", {"Item": to_wire({**grant_key(a, key.key_id), "key_id": key.key_id})}) for a in accounts]
    ops += [("Delete", {"Key": to_wire(grant_key(a, key.key_id))}) for a in sorted(old_accounts - set(accounts))]
    if len(ops) > MAX_TRANSACTION:
        raise InvalidRequestError(f"an API key can be granted to at most {MAX_TRANSACTION - 2} accounts")
    return ops


def replace_key_record(key_id: str, stored_record: str, new_record: str) -> Op:
    e = Expr()
    return (
        "Update",
        {
            "Key": to_wire(api_key_key(key_id)),
            "UpdateExpression": f"SET {e.n(RECORD)} = {e.v(new_record)}",
            "ConditionExpression": f"{e.n(RECORD)} = {e.v(stored_record)}",
            **e.params(),
        },
    )
