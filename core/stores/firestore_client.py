"""Firestore calls for ``FirestoreJobStore``: the client, the transaction runner, and the one place
where google.api_core errors become ours. The SDK is imported only inside these functions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from core.errors import TrainError, UnavailableError, VersionConflictError
from core.stores.firestore_layout import Doc
from core.stores.firestore_tx import Tx

T = TypeVar("T")

# How often a transaction is run again after its commit aborted on contention.
TRANSACTION_ATTEMPTS = 5


def build_client(project: str | None) -> Any:
    """A ``firestore.Client``; it talks to ``FIRESTORE_EMULATOR_HOST`` when that is set."""
    with translated():
        from google.cloud import firestore

        return firestore.Client(project=project)


def call_options(timeout: float) -> dict[str, Any]:
    """``retry``/``timeout`` for single calls: retry what the SDK deems transient, but give up
    after ``timeout`` seconds in all (the SDK's defaults wait up to 300 s)."""
    from google.api_core.retry import Retry

    retry = Retry(predicate=_transient, initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout)
    return {"retry": retry, "timeout": timeout}


def _transient(exc: Exception) -> bool:
    from google.api_core import exceptions as g

    return isinstance(exc, (g.ServiceUnavailable, g.DeadlineExceeded, g.InternalServerError, g.ResourceExhausted))


class GoogleTx:
    """``Tx`` over a real ``google.cloud.firestore.Transaction``."""

    def __init__(self, client: Any, transaction: Any, options: dict[str, Any]) -> None:
        self._client = client
        self._transaction = transaction
        self._options = options

    def _ref(self, collection: str, doc_id: str) -> Any:
        return self._client.collection(collection).document(doc_id)

    def get(self, collection: str, doc_id: str) -> Doc | None:
        snapshot = self._ref(collection, doc_id).get(transaction=self._transaction, **self._options)
        return snapshot.to_dict() if snapshot.exists else None

    def create(self, collection: str, doc_id: str, data: Doc) -> None:
        self._transaction.create(self._ref(collection, doc_id), data)

    def set(self, collection: str, doc_id: str, data: Doc) -> None:
        self._transaction.set(self._ref(collection, doc_id), data)

    def delete(self, collection: str, doc_id: str) -> None:
        self._transaction.delete(self._ref(collection, doc_id))


def run_transaction(client: Any, options: dict[str, Any], body: Callable[[Tx], T]) -> T:
    """Run ``body`` in a read-write transaction, again from the start (up to
    ``TRANSACTION_ATTEMPTS`` times) when the commit aborts because of a concurrent change."""
    from google.api_core import exceptions as g
    from google.cloud import firestore

    @firestore.transactional
    def attempt(transaction: Any) -> T:
        return body(GoogleTx(client, transaction, options))

    with translated():
        try:
            result: T = attempt(client.transaction(max_attempts=TRANSACTION_ATTEMPTS))
            return result
        except ValueError as exc:
            # The SDK wraps its last Aborted in a ValueError once the attempts are spent.
            if isinstance(exc.__cause__, g.Aborted):
                raise VersionConflictError("the documents kept changing during the transaction; retry") from exc
            raise


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise google errors as ours: unavailability and throttling as retryable 503s, contention
    as 409s, anything else as a 500. Our own errors pass through untouched."""
    try:
        yield
    except TrainError:
        raise
    except Exception as exc:
        mapped = from_google_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


def from_google_error(exc: BaseException) -> TrainError | None:
    """Our error for an exception raised by the google SDK; None for anything else."""
    module = type(exc).__module__
    if not module.startswith(("google.", "grpc")):
        return None
    from google.api_core import exceptions as g

    if isinstance(exc, (g.ServiceUnavailable, g.DeadlineExceeded, g.ResourceExhausted, g.InternalServerError)):
        return UnavailableError(f"Firestore is unavailable or throttling, retry later: {_text(exc)}")
    if isinstance(exc, g.RetryError):  # the SDK's retries ran out on transient errors
        return UnavailableError(f"Firestore did not answer in time, retry later: {_text(exc)}")
    if isinstance(exc, (g.Aborted, g.AlreadyExists)):
        return VersionConflictError(f"a concurrent change won: {_text(exc)}")
    from google.auth import exceptions as auth

    if isinstance(exc, auth.TransportError):
        return UnavailableError(f"cannot reach Google's token endpoint: {exc}")
    return TrainError(f"Firestore call failed: {type(exc).__name__}: {_text(exc)}")


def _text(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    return str(message if message else exc)[:500]
