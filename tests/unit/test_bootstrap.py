"""Configuration picks the adapters; a missing setting is named, nothing is built at import."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.bootstrap import ConfigError, build, build_backend, build_store
from core.config import Settings


def test_local_wiring_uses_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    wiring = build(Settings(data_dir=tmp_path))
    try:
        assert type(wiring.store).__name__ == "SQLiteJobStore"
        assert list(wiring.backends) == ["local"]
        assert (tmp_path / "train.db").exists()
    finally:
        wiring.close()


@pytest.mark.parametrize(
    ("backend", "settings", "cls"),
    [
        ("sagemaker", {"sagemaker_role_arn": "arn:aws:iam::1:role/r", "sagemaker_output_uri": "s3://b/p"},
         "SageMakerBackend"),
        ("vertex-ai", {"vertex_project": "p", "vertex_location": "us-central1", "vertex_staging_bucket": "b"},
         "VertexBackend"),
        ("azure-ml", {"azureml_subscription_id": "s", "azureml_resource_group": "g", "azureml_workspace": "w"},
         "AzureMLBackend"),
    ],
)
def test_each_cloud_backend_is_built_from_its_settings(backend: str, settings: dict[str, str], cls: str) -> None:
    assert type(build_backend(backend, Settings(**settings))).__name__ == cls  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("backend", "missing"),
    [
        ("sagemaker", "TRAIN_SAGEMAKER_ROLE_ARN, TRAIN_SAGEMAKER_OUTPUT_URI"),
        ("vertex-ai", "TRAIN_VERTEX_PROJECT, TRAIN_VERTEX_LOCATION, TRAIN_VERTEX_STAGING_BUCKET"),
        ("azure-ml", "TRAIN_AZUREML_SUBSCRIPTION_ID, TRAIN_AZUREML_RESOURCE_GROUP, TRAIN_AZUREML_WORKSPACE"),
    ],
)
def test_missing_settings_are_named(backend: str, missing: str) -> None:
    with pytest.raises(ConfigError, match=missing):
        build_backend(backend, Settings())


def test_unknown_store_and_backend_are_refused() -> None:
    with pytest.raises(ConfigError, match="postgres://x"):
        build_store("postgres://x")
    with pytest.raises(ConfigError, match="nomad"):
        build_backend("nomad", Settings())


def test_settings_come_from_train_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRAIN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TRAIN_BACKENDS", "local, sagemaker")
    monkeypatch.setenv("TRAIN_STORE", "dynamodb://jobs")
    settings = Settings()
    assert settings.backend_names == ["local", "sagemaker"]
    assert settings.store_url == "dynamodb://jobs"
    monkeypatch.delenv("TRAIN_STORE")
    assert Settings().store_url == f"sqlite:///{tmp_path / 'train.db'}"
