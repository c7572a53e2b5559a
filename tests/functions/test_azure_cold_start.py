"""Cold start of the Azure function app (STYLE "Cold start is a rule"): imported in a fresh
interpreter, ``functions/azure/function_app.py`` loads no AWS or Google SDK and not ``azure.ai.ml``,
and builds nothing; an Event Grid event it drops, or one for a job that has already ended, is
handled without importing ``azure.ai.ml`` either (only a re-read of a running job needs it).

Tolerated, as in tests/unit/test_imports.py: the bare ``botocore`` package, which Powertools
probes, and the empty ``google``/``google.cloud`` namespaces a ``*-nspkg.pth`` file registers at
interpreter start-up."""

from __future__ import annotations

import json
import os

import pytest

from tests.functions.azure_deployment import (
    RUN_COMPLETED,
    AzureDeployment,
    azure_deployment_fixture,  # noqa: F401
    run_event,
)
from tests.functions.test_cold_start import fresh_interpreter

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # azure-ai-ml's marshmallow use
TOLERATED = {"botocore", "google", "google.cloud"}


def foreign_sdks(modules: object) -> list[str]:
    """AWS and Google SDK modules, and azure.ai.ml, among ``modules``."""
    assert isinstance(modules, list)
    return [
        m for m in modules
        if m not in TOLERATED and (m.split(".")[0] in ("boto3", "botocore", "google") or m.startswith("azure.ai.ml"))
    ]


def deployment_env() -> dict[str, str]:
    """The deployment's settings for a child process. MLClient rewrites ``AZUREML_CURRENT_CLOUD``
    in this process to the test endpoint's cloud entry, which a new process does not know."""
    return {**os.environ, "AZUREML_CURRENT_CLOUD": "AzureCloud"}


def invoke(events: list[dict[str, object]]) -> str:
    """Code that indexes the app and feeds ``events`` to its Event Grid trigger, as the worker does."""
    return (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "from azure.functions import meta\n"
        "from azure.functions.eventgrid import EventGridEventInConverter\n"
        "from functions.azure.function_app import app\n"
        "(trigger,) = [f.get_user_function() for f in app.get_functions()"
        " if f.get_function_name() == 'azureml_events']\n"
        f"for event in json.loads({json.dumps(json.dumps(events))}):\n"
        "    trigger(EventGridEventInConverter.decode(meta.Datum(json.dumps(event), 'json'), trigger_metadata={}))\n"
        "print(json.dumps({'modules': sorted(set(sys.modules) - before)}))"
    )


def test_import_loads_no_other_cloud_sdk_nor_azure_ml_and_builds_nothing() -> None:
    code = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import functions.azure.function_app\n"
        "import core.hosts as hosts\n"
        "print(json.dumps({'modules': sorted(set(sys.modules) - before), 'built': hosts._wiring is not None}))"
    )
    result = fresh_interpreter(code)
    assert foreign_sdks(result["modules"]) == []
    assert result["built"] is False
    assert "azure.functions" in result["modules"]  # type: ignore[operator]


def test_events_it_drops_or_ignores_import_no_azure_ml(azure_deployment: AzureDeployment) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Completed")
    azure_deployment.deliver(run_event(name, None, kind=RUN_COMPLETED))
    events = [
        run_event(name, "Completed", workspace="someone-elses-ws"),  # another workspace: dropped
        run_event("AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5", "Completed"),  # not a Train run
        run_event(name.replace(job_id, "01zzzzzzzzzzzzzzzzzzzzzzzz"), "Completed"),  # no such job
        run_event(name, "Completed"),  # the job has ended: recorded, not re-read
    ]
    result = fresh_interpreter(invoke(events), env=deployment_env())
    assert foreign_sdks(result["modules"]) == []

    job = azure_deployment.store.get("acct-a", job_id)
    assert job is not None and job.ignored_updates == 1  # the child process really handled the last one


def test_a_running_job_is_re_read_with_azure_ml(azure_deployment: AzureDeployment) -> None:
    job_id, name = azure_deployment.submit()
    azure_deployment.azureml.advance(name, "Running")
    result = fresh_interpreter(invoke([run_event(name, "Running")]), env=deployment_env())
    assert "azure.ai.ml" in result["modules"]  # type: ignore[operator]
    assert [m for m in foreign_sdks(result["modules"]) if not m.startswith("azure.ai.ml")] == []
    job = azure_deployment.store.get("acct-a", job_id)
    assert job is not None and job.native_status == "Running"
