"""Dependency rules of SPEC §1: core pulls no cloud SDK and never imports functions."""

from __future__ import annotations

import ast
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


def test_core_imports_no_cloud_sdk_in_a_fresh_interpreter() -> None:
    code = (
        "import sys\n"
        f"for name in {CORE_MODULES!r}: __import__(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({CLOUD_SDKS!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


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
