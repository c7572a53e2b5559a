"""The one HTTP route table (SPEC §3).

Every host (Lambda, Cloud Functions, Azure Functions, ``train serve``) turns its request into an
API Gateway HTTP API (payload 2.0) event, calls ``create_app(...).resolve(event, None)`` and
renders the result. Requests pass a gate first (body size, auth, media type), then Powertools'
validation against the models in ``core.model``, then the route; every error leaves through
``core.problems``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, SecurityScheme
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from core import __version__
from core.auth import ACCOUNT_HEADER, API_KEY_HEADER, Principal, authenticate
from core.errors import (
    FieldError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthenticatedError,
    UnsupportedMediaTypeError,
)
from core.lifecycle import Status
from core.model import (
    Backend,
    CheckpointsOut,
    EventsOut,
    JobOut,
    JobPage,
    JobQuery,
    JobRecord,
    LogPage,
    NativeJobRequest,
    SubmitRequest,
)
from core.ports import KeyStore
from core.problems import PROBLEM_JSON, Problem, from_exception, method_not_allowed, not_found, problem_response
from core.service import TrainService

if TYPE_CHECKING:  # the token service imports cryptography: only hosts that serve /v2/token load it
    from core.registry.token import RegistryTokens

MAX_BODY_BYTES = 1_048_576
MAX_JSON_DEPTH = 64  # native job configs nest about 8 deep
JSON = "application/json"
SECURITY: list[dict[str, list[str]]] = [{"ApiKey": [], "Account": []}]
SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    "ApiKey": APIKey(name=API_KEY_HEADER, in_=APIKeyIn.header, description="A Train API key, trn_<key_id>_<secret>"),
    "Account": APIKey(name=ACCOUNT_HEADER, in_=APIKeyIn.header, description="The account the request acts for"),
}
SUBMITTED = {201: "Created", 200: "An idempotent replay: the job the Idempotency-Key first created"}
_POWERTOOLS_LOGGER = "aws_lambda_powertools.event_handler"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
REGISTRY_CHALLENGE = 'Basic realm="Train registry", charset="UTF-8"'


_F = TypeVar("_F", bound=Callable[..., Any])


def _problems(*codes: int) -> dict[int, OpenAPIResponse]:
    return {code: {"description": "problem+json", "content": {PROBLEM_JSON: {"model": Problem}}} for code in codes}


class TrainResolver(APIGatewayHttpResolver):
    """Powertools' resolver with the request gate, and the current event kept on the instance.

    Powertools stores the event being resolved on a class attribute shared by every resolver in
    the process, so two threads resolving at once would read each other's request; this class
    keeps it per instance. A resolver still handles one request at a time: hosts that serve
    requests concurrently give each thread its own (see ``core/server.py``).
    """

    def __init__(self, keys: KeyStore) -> None:
        # A response that fails its own model is our bug: 500, never a 422 blamed on the caller.
        # debug=False: Powertools' debug mode (POWERTOOLS_DEV) prints whole events, keys included.
        super().__init__(enable_validation=True, response_validation_error_http_code=500, debug=False)
        # Powertools logs each route's validated arguments (request bodies) at DEBUG: keep its
        # event handler at INFO or above whatever the root level is.
        powertools_log = logging.getLogger(_POWERTOOLS_LOGGER)
        if powertools_log.level < logging.INFO:  # NOTSET (0) included
            powertools_log.setLevel(logging.INFO)
        self._keys = keys
        self._event: APIGatewayProxyEventV2 | None = None
        self.principal: Principal | None = None
        self.allowed: list[tuple[str, re.Pattern[str]]] = []

    @property  # type: ignore[override]
    def current_event(self) -> APIGatewayProxyEventV2:
        return self._event  # type: ignore[return-value]  # set by resolve() before any reader runs

    @current_event.setter
    def current_event(self, value: APIGatewayProxyEventV2) -> None:
        self._event = value

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        self._event = APIGatewayProxyEventV2(dict(event))
        self.principal = None
        try:
            self._gate(self._event)
        except Exception as exc:  # every failure leaves as problem+json
            response = from_exception(exc, request_id=self.request_id)
            builder = ResponseBuilder[APIGatewayProxyEventV2](response, serializer=self._serializer)
            return builder.build(self._event)
        return super().resolve(event, context)

    @property
    def request_id(self) -> str:
        context = self._event.get("requestContext") if self._event is not None else None
        return str((context or {}).get("requestId") or "-")

    def account_id(self) -> str:
        if self.principal is None:
            raise UnauthenticatedError(f"missing the {API_KEY_HEADER} header")
        return self.principal.account_id

    def _gate(self, event: APIGatewayProxyEventV2) -> None:
        """What must hold before anything parses the body: size, caller, media type."""
        body = _raw_body(event)
        if len(body) > MAX_BODY_BYTES:
            message = f"the request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}"
            raise PayloadTooLargeError(message, errors=[FieldError(("body",), message)])
        if event.http_method.upper() not in self.allowed_methods(event.path):
            return  # no such route: the resolver answers 404 or 405
        headers = event.headers
        if event.path.startswith("/v1/"):
            self.principal = authenticate(self._keys, headers.get(API_KEY_HEADER), headers.get(ACCOUNT_HEADER))
        if body and event.http_method.upper() in _BODY_METHODS:
            media_type = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
            if media_type != JSON:
                raise UnsupportedMediaTypeError(
                    f"send the body as {JSON}, not {media_type or 'no Content-Type'}",
                    errors=[FieldError(("content-type",), f"must be {JSON}")],
                )
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _bad_body("the request body is not UTF-8") from exc
            _check_json(text)

    def allowed_methods(self, path: str) -> set[str]:
        return {method for method, rule in self.allowed if rule.match(path)}

    def document(self) -> Any:
        """The parsed JSON body, or None; used to name fields in validation errors."""
        try:
            return self.current_event.json_body
        except (ValueError, TypeError):
            return None


def _raw_body(event: APIGatewayProxyEventV2) -> bytes:
    body = event.body
    if not body:
        return b""
    if event.is_base64_encoded:
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _bad_body("the request body is marked base64 but is not") from exc
    return body.encode("utf-8")


def _bad_body(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, errors=[FieldError(("body",), message)])


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _check_json(text: str) -> None:
    """Refuse, as 400, a body that is not strict JSON (``NaN``, integers past Python's digit limit)
    or is nested deeper than ``MAX_JSON_DEPTH``, before anything recursive meets it: the parser,
    pydantic's validator and its serializer each give up at their own depth, some with a 500."""
    too_deep = f"the request body is nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        document = json.loads(text, parse_constant=_not_json)
    except RecursionError as exc:
        raise _bad_body(too_deep) from exc
    except ValueError as exc:
        raise _bad_body("the request body is not valid JSON") from exc
    level: list[tuple[Any, int]] = [(document, 1)]
    while level:
        node, depth = level.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            raise _bad_body(too_deep)
        level.extend((child, depth + 1) for child in children)


def _rule(rule: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"<\w+>", "[^/]+", rule) + "$")


