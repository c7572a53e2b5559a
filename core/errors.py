"""The error tree. Each class carries its HTTP status and whether a retry can help.

The API renders every ``TrainError`` as RFC 9457 problem+json in one place (``core/api.py``);
event handlers re-raise only ``retryable`` errors so the platform redelivers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class FieldError:
    """One invalid field: ``path`` is its location in the request, e.g. ``("storage_mounts", 0, "source_uri")``."""

    path: tuple[str | int, ...]
    message: str

    @property
    def field(self) -> str:
        out = ""
        for part in self.path:
            if isinstance(part, int):
                out += f"[{part}]"
            else:
                out += f".{part}" if out else str(part)
        return out

    @property
    def pointer(self) -> str:
        return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in self.path)


class TrainError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    slug: ClassVar[str] = "internal"
    retryable: ClassVar[bool] = False

    def __init__(self, detail: str, *, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class InvalidRequestError(TrainError):
    status, title, slug = 400, "Bad request", "bad-request"


class UnauthenticatedError(TrainError):
    status, title, slug = 401, "Unauthenticated", "unauthenticated"


class ForbiddenError(TrainError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFoundError(TrainError):
    status, title, slug = 404, "Not found", "not-found"


class PayloadTooLargeError(TrainError):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaTypeError(TrainError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class InvalidSpecError(TrainError):
    """The request is well-formed but names something Train or the backend cannot run."""

    status, title, slug = 422, "Invalid job request", "invalid-request"

    @classmethod
    def of(cls, errors: list[FieldError]) -> InvalidSpecError:
        """One error naming every bad field."""
        return cls("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)

    @classmethod
    def at(cls, path: tuple[str | int, ...], message: str) -> InvalidSpecError:
        return cls(f"{FieldError(path, message).field}: {message}", errors=[FieldError(path, message)])


class IdempotencyMismatchError(TrainError):
    status, title, slug = 422, "Idempotency key reused", "idempotency-mismatch"


class VersionConflictError(TrainError):
    """A conditional write lost: the record changed since it was read. Re-read and decide again."""

    status, title, slug, retryable = 409, "Conflict", "conflict", True


class BackendError(TrainError):
    """The backend refused or failed a call. ``retryable`` is set per instance by the adapter."""

    status, title, slug = 502, "Backend error", "backend-error"

    def __init__(self, detail: str, *, retryable: bool = False) -> None:
        super().__init__(detail)
        self.retryable = retryable  # type: ignore[misc]


class UnavailableError(TrainError):
    """A dependency (store, backend API) is unavailable or throttling; retry later."""

    status, title, slug, retryable = 503, "Service unavailable", "unavailable", True


class DeliveryError(TrainError):
    """A webhook receiver did not take a notification (non-2xx, redirect, timeout, refused target).
    The outbox keeps it and the sweeper tries again later."""

    status, title, slug, retryable = 502, "Webhook delivery failed", "delivery-failed", True
