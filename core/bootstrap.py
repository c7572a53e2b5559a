"""The one place that reads configuration and picks adapters.

Nothing happens at import time. Hosts (the local server, each cloud function) call ``build`` once
and keep the wiring for warm invocations.
"""

from __future__ import annotations

import json
import logging
import os
import secrets as secrets_module
import signal
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import TrainError
from core.outbox import Backoff
from core.ports import JobStore, KeyStore, SecretStore, TrainingBackend
from core.service import TrainService

log = logging.getLogger("train.bootstrap")


class ConfigError(TrainError):
    """The deployment's configuration names something this build cannot provide."""


@dataclass
class Wiring:
    settings: Settings
    store: JobStore
    keys: KeyStore
    backends: dict[str, TrainingBackend]
    service: TrainService
    closers: list[Any] = field(default_factory=list)
    registry: Any = None  # core.registry.workspace.WorkspaceRegistry when configured
    tokens: Any = None  # core.registry.token.RegistryTokens, behind GET /v2/token

    def api(self) -> Any:
        """A new resolver for the route table over this wiring. Each serving thread needs its own:
        the resolver keeps the current request on itself."""
        from core.api import create_app

        return create_app(self.service, self.keys, tokens=self.tokens)

    def close(self) -> None:
        for closer in self.closers:
            closer()


def build_store(url: str) -> Any:
    """A store that is both the ``JobStore`` and the ``KeyStore`` for ``TRAIN_STORE``'s URL."""
    if url.startswith("sqlite:///"):
        from core.stores.sqlite import SQLiteJobStore

        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteJobStore(path)
    if url.startswith("dynamodb://"):
        from core.stores.dynamodb import DynamoDBJobStore

        return DynamoDBJobStore(url.removeprefix("dynamodb://"))
    if url.startswith("firestore://"):
        from core.stores.firestore import FirestoreJobStore

        return FirestoreJobStore(url.removeprefix("firestore://"))
    raise ConfigError(
        f"TRAIN_STORE '{url}' is not a store this build supports (sqlite:///path, dynamodb://table, firestore://prefix)"
    )


def build_secrets(settings: Settings) -> SecretStore:
    """The secret store of ``TRAIN_SECRETS`` (default ``file://<data_dir>/secrets``). Adapters import
    their SDK on the first read, so a deployment without secret refs never loads it."""
    url = settings.secrets_url
    scheme, _, rest = url.partition("://")
    if scheme == "file" and rest:
        from core.secrets.file import FileSecretStore

        return FileSecretStore(Path(rest))
    if scheme == "aws-secretsmanager":
        from core.secrets.aws_secretsmanager import AWSSecretsManagerStore

        return AWSSecretsManagerStore(rest)
    if scheme == "gcp-secretmanager" and rest:
        from core.secrets.gcp_secretmanager import GCPSecretManagerStore

        return GCPSecretManagerStore(rest, endpoint=settings.secrets_endpoint)
    if scheme == "azure-keyvault" and rest:
        from core.secrets.azure_keyvault import AzureKeyVaultStore

        return AzureKeyVaultStore(f"https://{rest.rstrip('/')}")
    raise ConfigError(
        f"TRAIN_SECRETS '{url}' is not a secret store this build supports (file://<dir>, "
        "aws-secretsmanager://[prefix], gcp-secretmanager://<project>, azure-keyvault://<vault-host>)"
    )


