"""RFC 9457 problem+json: the one place an error becomes an HTTP response.

Every failure the API can meet (Train's own errors, Powertools' request validation, unknown
routes, bugs) is turned into ``{"type", "title", "status", "detail", "errors"}`` here.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from pydantic import BaseModel

from core.errors import FieldError, TrainError

log = logging.getLogger("train.api")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://train.dev/problems/"
_SOURCES = ("body", "query", "header", "path", "cookie")
_MESSAGE_PREFIXES = ("Value error, ", "Assertion failed, ")


class ProblemField(BaseModel):
    field: str
    pointer: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document; ``errors`` lists each invalid field by its path."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemField] = []


def problem_document(status: int, slug: str, title: str, detail: str, errors: Sequence[FieldError] = ()) -> str:
    body = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "errors": [{"field": e.field, "pointer": e.pointer, "message": e.message} for e in errors],
    }
    return json.dumps(body, separators=(",", ":"))


def problem_response(
    status: int, slug: str, title: str, detail: str, errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> Response[str]:
    text = problem_document(status, slug, title, detail, errors)
    return Response(status_code=status, content_type=PROBLEM_JSON, body=text, headers=dict(headers or {}))


def from_train_error(exc: TrainError) -> Response[str]:
    return problem_response(exc.status, exc.slug, exc.title, exc.detail, exc.errors)


def not_found(path: str) -> Response[str]:
    return problem_response(404, "not-found", "Not found", f"no route for {path}")


def method_not_allowed(method: str, path: str, allowed: Iterable[str]) -> Response[str]:
    allow = ", ".join(sorted(allowed))
    return problem_response(
        405, "method-not-allowed", "Method not allowed", f"{path} does not accept {method}; use {allow}",
        headers={"Allow": allow},
    )


def from_exception(exc: Exception, *, request_id: str, document: Any = None) -> Response[str]:
    """Render any exception. ``document`` is the parsed JSON body, used to tell field names from
    the union-member tags pydantic puts in error locations."""
    if isinstance(exc, TrainError):
        if exc.status >= 500:
            log.warning("request %s failed: %s %s", request_id, type(exc).__name__, exc.detail)
        return from_train_error(exc)
    if isinstance(exc, RequestValidationError):
        return _from_validation(exc.errors(), document)
    if isinstance(exc, RequestUnsupportedContentType):
        return problem_response(415, "unsupported-media-type", "Unsupported media type", "send application/json")
    if isinstance(exc, RouteNotFoundError):
        return problem_response(404, "not-found", "Not found", "no such route")
    if isinstance(exc, ServiceError) and 400 <= exc.status_code < 500:
        return problem_response(exc.status_code, "bad-request", "Bad request", str(exc.msg))
    # Exception messages can quote the request (pydantic errors carry their input), and the body
    # may hold secrets: log the type and where it was raised, never the message.
    where = "".join(traceback.format_tb(exc.__traceback__))
    log.error("request %s failed with an unexpected %s\n%s", request_id, type(exc).__name__, where)
    return problem_response(500, "internal", "Internal error", f"an unexpected error occurred (request {request_id})")


def _from_validation(errors: Sequence[Any], document: Any) -> Response[str]:
    if any(e.get("type") == "json_invalid" for e in errors):
        body_error = FieldError(("body",), "the request body is not valid JSON")
        return problem_response(400, "bad-request", "Bad request", "the request body is not valid JSON", [body_error])
    if any(_source(e) == "path" for e in errors):
        # A path parameter names a resource; one that cannot exist is simply not there.
        return problem_response(404, "not-found", "Not found", "no such resource")
    fields = field_errors(errors, document)
    detail = "; ".join(f"{f.field}: {f.message}" for f in fields[:5])
    if len(fields) > 5:
        detail += f"; and {len(fields) - 5} more"
    return problem_response(422, "invalid-request", "Invalid request", detail or "invalid request", fields)


def field_errors(errors: Sequence[Any], document: Any = None) -> list[FieldError]:
    """Turn pydantic error dicts into one ``FieldError`` per field, in request order.

    Locations like ``('body', 'env', 'TRAIN_X', '[key]')`` lose their source and ``[key]``
    markers. Union-member tags (``'constrained-str'``, ``'SecretRef'``) are dropped by walking the
    request document, since a tag never names something the caller sent; of the members' errors,
    those that reached deeper into the value win (``env.S.secret`` over ``env.S``).
    """
    located = [(*_field_path(tuple(e.get("loc", ())), e.get("type", ""), document), e) for e in errors]
    tagged = [path for path, via_union, _ in located if via_union]
    merged: dict[tuple[str | int, ...], list[str]] = {}
    for path, via_union, error in located:
        if via_union and any(len(other) > len(path) and other[: len(path)] == path for other in tagged):
            continue
        message = str(error.get("msg", "is invalid"))
        for prefix in _MESSAGE_PREFIXES:
            message = message.removeprefix(prefix)
        messages = merged.setdefault(path, [])
        if message not in messages:
            messages.append(message)
    return [FieldError(path or ("body",), " or ".join(messages)) for path, messages in merged.items()]


def _source(error: Mapping[str, Any]) -> str | None:
    loc = error.get("loc", ())
    return loc[0] if loc and loc[0] in _SOURCES else None


def _field_path(loc: tuple[Any, ...], kind: str, document: Any) -> tuple[tuple[str | int, ...], bool]:
    """The field path of one error, and whether a union-member tag was dropped from it."""
    source = loc[0] if loc and loc[0] in _SOURCES else None
    parts = [p for p in (loc[1:] if source else loc) if p != "[key]"]
    if source != "body":
        return tuple(parts), False
    path: list[str | int] = []
    node = document
    via_union = False
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif (i == len(parts) - 1 and kind in ("missing", "extra_forbidden")) or node is None:
            path.append(part)
            node = None
        else:
            via_union = True
    return tuple(path), via_union
