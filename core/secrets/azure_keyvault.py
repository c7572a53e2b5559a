"""Azure Key Vault: ``{secret: name}`` is the current version of ``https://<vault-host>/secrets/<name>``,
read with the Key Vault REST API (``GET /secrets/{name}?api-version=7.4``) through azure-core with an
azure-identity credential (``DefaultAzureCredential`` unless one is given; the deployment's identity
needs the "Key Vault Secrets User" role). azure-core is imported on first use.

The token scope follows the vault's DNS suffix (``<vault>.vault.azure.net`` → ``https://vault.azure.net``,
``.vault.azure.cn``, ``.vault.usgovcloudapi.net``...). A vault in another tenant than the credential's
needs Key Vault's challenge flow, which azure-keyvault-secrets implements; this adapter does not.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import urlsplit

from core.errors import InvalidSpecError, UnavailableError
from core.secrets.masking import secret_scope

PRODUCT = "Azure Key Vault"
API_VERSION = "7.4"
PUBLIC_SCOPE = "https://vault.azure.net/.default"
RETRIES = 2
# Secret names: 1-127 letters, digits and '-' (Key Vault docs, "About keys, secrets, and certificates").
SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")


class AzureKeyVaultStore:
    def __init__(self, vault_url: str, *, credential: Any = None, api_version: str = API_VERSION) -> None:
        """``vault_url``: ``https://<vault-host>`` (``azure-keyvault://<vault-host>`` in TRAIN_SECRETS)."""
        self.vault_url = vault_url.rstrip("/")
        self.api_version = api_version
        self._credential = credential
        self._client: Any = None
        self._lock = threading.Lock()

    def resolve(self, name: str) -> str:
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        if not SECRET_NAME.match(name):
            raise InvalidSpecError(f"'{name}' is not a valid {PRODUCT} secret name (letters, digits and '-')")
        request = HttpRequest("GET", f"{self.vault_url}/secrets/{name}", params={"api-version": self.api_version})
        with secret_scope():
            try:
                response = self._pipeline().send_request(request)
            except AzureError as exc:
                raise UnavailableError(f"{PRODUCT} could not be reached; retry later ({type(exc).__name__})") from None
            status = response.status_code
            if status == 429 or status >= 500:
                raise UnavailableError(f"{PRODUCT} is unavailable or throttling ({status}); retry later")
            if status == 404:
                raise InvalidSpecError(f"no secret '{name}' in {PRODUCT} {self._host}")
            if status in (401, 403):
                denied = f"Train may not read secret '{name}' in {PRODUCT} {self._host} (or it is disabled)"
                raise InvalidSpecError(denied)
            if status >= 400:
                raise InvalidSpecError(f"secret '{name}' could not be read from {PRODUCT} ({status})")
            try:
                value = response.json()["value"]
            except (ValueError, KeyError, TypeError):
                raise UnavailableError(f"{PRODUCT} answered with no secret value; retry later") from None
        if not isinstance(value, str):
            raise UnavailableError(f"{PRODUCT} answered with no secret value; retry later")
        return value

    @property
    def _host(self) -> str:
        return urlsplit(self.vault_url).netloc

    def _pipeline(self) -> Any:
        with self._lock:
            if self._client is None:
                from azure.core import PipelineClient
                from azure.core.pipeline.policies import (
                    BearerTokenCredentialPolicy,
                    HttpLoggingPolicy,
                    RetryPolicy,
                    UserAgentPolicy,
                )

                credential = self._credential
                if credential is None:
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                policies = [
                    UserAgentPolicy("train"),
                    RetryPolicy(retry_total=RETRIES, retry_backoff_factor=0.2),
                    BearerTokenCredentialPolicy(credential, token_scope(self.vault_url)),
                    HttpLoggingPolicy(),
                ]
                self._client = PipelineClient(base_url=self.vault_url, policies=policies)
            return self._client


def token_scope(vault_url: str) -> str:
    """``https://<suffix>/.default`` for ``https://<vault>.<suffix>`` when the suffix is a Key Vault one."""
    host = (urlsplit(vault_url).hostname or "").lower()
    _, _, suffix = host.partition(".")
    return f"https://{suffix}/.default" if suffix.startswith("vault.") else PUBLIC_SCOPE
