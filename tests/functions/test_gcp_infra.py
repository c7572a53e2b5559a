"""infra/gcp agrees with the code: every .tf parses (python-hcl2) and ``infra/gcp/check_tf.py``
finds nothing wrong, and its checks do catch what they guard against. (``infra/check_gcp.sh``
runs the same check, then checkov.)"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_tf", ROOT / "infra" / "gcp" / "check_tf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_tf = _load_checker()


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    parsed: dict[str, Any] = check_tf.load()
    return parsed


def test_infra_parses_and_passes_the_structure_check(tf: dict[str, Any]) -> None:
    assert check_tf.check(tf) == []
    assert check_tf.check_environment(tf) == []


def test_environment_is_the_vertex_firestore_deployment(tf: dict[str, Any]) -> None:
    env = tf["locals"]["environment"]
    assert env["TRAIN_BACKENDS"] == "vertex-ai"
    assert env["TRAIN_STORE"] == "firestore://${var.collection_prefix}"
    assert env["TRAIN_VERTEX_LOCATION"] == "${var.region}"


def _mutated(tf: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(tf)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize(("path", "value", "says"), [
    (("resource", ("google_cloudfunctions2_function", "events"), "event_trigger", 0, "retry_policy"),
     "RETRY_POLICY_DO_NOT_RETRY", "must retry"),
    (("resource", ("google_logging_project_sink", "vertex_jobs"), "filter"), 'resource.type="ml_job"', "filter"),
    (("resource", ("google_cloudfunctions2_function", "sweeper"), "build_config", 0, "entry_point"), "sweep",
     "entry point"),
    (("resource", ("google_project_iam_member", "grant"), "role"), "roles/editor", "primitive"),
    (("locals", "job_indexes"), [[["active", "ASCENDING"], ["id", "ASCENDING"]]], "JOB_INDEXES"),
    (("resource", ("google_cloudfunctions2_function", "events"), "service_config", 0, "service_account_email"),
     "${google_service_account.function[\"http\"].email}", "own service account"),
])
def test_the_check_catches(tf: dict[str, Any], path: tuple[Any, ...], value: Any, says: str) -> None:
    problems = check_tf.check(_mutated(tf, path, value))
    assert any(says in p for p in problems), problems


def test_unknown_setting_is_caught(tf: dict[str, Any]) -> None:
    changed = copy.deepcopy(tf)
    changed["locals"]["environment"]["TRAIN_VERTEX_REGION"] = "us-central1"
    assert check_tf.check_environment(changed)
