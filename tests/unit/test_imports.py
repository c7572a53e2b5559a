"""Dependency rules of SPEC §1: core pulls no cloud SDK and never imports functions."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLOUD_SDKS = ("boto3", "botocore", "google", "azure")
CORE_MODULES = [
    "core.api", "core.auth", "core.bootstrap", "core.cli", "core.client", "core.config", "core.server",
    "core.service", "core.stores.sqlite", "core.backends.local",
]


def loaded_sdk_modules(modules: list[str]) -> list[str]:
    """Cloud SDK modules present after importing ``modules`` in a fresh interpreter.

    Powertools probes for the bare ``botocore`` package (its ``__init__`` only, ~0.3 ms) to decide
    whether to tag AWS user agents; that probe loads none of the SDK, so the bare package is not
    counted. Any ``botocore.*`` submodule, boto3, google or azure is.
    """
    code = (
        "import sys, json\n"
        f"for name in {modules!r}: __import__(name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    # google-cloud-aiplatform installs a legacy "-nspkg.pth" that registers the empty namespace
    # packages google and google.cloud at interpreter start-up: no SDK code, so not counted either.
    bare = {"botocore", "google", "google.cloud"}
    return [m for m in loaded if m.split(".")[0] in CLOUD_SDKS and m not in bare]


def test_core_imports_no_cloud_sdk_in_a_fresh_interpreter() -> None:
    assert loaded_sdk_modules(CORE_MODULES) == []


def test_core_never_imports_functions() -> None:
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "functions"]
    assert offenders == []


def test_base_install_pulls_no_cloud_sdk() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    assert not any(sdk in base for sdk in ("boto3", "google-cloud", "azure"))
    assert {"aws", "gcp", "azure", "dev"} <= set(project["optional-dependencies"])