def build_backend(name: str, settings: Settings, secrets: SecretStore | None = None) -> TrainingBackend:
    secrets = secrets if secrets is not None else build_secrets(settings)
    if name == "local":
        from core.backends.local import LocalBackend

        return LocalBackend(settings.data_dir, stop_grace=settings.local_stop_grace_seconds, secrets=secrets)
    if name == "sagemaker":
        from core.backends.sagemaker import SageMakerBackend

        role, output = _required(settings, "sagemaker_role_arn", "sagemaker_output_uri", backend=name)
        return SageMakerBackend(role_arn=role, output_s3_uri=output, job_prefix=settings.job_prefix, secrets=secrets)
    if name == "vertex-ai":
        from core.backends.vertex import VertexBackend

        project, location, bucket = _required(
            settings, "vertex_project", "vertex_location", "vertex_staging_bucket", backend=name
        )
        options = {
            key: value
            for key, value in (
                ("api_endpoint", settings.vertex_endpoint),
                ("logging_endpoint", settings.vertex_logging_endpoint),
                ("storage_endpoint", settings.vertex_storage_endpoint),
            )
            if value
        }
        return VertexBackend(
            project=project, location=location, staging_bucket=bucket, job_prefix=settings.job_prefix,
            service_account=settings.vertex_service_account, client_options=options or None, secrets=secrets,
        )
    if name == "azure-ml":
        from core.backends.azureml import AzureMLBackend

        subscription, group, workspace = _required(
            settings, "azureml_subscription_id", "azureml_resource_group", "azureml_workspace", backend=name
        )
        return AzureMLBackend(
            subscription_id=subscription, resource_group=group, workspace=workspace,
            compute=settings.azureml_compute, job_prefix=settings.job_prefix,
            base_url=settings.azureml_base_url, blob_endpoint=settings.azureml_blob_endpoint, secrets=secrets,
        )
    raise ConfigError(f"TRAIN_BACKENDS names '{name}', which this build does not provide")


def _required(settings: Settings, *fields: str, backend: str) -> list[str]:
    missing = [f"TRAIN_{f.upper()}" for f in fields if not getattr(settings, f)]
    if missing:
        raise ConfigError(f"the {backend} backend needs {', '.join(missing)}")
    return [str(getattr(settings, f)) for f in fields]


def build_registry(settings: Settings, keys: KeyStore) -> tuple[Any, Any]:
    """The workspace registry (``ImageRegistry``) and the token service, each None unless configured."""
    wanted = settings.registry_url or settings.registry_signing_keys or settings.registry_resolve_list
    if not (wanted or settings.registry_targets):
        return None, None
    from core.registry.targets import parse_target
    from core.registry.token import RegistryTokens, TokenIssuer, load_signing_keys
    from core.registry.workspace import WorkspaceRegistry

    issuer = tokens = None
    if settings.registry_signing_keys:
        if not settings.registry_url:
            raise ConfigError("TRAIN_REGISTRY_SIGNING_KEYS needs TRAIN_REGISTRY_URL")
        host = settings.registry_url.split("://", 1)[1]
        issuer = TokenIssuer(
            load_signing_keys(p.strip() for p in settings.registry_signing_keys.split(",") if p.strip()),
            service=settings.registry_service or host, issuer=settings.registry_issuer,
            ttl=timedelta(seconds=settings.registry_token_ttl_seconds),
        )
        tokens = RegistryTokens(issuer, keys)
    targets = {
        backend: parse_target(url, setting=f"TRAIN_REGISTRY_TARGET_{backend.replace('-', '_').upper()}")
        for backend, url in settings.registry_targets.items()
    }
    registry = WorkspaceRegistry(
        url=settings.registry_url, issuer=issuer, targets=targets, resolve_hosts=settings.registry_resolve_list,
        insecure_hosts=settings.registry_insecure_list, timeout=settings.registry_timeout_seconds,
        attempts=settings.registry_attempts, backoff=settings.registry_backoff_seconds,
    )
    return registry, tokens


def build(settings: Settings | None = None) -> Wiring:
    settings = settings or Settings()
    store = build_store(settings.store_url)
    secrets = build_secrets(settings)
    backends = {name: build_backend(name, settings, secrets) for name in settings.backend_names}
    registry, tokens = build_registry(settings, store)
    service = TrainService(
        store,
        backends,
        submit_grace=timedelta(seconds=settings.submit_grace_seconds),
        stale_after=timedelta(seconds=settings.stale_after_seconds),
        expiry_grace=timedelta(seconds=settings.expiry_grace_seconds),
        registry=registry,
        notifier=build_notifier(settings),
        webhook_backoff=Backoff(base=timedelta(seconds=settings.webhook_backoff_seconds),
                                max_tries=settings.webhook_max_tries),
    )
    wiring = Wiring(settings, store, store, backends, service, registry=registry, tokens=tokens)
    local = backends.get("local")
    if local is not None:
        # Process exits reach the service through the same path as cloud events.
        local.set_listener(lambda native_id, update: service.apply_native_update("local", native_id, update))  # type: ignore[attr-defined]
        wiring.closers.append(local.close)  # type: ignore[attr-defined]
    return wiring


