"""Configuration: every ``TRAIN_*`` variable, read in one place (SPEC §11).

The SDKs' own variables (``AWS_ENDPOINT_URL``, ``FIRESTORE_EMULATOR_HOST``...) are left to the SDKs.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """``TRAIN_DATA_DIR``, else ``~/.train``."""
    value = os.environ.get("TRAIN_DATA_DIR")
    return Path(value).expanduser() if value else Path.home() / ".train"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAIN_", extra="ignore")

    store: str | None = Field(default=None, description="sqlite:///path/train.db, dynamodb://<table>, firestore://<prefix>")
    data_dir: Path = Field(default_factory=default_data_dir)
    backends: str = Field(default="local", description="comma-separated backends this deployment runs")
    job_prefix: str = Field(default="train", pattern=r"^[a-z][a-z0-9-]{0,15}$")
    account_id: str = Field(default="dev", description="the development account `train serve` creates")
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    submit_grace_seconds: float = Field(default=60.0, ge=0)
    stale_after_seconds: float = Field(default=600.0, ge=0)
    expiry_grace_seconds: float = Field(default=300.0, ge=0)
    local_stop_grace_seconds: float = Field(default=10.0, ge=0)
    # SageMaker: the execution role jobs run as, and where outputs and checkpoints go.
    sagemaker_role_arn: str | None = None
    sagemaker_output_uri: str | None = Field(default=None, pattern=r"^s3://[^/]+(/.*)?$")
    # Vertex AI: where jobs run and stage their outputs; endpoints only to override Google's.
    vertex_project: str | None = None
    vertex_location: str | None = None
    vertex_staging_bucket: str | None = None
    vertex_service_account: str | None = None
    vertex_endpoint: str | None = None
    vertex_logging_endpoint: str | None = None
    vertex_storage_endpoint: str | None = None
    # Azure ML: the workspace jobs run in; endpoints only to override Azure's.
    azureml_subscription_id: str | None = None
    azureml_resource_group: str | None = None
    azureml_workspace: str | None = None
    azureml_compute: str | None = None
    azureml_base_url: str | None = None
    azureml_blob_endpoint: str | None = None
    # Where {secret: name} env values are read: file://<dir> (default <data_dir>/secrets),
    # aws-secretsmanager://[prefix], gcp-secretmanager://<project>, azure-keyvault://<vault-host>.
    secrets: str | None = None
    secrets_endpoint: str | None = Field(default=None, description="GCP Secret Manager endpoint override")
    # Webhooks (notify, docs/webhooks.md): the HMAC secret every delivery is signed with. Local mode
    # (a SQLite store) generates one into <data_dir>/webhook_secret when it is unset.
    webhook_secret: SecretStr | None = None
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    webhook_backoff_seconds: float = Field(default=30.0, ge=0, description="first retry delay; doubles per try")
    webhook_max_tries: int = Field(default=8, ge=1, le=50)
    webhook_allow_private: bool | None = Field(default=None, description="reach private addresses; default: local mode")

    # Workspace registry (SPEC §8): the OCI registry accounts push to, which trusts /v2/token.
    registry_url: str | None = Field(default=None, pattern=r"^https?://[^/]+$", description="e.g. https://registry.example")
    registry_service: str | None = Field(default=None, description="auth.token.service; default the host")
    registry_issuer: str = Field(default="train", description="the registry's auth.token.issuer")
    registry_signing_keys: str | None = Field(default=None, description="PEM files or texts, key + cert")
    registry_token_ttl_seconds: float = Field(default=300.0, gt=0, le=3600)
    registry_resolve_hosts: str = Field(default="", description="other registries to pin by digest; * for all")
    registry_insecure_hosts: str = Field(default="", description="registries spoken to over plain HTTP")
    registry_timeout_seconds: float = Field(default=10.0, gt=0)
    registry_attempts: int = Field(default=4, ge=1, le=10)
    registry_backoff_seconds: float = Field(default=0.2, ge=0)
    # Where each backend's jobs pull from: ecr://, artifact-registry://, acr://, registry:// URLs.
    registry_target_sagemaker: str | None = None
    registry_target_vertex_ai: str | None = None
    registry_target_azure_ml: str | None = None

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{self.data_dir / 'train.db'}"

    @property
    def secrets_url(self) -> str:
        return self.secrets or f"file://{self.data_dir / 'secrets'}"

    @property
    def backend_names(self) -> list[str]:
        return _split(self.backends)

    @property
    def registry_resolve_list(self) -> list[str]:
        return _split(self.registry_resolve_hosts)

    @property
    def registry_insecure_list(self) -> list[str]:
        return _split(self.registry_insecure_hosts)

    @property
    def registry_targets(self) -> dict[str, str]:
        targets = {"sagemaker": self.registry_target_sagemaker, "vertex-ai": self.registry_target_vertex_ai,
                   "azure-ml": self.registry_target_azure_ml}
        return {backend: url for backend, url in targets.items() if url}


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
