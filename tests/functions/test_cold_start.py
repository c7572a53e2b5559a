"""Cold start (STYLE "Cold start is a rule"): each AWS function module, imported in a fresh
interpreter, loads neither Google's nor Azure's SDK, and builds nothing at import time; its first
invocation loads boto3 and still nothing of the other clouds.

Only modules the import adds count: with the gcp extra installed, a ``*-nspkg.pth`` file creates
the empty ``google`` and ``google.cloud`` namespace modules at interpreter start-up, before any
code of ours runs (and Lambda has no such file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.functions.conftest import Deployment

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ["functions.aws.http", "functions.aws.sagemaker_events", "functions.aws.sweeper"]
OTHER_CLOUDS = ("google", "azure")

FIRST_CALLS = {
    "functions.aws.http": "{'version': '2.0', 'rawPath': '/health', 'headers': {}, 'isBase64Encoded': False, "
                          "'requestContext': {'http': {'method': 'GET', 'path': '/health'}, 'stage': '$default'}}",
    "functions.aws.sagemaker_events": "{'source': 'aws.events', 'detail-type': 'Scheduled Event', 'detail': {}}",
    "functions.aws.sweeper": "{'source': 'aws.events', 'detail-type': 'Scheduled Event', 'detail': {}}",
}


def fresh_interpreter(code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
        env=env or dict(os.environ),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def cloud_modules(modules: object) -> list[str]:
    assert isinstance(modules, list)
    return [m for m in modules if m.split(".")[0] in OTHER_CLOUDS]


@pytest.mark.parametrize("module", FUNCTIONS)
def test_import_loads_no_other_cloud_sdk_and_builds_nothing(module: str) -> None:
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"import {module}\n"
        "import core.hosts as hosts\n"
        "print(json.dumps({'modules': sorted(set(sys.modules) - before), 'built': hosts._wiring is not None}))"
    )
    result = fresh_interpreter(code)
    assert cloud_modules(result["modules"]) == []
    assert result["built"] is False
    # boto3 comes with the wiring on first use; Powertools' probe of the bare botocore package is fine.
    modules = result["modules"]
    assert isinstance(modules, list)
    assert [m for m in modules if m == "boto3" or m.startswith(("boto3.", "botocore."))] == []


@pytest.mark.parametrize("module", FUNCTIONS)
def test_first_invocation_loads_boto3_and_no_other_cloud_sdk(deployment: Deployment, module: str) -> None:
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        f"import {module} as function\n"
        f"function.handler({FIRST_CALLS[module]}, None)\n"
        "print(json.dumps({'modules': sorted(set(sys.modules) - before)}))"
    )
    result = fresh_interpreter(code, env=dict(os.environ))
    assert cloud_modules(result["modules"]) == []
    assert "boto3" in result["modules"]  # type: ignore[operator]
