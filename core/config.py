"""Configuration: every ``TRAIN_*`` variable, read in one place (SPEC §11).

The SDKs' own variables (``AWS_ENDPOINT_URL``, ``FIRESTORE_EMULATOR_HOST``...) are left to the SDKs.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
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

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:///{self.data_dir / 'train.db'}"

    @property
    def backend_names(self) -> list[str]:
        return [name.strip() for name in self.backends.split(",") if name.strip()]