def _json(model: Any, status: int = 200) -> Response[Any]:
    return Response(status_code=status, content_type=JSON, body=model.model_dump(mode="json"))


def _job(job: JobRecord, status: int = 200) -> Response[JobOut]:
    return _json(JobOut.of(job), status)


def create_app(service: TrainService, keys: KeyStore, *, tokens: RegistryTokens | None = None) -> TrainResolver:
    """``tokens`` serves ``GET /v2/token`` when this deployment runs a workspace registry."""
    app = TrainResolver(keys)
    openapi_cache: list[dict[str, Any]] = []

    def route(
        method: str, rule: str, ok: dict[int, str] | None = None, problems: tuple[int, ...] = (422,), **kwargs: Any
    ) -> Callable[[_F], _F]:
        """Register a route; ``ok`` names its success codes, all with the return type's schema;
        ``problems`` the error codes a route outside /v1 can answer (all problem+json)."""
        app.allowed.append((method, _rule(rule)))
        success = ok or {200: "OK"}
        responses: dict[int, OpenAPIResponse] = {code: {"description": text} for code, text in success.items()}
        if rule.startswith("/v1/"):
            kwargs["security"] = SECURITY
            # 400: a malformed body or a cursor this API did not issue.
            codes = (400, 401, 403, 404, 413, 415, 422) if method == "POST" else (400, 401, 403, 404, 422)
            responses |= _problems(*codes)
        else:
            responses |= _problems(*problems)
        return app.route(rule, method, responses=responses, **kwargs)

    def _error(exc: Exception) -> Response[Any]:
        return from_exception(exc, request_id=app.request_id, document=app.document())

    def _no_route(exc: Exception) -> Response[Any]:
        path = app.current_event.path
        allowed = app.allowed_methods(path)
        method = app.current_event.http_method.upper()
        if not allowed or method in allowed:  # the second: a path our pattern takes but Powertools' does not
            return not_found(path)
        return method_not_allowed(method, path, allowed)

    app.exception_handler(Exception)(_error)
    app.not_found(_no_route)

    @route("GET", "/health", summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @route("GET", "/openapi.json", summary="This document")
    def openapi() -> Response[dict[str, Any]]:
        if not openapi_cache:
            openapi_cache.append(
                json.loads(
                    app.get_openapi_json_schema(title="Train", version=__version__, security_schemes=SECURITY_SCHEMES)
                )
            )
        return Response(status_code=200, content_type=JSON, body=openapi_cache[0])

    @route("POST", "/v1/jobs", ok=SUBMITTED, summary="Submit a portable job spec", status_code=201)
    def submit(
        request: SubmitRequest,
        idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=255)] = None,
    ) -> Response[JobOut]:
        job, created = service.submit(app.account_id(), request, idempotency_key=idempotency_key)
        return _job(job, 201 if created else 200)

    @route("POST", "/v1/<backend>/jobs", ok=SUBMITTED, summary="Submit in the backend's native shape", status_code=201)
    def submit_native(
        backend: Annotated[Backend, Path()],
        request: NativeJobRequest,
        idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=255)] = None,
    ) -> Response[JobOut]:
        job, created = service.submit_native(app.account_id(), backend, request, idempotency_key=idempotency_key)
        return _job(job, 201 if created else 200)

    @route("GET", "/v1/jobs", summary="List jobs, newest first")
    def list_jobs(
        status: Annotated[list[Status] | None, Query()] = None,
        backend: Annotated[Backend | None, Query()] = None,
        project: Annotated[str | None, Query(max_length=63)] = None,
        name: Annotated[str | None, Query(max_length=63)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> Response[JobPage]:
        query = JobQuery(status=status, backend=backend, project=project, name=name, limit=limit, cursor=cursor)
        jobs, next_cursor = service.list(app.account_id(), query)
        return _json(JobPage(jobs=[JobOut.of(j) for j in jobs], next_cursor=next_cursor))

    @route("GET", "/v1/jobs/<job_id>", summary="One job")
    def get_job(job_id: str) -> Response[JobOut]:
        return _job(service.get(app.account_id(), job_id))

    @route("POST", "/v1/jobs/<job_id>/cancel", ok={202: "Accepted"}, summary="Ask to cancel", status_code=202)
    def cancel_job(job_id: str) -> Response[JobOut]:
        return _job(service.cancel(app.account_id(), job_id), 202)

    @route("GET", "/v1/jobs/<job_id>/events", summary="Status history")
    def job_events(job_id: str) -> Response[EventsOut]:
        job = service.get(app.account_id(), job_id)
        out = EventsOut(job_id=job.id, status=job.status, ignored_updates=job.ignored_updates, events=job.events)
        return _json(out)

    @route("GET", "/v1/jobs/<job_id>/logs", summary="Log lines")
    def job_logs(
        job_id: str,
        cursor: Annotated[str | None, Query(max_length=2048)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        since: Annotated[datetime | None, Query()] = None,
    ) -> Response[LogPage]:
        return _json(service.logs(app.account_id(), job_id, cursor=cursor, limit=limit, since=since))

    @route("GET", "/v1/jobs/<job_id>/checkpoints", summary="Checkpoints the job wrote")
    def job_checkpoints(job_id: str) -> Response[CheckpointsOut]:
        checkpoints = service.checkpoints(app.account_id(), job_id)
        return _json(CheckpointsOut(job_id=job_id, checkpoints=checkpoints))

    @route("GET", "/v2/token", ok={200: "A registry token"}, problems=(401, 404, 422),
           summary="Docker registry token (SPEC §8)",
           description="HTTP Basic with the account id as user and an API key as password; repeat `scope` "
           "(`repository:<account_id>/<name>:pull,push`) for each repository. Grants cover only the account's own.")
    def registry_token(
        registry: Annotated[str | None, Query(alias="service", max_length=255)] = None,
    ) -> Response[Any]:
        if tokens is None:
            raise NotFoundError("this deployment runs no workspace registry")
        event = app.current_event
        scopes = [value for key, value in parse_qsl(event.raw_query_string or "") if key == "scope"]
        try:
            body = tokens.token(event.headers.get("authorization"), registry, scopes)
        except UnauthenticatedError as exc:
            return problem_response(exc.status, exc.slug, exc.title, exc.detail,
                                    headers={"WWW-Authenticate": REGISTRY_CHALLENGE})
        return Response(status_code=200, content_type=JSON, body=body, headers={"Cache-Control": "no-store"})

    return app