def build_notifier(settings: Settings) -> Any:
    """The webhook ``Notifier``, signing with ``TRAIN_WEBHOOK_SECRET``; in local mode (a SQLite
    store) with a secret generated once into ``<data_dir>/webhook_secret``. None when a cloud
    deployment sets no secret: submissions with ``notify`` are then refused."""
    local = settings.store_url.startswith("sqlite:///")
    secret = settings.webhook_secret.get_secret_value().encode() if settings.webhook_secret else None
    if secret is None and local:
        secret = local_webhook_secret(settings.data_dir)
    if not secret:
        return None
    from core.notifiers.webhook import WebhookNotifier

    allow_private = local if settings.webhook_allow_private is None else settings.webhook_allow_private
    return WebhookNotifier(secret, timeout=settings.webhook_timeout_seconds, allow_private=allow_private)


def local_webhook_secret(data_dir: Path) -> bytes:
    """``<data_dir>/webhook_secret``, created (mode 0600, 32 random bytes as hex) by whichever
    process gets there first; the others read it."""
    path = data_dir / "webhook_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = data_dir / f".webhook_secret.{os.getpid()}.{secrets_module.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets_module.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # appears whole or not at all; a second creator keeps the first
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


def open_keys(data_dir: Path) -> KeyStore:
    """The key store of a local data directory, for ``train keys ...`` while the server runs or not."""
    store: KeyStore = build_store(Settings(data_dir=data_dir).store_url)
    return store


class Sweeper:
    """Runs ``service.sweep`` every ``interval`` seconds on a daemon thread (local mode's scheduler)."""

    def __init__(self, service: TrainService, interval: float) -> None:
        self._service = service
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="train-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                report = self._service.sweep()
            except Exception:  # the scheduler must outlive one bad sweep
                log.exception("sweep failed")
                continue
            if report.changed or report.errors:
                log.info("sweep: %d active, %d changed, %d errors", report.scanned, len(report.changed), report.errors)


def ensure_dev_credentials(wiring: Wiring, url: str) -> tuple[dict[str, str], bool]:
    """The development account's credentials, created on first start. Only the key's hash is
    stored; the plaintext lives in ``credentials.json`` (mode 0600) in the data directory."""
    from core.auth import create_key

    path = wiring.settings.data_dir / "credentials.json"
    account = wiring.settings.account_id
    creds: dict[str, str] = {}
    if path.exists():
        creds = json.loads(path.read_text())
        key_id = creds.get("api_key", "").split("_")[1:2]
        stored = wiring.keys.get_key(key_id[0]) if key_id else None
        if stored is None or stored.revoked_at is not None:
            creds = {}
    created = not creds
    if created:
        api_key, _ = create_key(wiring.keys, [account], label="created by train serve")
        creds = {"account_id": account, "api_key": api_key}
    creds["url"] = url
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(creds, handle, indent=2)
    os.replace(tmp, path)
    return creds, created


def serve_local(host: str, port: int, data_dir: Path) -> None:
    """``train serve``: the HTTP API with SQLite and the local backend, until SIGINT or SIGTERM."""
    from core.server import LocalHTTPServer

    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings = Settings(data_dir=data_dir)
    wiring = build(settings)
    server = LocalHTTPServer(wiring.api, host=host, port=port)
    url = f"http://{host}:{server.port}"
    creds, created = ensure_dev_credentials(wiring, url)
    report = wiring.service.sweep(reconcile_all=True)
    if report.scanned:
        print(f"Reconciled {report.scanned} job(s) left from the last run.", flush=True)
    sweeper = Sweeper(wiring.service, settings.sweep_interval_seconds)
    sweeper.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    if created:
        print(f"Created development account '{creds['account_id']}' with API key {creds['api_key']}", flush=True)
    print(f"Credentials are in {data_dir / 'credentials.json'}", flush=True)
    print(f"Train is listening on {url}", flush=True)
    try:
        stop.wait()
    finally:
        print("Stopping Train.", flush=True)
        server.stop()
        sweeper.stop()
        wiring.close()
