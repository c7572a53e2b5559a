"""Where images are replicated for each backend, and the credentials each cloud registry takes.

A target is written as a URL (``TRAIN_REGISTRY_TARGET_<BACKEND>``):

- ``ecr://<acct>.dkr.ecr.<region>.amazonaws.com/<prefix>``: Amazon ECR; user ``AWS`` and the
  password from ``GetAuthorizationToken``.
- ``artifact-registry://<location>-docker.pkg.dev/<project>/<repo>``: Artifact Registry; user
  ``oauth2accesstoken`` and a Google access token.
- ``acr://<name>.azurecr.io/<prefix>``: Azure Container Registry; an Entra ID token exchanged
  for an ACR refresh token at ``/oauth2/exchange``.
- ``registry://host[:port]/<prefix>`` (``registry+http://`` for plain HTTP): any OCI registry, anonymous.

``?mount=true|false`` overrides whether cross-repository mounts are tried. ECR mounts only when
the account has turned blob mounting on, and Artifact Registry does not offer them, so both
default to off. ECR also needs each repository to exist before a push: the target creates it.
Each SDK is imported when its target first needs credentials, never at module import.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.registry.client import Credentials, RegistryError

ACR_USER = "00000000-0000-0000-0000-000000000000"  # the fixed user name ACR pairs with a refresh token
AZURE_MANAGEMENT_SCOPE = "https://management.azure.com/.default"
GOOGLE_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_KINDS = {"ecr": False, "artifact-registry": False, "acr": True, "registry": True, "registry+http": True}


@dataclass(frozen=True)
class Target:
    kind: str
    host: str
    prefix: str
    scheme: str = "https"
    mounts: bool = True
    credentials: Credentials | None = None
    prepare: Callable[[str], None] | None = None

    def repository(self, source_repository: str) -> str:
        return f"{self.prefix}/{source_repository}" if self.prefix else source_repository


def parse_target(url: str, *, setting: str = "the target") -> Target:
    """Raises:
    RegistryError: not one of the forms in the module docstring (a configuration mistake).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in _KINDS or not parts.netloc:
        raise RegistryError(f"{setting} '{url}' is not ecr://, artifact-registry://, acr://, registry:// "
                            f"or registry+http:// followed by a host", retryable=False)
    options = dict(urllib.parse.parse_qsl(parts.query))
    mounts = options.get("mount", str(_KINDS[parts.scheme])).lower() in ("1", "true", "yes")
    host, prefix = parts.netloc, parts.path.strip("/")
    scheme = "http" if parts.scheme == "registry+http" else "https"
    if parts.scheme == "ecr":
        ecr = EcrCredentials(region=_ecr_region(host, setting))
        return Target("ecr", host, prefix, scheme, mounts, ecr, ecr.ensure_repository)
    if parts.scheme == "artifact-registry":
        if prefix.count("/") < 1:
            raise RegistryError(f"{setting} '{url}' needs <project>/<repository> after the host", retryable=False)
        return Target("artifact-registry", host, prefix, scheme, mounts, ArtifactRegistryCredentials())
    if parts.scheme == "acr":
        return Target("acr", host, prefix, scheme, mounts, AcrCredentials(host))
    return Target(parts.scheme, host, prefix, scheme, mounts)


def _ecr_region(host: str, setting: str) -> str:
    labels = host.split(".")
    if len(labels) < 6 or labels[1:3] != ["dkr", "ecr"]:
        raise RegistryError(f"{setting}: '{host}' is not <account>.dkr.ecr.<region>.amazonaws.com", retryable=False)
    return labels[3]


class _Cached:
    """A credential kept until shortly before it expires."""

    def __init__(self, clock: Callable[[], float] = time.time, margin: float = 300.0) -> None:
        self._value: tuple[str, str] | None = None
        self._until = 0.0
        self._lock = threading.Lock()
        self._clock = clock
        self._margin = margin

    def get(self, fetch: Callable[[], tuple[tuple[str, str], float]]) -> tuple[str, str]:
        with self._lock:
            if self._value is None or self._clock() >= self._until - self._margin:
                self._value, self._until = fetch()
            return self._value


