"""Cold start (STYLE "Cold start is a rule"): ``functions/gcp/main.py``, loaded in a fresh
interpreter as functions-framework loads it, pulls no AWS or Azure SDK and not the high-level
``google.cloud.aiplatform`` package (1.4 s), and builds nothing. Its first invocations load only
what they use: the HTTP route table, then ``aiplatform_v1`` when a log-sink event reads a job.

Only modules the import adds count: google-cloud-aiplatform's ``*-nspkg.pth`` registers the empty
``google`` and ``google.cloud`` namespace modules at interpreter start-up, before any code of
ours runs. Powertools' probe of the bare ``botocore`` package (its ``__init__`` only) is tolerated,
as in tests/unit/test_imports.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.functions.gcp_deployment import ROOT, SOURCE, GcpDeployment, app, gcp, spec
from tests.functions.shapes import shared

__all__ = ["gcp"]

LOAD = (
    "import importlib.util, json, sys\n"
    "before = set(sys.modules)\n"
    f"spec = importlib.util.spec_from_file_location('main', {str(SOURCE)!r})\n"
    "main = importlib.util.module_from_spec(spec)\n"
    f"sys.path.append({str(SOURCE.parent)!r})\n"
    "sys.modules['main'] = main\n"
    "spec.loader.exec_module(main)\n"
)


def fresh_interpreter(code: str, env: dict[str, str] | None = None) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False,
                         timeout=60, env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr[-3000:]
    added: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return added


def forbidden(modules: list[str]) -> list[str]:
    """AWS and Azure SDK modules, and the high-level Vertex AI SDK, among ``modules``."""
    return [
        m for m in modules
        if m == "boto3" or m.startswith(("boto3.", "botocore.", "azure"))
        or m == "google.cloud.aiplatform" or m.startswith("google.cloud.aiplatform.")
    ]


def test_import_loads_no_other_cloud_sdk_and_builds_nothing() -> None:
    added = fresh_interpreter(
        LOAD + "import core.hosts as hosts\n"
        "assert hosts._wiring is None, 'wiring built at import'\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    assert forbidden(added) == []
    # Google's clients come with the wiring on first use, not with the module.
    assert [m for m in added if m.startswith(("google.cloud.firestore", "google.cloud.aiplatform", "grpc"))] == []


def test_first_invocations_load_only_aiplatform_v1(gcp: GcpDeployment) -> None:
    created = app("http").post("/v1/jobs", json=spec(), headers=gcp.auth())
    assert created.status_code == 201
    gcp.vertex.set_state(created.get_json()["cloud_job_identifier"]["job_name"], "JOB_STATE_RUNNING")
    event = json.dumps(shared("pubsub_cloudevent_vertex_log_entry.json"))
    added = fresh_interpreter(
        LOAD + "import functions_framework\n"
        f"source = {str(SOURCE)!r}\n"
        "health = functions_framework.create_app('http', source).test_client().get('/health')\n"
        "assert health.status_code == 200, health.status_code\n"
        "events = functions_framework.create_app('vertex_events', source).test_client()\n"
        f"answer = events.post('/', data={event!r}, headers={{'Content-Type': 'application/cloudevents+json'}})\n"
        "assert answer.status_code == 200, answer.status_code\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))",
        env=gcp.env,
    )
    assert forbidden(added) == []
    assert "google.cloud.aiplatform_v1" in added and "google.cloud.firestore" in added
    job = gcp.store.get("acct-a", created.get_json()["id"])
    assert job is not None and job.status == "IN_PROGRESS"  # the event really went through
