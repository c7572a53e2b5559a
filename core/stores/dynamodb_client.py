"""DynamoDB calls for ``DynamoDBJobStore``: expressions, paging, batching, and the one place where
botocore errors become ours. botocore is imported only when a call is made."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.errors import PayloadTooLargeError, TrainError, UnavailableError, VersionConflictError
from core.stores.dynamodb_ops import Op
from core.stores.dynamodb_table import TTL, Item, Plain, from_wire, table_definition, to_wire

# Error codes DynamoDB returns when a retry later can succeed (besides every 5xx).
_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "LimitExceededException",
    }
)
# The per-item codes inside a TransactionCanceledException that mean the same.
_RETRYABLE_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict"})
_CHECK_FAILED = "ConditionalCheckFailed"
_TOO_LARGE = "the job record is too large to store (a DynamoDB item holds at most 400 KB)"
_BATCH_GET_MAX = 100
_BATCH_ATTEMPTS = 6


class WriteRejected(VersionConflictError):
    """A conditional write (or a transaction) did not apply. ``codes[i]`` says why for the i-th
    operation (``ConditionalCheckFailed`` or ``None``); ``items[i]`` is what was stored there when
    DynamoDB returned it (``ReturnValuesOnConditionCheckFailure``)."""

    def __init__(self, detail: str, *, codes: list[str], items: list[Plain | None]) -> None:
        super().__init__(detail)
        self.codes = codes
        self.items = items

    def failed(self, index: int) -> bool:
        return index < len(self.codes) and self.codes[index] == _CHECK_FAILED


def from_client_error(response: dict[str, Any]) -> TrainError:
    """Our error for a botocore ``ClientError.response``."""
    error = response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if code == "ConditionalCheckFailedException":
        item = response.get("Item")
        return WriteRejected("the item changed since it was read", codes=[_CHECK_FAILED], items=[_plain(item)])
    if code == "TransactionCanceledException":
        reasons = response.get("CancellationReasons") or []
        codes = [str(r.get("Code", "None")) for r in reasons]
        if _CHECK_FAILED in codes:
            items = [_plain(r.get("Item")) for r in reasons]
            return WriteRejected("the transaction's conditions failed", codes=codes, items=items)
        if any(c in _RETRYABLE_REASONS for c in codes):
            return UnavailableError(f"DynamoDB is busy, retry later: {', '.join(codes)}")
        if any(r.get("Code") == "ValidationError" and _too_large(r.get("Message")) for r in reasons):
            return PayloadTooLargeError(_TOO_LARGE)
        return TrainError(f"DynamoDB cancelled the transaction: {', '.join(codes) or message}")
    if code in _RETRYABLE_CODES or status >= 500:
        return UnavailableError(f"DynamoDB is unavailable or throttling, retry later: {code or status}")
    if code == "ValidationException" and _too_large(message):
        return PayloadTooLargeError(_TOO_LARGE)
    return TrainError(f"DynamoDB {code}: {message}")


def _too_large(message: object) -> bool:
    return "item size" in str(message).lower()  # "Item size has exceeded the maximum allowed size"


def _plain(item: Item | None) -> Plain | None:
    return from_wire(item) if item else None


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise every botocore error as a ``TrainError`` (throttling, 5xx and connection trouble as
    the retryable ``UnavailableError``), so no botocore type leaves the adapter."""
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    try:
        yield
    except ClientError as exc:
        raise from_client_error(exc.response) from exc
    except (BotoConnectionError, HTTPClientError) as exc:
        raise UnavailableError(f"DynamoDB is unreachable: {exc}") from exc
    except BotoCoreError as exc:
        raise TrainError(f"DynamoDB client error: {exc}") from exc


_SINGLE = {"Put": "put_item", "Update": "update_item", "Delete": "delete_item"}


class Table:
    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def get(self, key: Plain) -> Plain | None:
        with translated():
            response = self.client.get_item(TableName=self.name, Key=to_wire(key), ConsistentRead=True)
        return _plain(response.get("Item"))

    def write(self, ops: list[Op]) -> None:
        """Apply ``ops`` atomically: one conditional PutItem/UpdateItem/DeleteItem when there is
        one, else one TransactWriteItems.

        Raises:
            WriteRejected: a condition failed; nothing was written.
        """
        ops = [(kind, {"TableName": self.name, **params}) for kind, params in ops]
        for _, params in ops:
            if "ConditionExpression" in params:
                params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        with translated():
            if len(ops) == 1:
                kind, params = ops[0]
                getattr(self.client, _SINGLE[kind])(**params)
            else:
                self.client.transact_write_items(TransactItems=[{kind: params} for kind, params in ops])

    def query(self, params: dict[str, Any]) -> Iterator[Plain]:
        """Every item the query yields, following ``LastEvaluatedKey`` only as far as the caller reads."""
        params = {"TableName": self.name, **params}
        while True:
            with translated():
                page = self.client.query(**params)
            yield from (from_wire(item) for item in page.get("Items", []))
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    def batch_get(self, keys: list[Plain]) -> list[Plain]:
        """The items stored under ``keys`` (strongly consistent, in no particular order)."""
        out: list[Plain] = []
        for start in range(0, len(keys), _BATCH_GET_MAX):
            pending = [to_wire(k) for k in keys[start : start + _BATCH_GET_MAX]]
            for attempt in range(_BATCH_ATTEMPTS):
                with translated():
                    response = self.client.batch_get_item(
                        RequestItems={self.name: {"Keys": pending, "ConsistentRead": True}}
                    )
                out += [from_wire(item) for item in response.get("Responses", {}).get(self.name, [])]
                pending = response.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
                if not pending:
                    break
                time.sleep(0.05 * 2**attempt)  # DynamoDB leaves keys unprocessed when throttling
            else:
                raise UnavailableError("DynamoDB kept keys unprocessed; retry later")
        return out


def create_table(client: Any, table_name: str) -> None:
    """Create the table with its ``active`` index, TTL on ``ttl`` and point-in-time recovery.

    ``client`` is a boto3 DynamoDB client. Used by tests and by one-off deployments outside
    CloudFormation; waits until the table is ACTIVE before enabling TTL and PITR.
    """
    with translated():
        client.create_table(**table_definition(table_name))
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        client.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL}
        )
        client.update_continuous_backups(
            TableName=table_name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
