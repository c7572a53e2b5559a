"""GCP Secret Manager: ``{secret: name}`` is the latest enabled version of
``projects/<project>/secrets/<name>``, read with ``versions/latest:access`` over REST through
google.auth's ``AuthorizedSession`` (Application Default Credentials; the deployment's service
account needs ``roles/secretmanager.secretAccessor``). A plain-http endpoint (a local fake) is
called with anonymous credentials. Google libraries are imported on first use.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from typing import Any
from urllib.parse import quote

from core.errors import InvalidSpecError, UnavailableError
from core.secrets.masking import secret_scope

PRODUCT = "GCP Secret Manager"
ENDPOINT = "https://secretmanager.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
TIMEOUT = 10.0
# Secret ids: letters, digits, '_' and '-', at most 255 (Secret Manager API reference, secrets.create).
SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


class GCPSecretManagerStore:
    def __init__(self, project: str, *, endpoint: str | None = None, credentials: Any = None) -> None:
        self.project = project
        self.endpoint = (endpoint or ENDPOINT).rstrip("/")
        self._credentials = credentials
        self._session: Any = None
        self._lock = threading.Lock()

    def resolve(self, name: str) -> str:
        import requests

        if not SECRET_ID.match(name):
            raise InvalidSpecError(f"'{name}' is not a valid {PRODUCT} secret id (letters, digits, '_' and '-')")
        resource = f"projects/{quote(self.project, safe='')}/secrets/{name}"
        url = f"{self.endpoint}/v1/{resource}/versions/latest:access"
        with secret_scope():
            try:
                response = self._authorized().get(url, timeout=TIMEOUT)
            except (requests.RequestException, _auth_errors()) as exc:
                raise UnavailableError(f"{PRODUCT} could not be reached; retry later ({type(exc).__name__})") from None
            status = response.status_code
            if status == 429 or status >= 500:
                raise UnavailableError(f"{PRODUCT} is unavailable or throttling ({status}); retry later")
            if status == 404:
                missing = f"no secret '{name}' with an enabled version in {PRODUCT} project {self.project}"
                raise InvalidSpecError(missing)
            if status in (401, 403):
                raise InvalidSpecError(f"Train may not read secret '{name}' in {PRODUCT} project {self.project}")
            if status >= 400:
                raise InvalidSpecError(f"secret '{name}' could not be read from {PRODUCT} ({status})")
            try:
                payload = response.json()["payload"]
                data = base64.b64decode(payload["data"], validate=True)
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise UnavailableError(f"{PRODUCT} answered with no readable payload; retry later") from None
        if not _crc_matches(data, payload.get("dataCrc32c")):
            raise UnavailableError(f"{PRODUCT} returned secret '{name}' with a bad checksum; retry later")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSpecError(f"secret '{name}' in {PRODUCT} is not UTF-8 text") from None

    def _authorized(self) -> Any:
        with self._lock:
            if self._session is None:
                from google.auth.transport.requests import AuthorizedSession

                credentials = self._credentials
                if credentials is None and self.endpoint.startswith("http://"):
                    from google.auth.credentials import AnonymousCredentials

                    credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
                if credentials is None:
                    import google.auth

                    credentials = google.auth.default(scopes=list(SCOPES))[0]
                self._session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
            return self._session


def _auth_errors() -> type[Exception]:
    from google.auth import exceptions

    return exceptions.GoogleAuthError


def _crc_matches(data: bytes, expected: object) -> bool:
    """The payload's CRC32C (``dataCrc32c``, a decimal int64), checked when google-crc32c is installed."""
    if expected is None:
        return True
    try:
        import google_crc32c
    except ImportError:
        return True
    return str(google_crc32c.value(data)) == str(expected)