class EcrCredentials:
    """``AWS`` and the password from ECR ``GetAuthorizationToken`` (valid 12 hours)."""

    def __init__(self, *, region: str | None = None, client: Any = None) -> None:
        self.region = region
        self._client = client
        self._cache = _Cached()
        self._created: set[str] = set()

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("ecr", region_name=self.region)
        return self._client

    def __call__(self) -> tuple[str, str]:
        return self._cache.get(self._fetch)

    def _fetch(self) -> tuple[tuple[str, str], float]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            data = self.client.get_authorization_token()["authorizationData"][0]
        except (BotoCoreError, ClientError) as exc:
            raise RegistryError(f"ECR GetAuthorizationToken failed: {type(exc).__name__}") from exc
        user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        expires = data.get("expiresAt")
        return (user, password), expires.timestamp() if expires is not None else time.time() + 3600

    def ensure_repository(self, name: str) -> None:
        """ECR has no create-on-push: make the repository first (once per process)."""
        if name in self._created:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.create_repository(repositoryName=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "RepositoryAlreadyExistsException":
                raise RegistryError(f"ECR CreateRepository {name} failed: {exc.response['Error'].get('Code')}") from exc
        except BotoCoreError as exc:
            raise RegistryError(f"ECR CreateRepository {name} failed: {type(exc).__name__}") from exc
        self._created.add(name)


class ArtifactRegistryCredentials:
    """``oauth2accesstoken`` and a Google access token (application default credentials unless given)."""

    def __init__(self, credentials: Any = None) -> None:
        self._credentials = credentials
        self._lock = threading.Lock()

    def __call__(self) -> tuple[str, str]:
        import google.auth
        import google.auth.transport.requests
        from google.auth.exceptions import GoogleAuthError

        with self._lock:
            try:
                if self._credentials is None:
                    self._credentials, _ = google.auth.default(scopes=[GOOGLE_SCOPE])
                if not self._credentials.valid:
                    self._credentials.refresh(google.auth.transport.requests.Request())
            except GoogleAuthError as exc:
                raise RegistryError(f"no Google access token for Artifact Registry: {type(exc).__name__}") from exc
            return "oauth2accesstoken", str(self._credentials.token)


class AcrCredentials:
    """ACR's refresh token for an Entra ID (AAD) access token, as ``az acr login`` gets it:
    ``POST https://<registry>/oauth2/exchange`` with ``grant_type=access_token``."""

    def __init__(
        self, host: str, *, credential: Any = None, tenant: str | None = None, scheme: str = "https",
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.tenant = tenant
        self.scheme = scheme
        self.timeout = timeout
        self._credential = credential
        self._cache = _Cached()

    def __call__(self) -> tuple[str, str]:
        return self._cache.get(self._fetch)

    def _fetch(self) -> tuple[tuple[str, str], float]:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        from azure.core.exceptions import AzureError

        try:
            aad = self._credential.get_token(AZURE_MANAGEMENT_SCOPE)
        except AzureError as exc:
            raise RegistryError(f"no Entra ID token for ACR {self.host}: {type(exc).__name__}") from exc
        form = {"grant_type": "access_token", "service": self.host, "access_token": aad.token}
        if self.tenant:
            form["tenant"] = self.tenant
        request = urllib.request.Request(  # noqa: S310 (scheme is https, or http only for a test's endpoint)
            f"{self.scheme}://{self.host}/oauth2/exchange", data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                document = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise RegistryError(f"ACR {self.host} refused the token exchange (HTTP {exc.code})",
                                retryable=exc.code >= 500) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RegistryError(f"ACR {self.host} token exchange failed: {type(exc).__name__}") from exc
        refresh = document.get("refresh_token")
        if not refresh:
            raise RegistryError(f"ACR {self.host} answered the token exchange without a refresh_token")
        return (ACR_USER, str(refresh)), float(aad.expires_on)
