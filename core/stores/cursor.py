"""Opaque page cursors shared by the store adapters: url-safe base64 of a small JSON object."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from core.errors import FieldError, InvalidRequestError
from core.ids import is_id


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, keys: tuple[str, ...]) -> dict[str, Any]:
    """Decode a cursor made by ``encode_cursor``; a forged or foreign one is a 400 naming ``cursor``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise _bad() from exc
    if not isinstance(position, dict) or set(position) != set(keys):
        raise _bad()
    if not all(isinstance(v, (str, int)) for v in position.values()):
        raise _bad()
    return position


def decode_id_cursor(cursor: str) -> str:
    """The job id a ``{"id": ...}`` cursor points after, checked to be one of ours."""
    value = decode_cursor(cursor, keys=("id",))["id"]
    if not isinstance(value, str) or not is_id(value):
        raise _bad()
    return value


def check_limit(limit: int) -> None:
    if limit < 1:
        raise InvalidRequestError("limit must be at least 1", errors=[FieldError(("limit",), "must be at least 1")])


def _bad() -> InvalidRequestError:
    error = FieldError(("cursor",), "invalid cursor")
    return InvalidRequestError("cursor is not one this API returned", errors=[error])
