"""Calls to Google's APIs for the Vertex AI backend: the ``JobServiceClient`` (REST transport) and
plain REST calls through google.auth's ``AuthorizedSession`` (Cloud Logging, Cloud Storage), with
google.api_core and transport errors turned into ours. Google libraries are imported on first use.

A plain-http endpoint (a local fake or emulator) is called with anonymous credentials; every
other call uses Application Default Credentials.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from core.errors import BackendError, TrainError, UnavailableError

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
HTTP_TIMEOUT = 30.0


class CallFailed(Exception):
    """A call failed: ``cause`` is google's error (inspected only by the adapter), ``error`` ours."""

    def __init__(self, cause: Exception, error: TrainError) -> None:
        super().__init__(error.detail)
        self.cause, self.error = cause, error


class GoogleCalls:
    def __init__(self, client_options: dict[str, Any]) -> None:
        self._client_options = client_options
        self._jobs: Any = None
        self._sessions: dict[bool, Any] = {}
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._jobs is not None or bool(self._sessions)

    def jobs(self) -> Any:
        """The JobServiceClient, built once."""
        with self._lock:
            if self._jobs is None:
                from google.cloud import aiplatform_v1

                local = str(self._client_options.get("api_endpoint", "")).startswith("http://")
                self._jobs = aiplatform_v1.JobServiceClient(
                    transport="rest", credentials=_anonymous() if local else None,
                    client_options=self._client_options or None,
                )
            return self._jobs

    def read_retry(self) -> Any:
        """Reads are retried briefly on throttling and 5xx; CreateCustomJob never is (a retried
        create goes through the label lookup instead)."""
        from google.api_core import exceptions, retry

        transient = retry.if_exception_type(
            exceptions.TooManyRequests, exceptions.ServiceUnavailable, exceptions.InternalServerError,
            exceptions.BadGateway, exceptions.GatewayTimeout,
        )
        return retry.Retry(predicate=transient, initial=0.05, maximum=0.5, multiplier=2.0, timeout=1.5)

    def call(self, what: str, call: Callable[[], Any]) -> Any:
        """Run a JobServiceClient call; a failure raises ``CallFailed``."""
        import requests
        from google.api_core import exceptions
        from google.auth import exceptions as auth_exceptions

        try:
            return call()
        except (exceptions.GoogleAPIError, requests.RequestException, auth_exceptions.TransportError) as exc:
            raise CallFailed(_cause(exc), _failure(exc, what)) from exc

    def rest(
        self, what: str, verb: str, url: str, *, params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None, missing_ok: bool = False,
    ) -> dict[str, Any]:
        """One JSON REST call; ``missing_ok``: a 404 answers ``{}``."""
        import requests

        try:
            response = self._session(url.startswith("http://")).request(
                verb, url, params=params, json=json_body, timeout=HTTP_TIMEOUT
            )
        except requests.RequestException as exc:
            raise UnavailableError(f"{what} could not be reached; retry later: {exc}") from exc
        if response.status_code == 404 and missing_ok:
            return {}
        if response.status_code == 429 or response.status_code >= 500:
            raise UnavailableError(f"{what} is unavailable or throttling ({response.status_code}); retry later")
        if response.status_code >= 400:
            raise BackendError(f"{what} refused the call ({response.status_code}): {_error_message(response.text)}",
                               retryable=False)
        answer = response.json() if response.content else {}
        return answer if isinstance(answer, dict) else {}

    def _session(self, local: bool) -> Any:
        with self._lock:
            session = self._sessions.get(local)
            if session is None:
                import google.auth
                from google.auth.transport.requests import AuthorizedSession

                credentials = _anonymous() if local else google.auth.default(scopes=list(SCOPES))[0]
                session = self._sessions[local] = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
            return session


def as_dict(message: Any) -> dict[str, Any]:
    """A proto-plus message as JSON with snake_case names, enum names and RFC 3339 times."""
    from google.protobuf import json_format

    return dict(json_format.MessageToDict(type(message).pb(message), preserving_proto_field_name=True))


def _anonymous() -> Any:
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()  # type: ignore[no-untyped-call]


def _cause(exc: Exception) -> Exception:
    from google.api_core import exceptions

    if isinstance(exc, exceptions.RetryError) and isinstance(exc.cause, Exception):
        return exc.cause
    return exc


def _failure(exc: Exception, what: str) -> TrainError:
    """Throttling, 5xx, deadlines and connection trouble are retryable; anything else (bad
    argument, failed precondition, permission) is Vertex's refusal with its own message."""
    import requests
    from google.api_core import exceptions
    from google.auth import exceptions as auth_exceptions

    cause = _cause(exc)
    if isinstance(cause, exceptions.TooManyRequests | exceptions.ServerError | exceptions.DeadlineExceeded):
        return UnavailableError(f"Vertex AI is unavailable or throttling ({cause.code}); retry later")
    if isinstance(cause, exceptions.RetryError | requests.RequestException | auth_exceptions.TransportError):
        return UnavailableError(f"Vertex AI could not be reached; retry later: {cause}")
    if isinstance(cause, exceptions.GoogleAPICallError):
        return BackendError(f"Vertex AI refused {what}: {cause.code}: {cause.message}", retryable=False)
    return BackendError(f"Vertex AI {what} failed: {cause}", retryable=False)


def _error_message(text: str) -> str:
    try:
        answer = json.loads(text)
    except ValueError:
        return text[:200]
    error = answer.get("error") if isinstance(answer, dict) else None
    return str(error.get("message")) if isinstance(error, dict) else text[:200]
