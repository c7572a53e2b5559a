"""The DynamoDB table behind ``DynamoDBJobStore``: its keys, its items and its CreateTable parameters.

Single-table design (``docs/dynamodb-table.md``): every item has a string ``PK`` and ``SK``.

=========================  ====================  ================================================
PK                         SK                    item
=========================  ====================  ================================================
``ACCOUNT#<account>``      ``JOB#<job id>``      a job: ``record`` (JobRecord JSON) + filter attrs
``ACCOUNT#<account>``      ``IDEM#<key>``        an idempotency claim, expiring through ``ttl``
``ACCOUNT#<account>``      ``KEY#<key id>``      an API key granted to the account
``NATIVE#<backend>#<id>``  ``NATIVE``            the job that runs as that native id
``KEY#<key id>``           ``KEY``               an API key (``record``: ApiKey JSON, hashed)
``KEYS``                   ``KEY#<key id>``      the directory of every key id
=========================  ====================  ================================================

A job item carries ``active_pk``/``active_sk`` only while PENDING or IN_PROGRESS, or while webhook
deliveries wait in its outbox (``JobRecord.needs_sweep``), which is what makes the ``active`` index
sparse.
"""

from __future__ import annotations

from typing import Any

from core.lifecycle import Status
from core.model import JobRecord

# Attribute values in DynamoDB's wire form, e.g. {"S": "text"} or {"N": "3"}.
Item = dict[str, dict[str, Any]]
Plain = dict[str, str | int]

PK, SK = "PK", "SK"
RECORD = "record"
ACTIVE_INDEX, ACTIVE_PK, ACTIVE_SK = "active", "active_pk", "active_sk"
# One partition for the whole index: the non-terminal jobs are few (bounded by GPU quotas) and a
# partition takes 1,000 writes/s. Sharding it (ACTIVE#0..N-1) would make list_active merge N queries.
ACTIVE_PARTITION = "ACTIVE"
NATIVE_KEY = "native_key"
TTL = "ttl"
KEYS_PARTITION = "KEYS"


def account_pk(account_id: str) -> str:
    return f"ACCOUNT#{account_id}"


def job_key(account_id: str, job_id: str) -> Plain:
    return {PK: account_pk(account_id), SK: f"JOB#{job_id}"}


def idem_key(account_id: str, key: str) -> Plain:
    return {PK: account_pk(account_id), SK: f"IDEM#{key}"}


def native_key(backend: str, native_id: str) -> str:
    # Backend names hold no '#', so the first '#' separates the two parts.
    return f"{backend}#{native_id}"


def native_item_key(key: str) -> Plain:
    return {PK: f"NATIVE#{key}", SK: "NATIVE"}


def api_key_key(key_id: str) -> Plain:
    return {PK: f"KEY#{key_id}", SK: "KEY"}


def directory_key(key_id: str) -> Plain:
    return {PK: KEYS_PARTITION, SK: f"KEY#{key_id}"}


def grant_key(account_id: str, key_id: str) -> Plain:
    return {PK: account_pk(account_id), SK: f"KEY#{key_id}"}


def job_attributes(job: JobRecord) -> tuple[Plain, list[str]]:
    """The non-key attributes of ``job``'s item, and the optional ones it must not have."""
    status = Status(job.status)
    attrs: Plain = {
        "job_id": job.id,
        RECORD: job.model_dump_json(),
        "status": status.value,
        "version": job.version,
        "backend": job.backend,
        "project": job.project,
        "name": job.name,
    }
    absent: list[str] = []
    if job.native_id is not None:
        attrs[NATIVE_KEY] = native_key(job.backend, job.native_id)
    else:
        absent.append(NATIVE_KEY)
    if job.needs_sweep:
        attrs[ACTIVE_PK], attrs[ACTIVE_SK] = ACTIVE_PARTITION, job.id
    else:
        absent += [ACTIVE_PK, ACTIVE_SK]
    return attrs, absent


def job_item(job: JobRecord) -> Plain:
    return {**job_key(job.account_id, job.id), **job_attributes(job)[0]}


def to_wire(item: Plain) -> Item:
    return {name: _value(v) for name, v in item.items()}


def _value(value: str | int) -> dict[str, str]:
    return {"S": value} if isinstance(value, str) else {"N": str(value)}


def from_wire(item: Item) -> Plain:
    """Only the S and N attributes Train writes; anything else on the item is left out."""
    out: Plain = {}
    for name, value in item.items():
        if "S" in value:
            out[name] = value["S"]
        elif "N" in value:
            out[name] = int(value["N"])
    return out


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable parameters; serverless.yml declares the same table."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in (PK, SK, ACTIVE_PK, ACTIVE_SK)
        ],
        "KeySchema": [{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": ACTIVE_INDEX,
                "KeySchema": [
                    {"AttributeName": ACTIVE_PK, "KeyType": "HASH"},
                    {"AttributeName": ACTIVE_SK, "KeyType": "RANGE"},
                ],
                # The record rides along so the sweeper reads each page with one query.
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": [RECORD]},
            }
        ],
        "SSESpecification": {"Enabled": True},
    }
