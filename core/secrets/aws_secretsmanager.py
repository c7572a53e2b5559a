"""AWS Secrets Manager: ``{secret: name}`` is ``GetSecretValue(SecretId=<prefix><name>)``, the
``AWSCURRENT`` version. A prefix (``train/``) lets the deployment's role be granted
``secretsmanager:GetSecretValue`` on ``arn:aws:secretsmanager:<region>:<account>:secret:train/*`` only.

boto3 is imported on first use and honours ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` / ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from core.errors import InvalidSpecError, TrainError, UnavailableError
from core.secrets.masking import secret_scope

PRODUCT = "AWS Secrets Manager"
# Codes of GetSecretValue (API reference, "Errors") after which the secret cannot be used as it is.
# InvalidRequestException: scheduled for deletion; InvalidParameterException: not a valid secret id.
_MISSING = frozenset({"ResourceNotFoundException", "InvalidRequestException", "InvalidParameterException"})
_DENIED = frozenset({"AccessDeniedException", "AccessDenied", "UnrecognizedClientException"})
_UNDECRYPTABLE = frozenset({"DecryptionFailure"})


class AWSSecretsManagerStore:
    def __init__(
        self, prefix: str = "", *, region: str | None = None, session_factory: Callable[[], Any] | None = None
    ) -> None:
        self.prefix = prefix
        self.region = region
        self._session_factory = session_factory
        self._client: Any = None
        self._lock = threading.Lock()

    def resolve(self, name: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        secret_id = self.prefix + name
        with secret_scope():
            try:
                answer = self._secretsmanager().get_secret_value(SecretId=secret_id)
            except ClientError as exc:
                raise _error(exc, secret_id) from None
            except BotoCoreError as exc:
                raise UnavailableError(f"{PRODUCT} could not be reached; retry later ({type(exc).__name__})") from None
        if answer.get("SecretString") is not None:
            return str(answer["SecretString"])
        try:
            return bytes(answer["SecretBinary"]).decode("utf-8")
        except (KeyError, TypeError, UnicodeDecodeError):
            raise InvalidSpecError(f"secret '{secret_id}' in {PRODUCT} holds no text value") from None

    def _secretsmanager(self) -> Any:
        with self._lock:
            if self._client is None:
                from botocore.config import Config

                session = self._session_factory() if self._session_factory else _default_session()
                config = Config(retries={"mode": "standard"}, connect_timeout=5, read_timeout=10)
                self._client = session.client("secretsmanager", region_name=self.region, config=config)
            return self._client


def _default_session() -> Any:
    import boto3

    return boto3.session.Session()


def _error(exc: Any, secret_id: str) -> TrainError:
    """Ours for a ClientError, without its message (which may quote the request)."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in _MISSING:
        return InvalidSpecError(f"no secret '{secret_id}' in {PRODUCT} (or it is scheduled for deletion)")
    if code in _DENIED:
        return InvalidSpecError(f"Train may not read secret '{secret_id}' in {PRODUCT}")
    if code in _UNDECRYPTABLE:
        return InvalidSpecError(f"secret '{secret_id}' in {PRODUCT} cannot be decrypted with Train's role")
    if status >= 500 or status == 429 or "Throttl" in code or code == "InternalServiceError":
        return UnavailableError(f"{PRODUCT} is unavailable or throttling ({code or status}); retry later")
    return InvalidSpecError(f"secret '{secret_id}' could not be read from {PRODUCT} ({code or status})")
