"""The function app as the worker indexes it, its HTTP API (the core route table behind the
``{*path}`` route) and its timer, over the real wiring."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from core import hosts
from core.bootstrap import Wiring, build
from core.errors import UnavailableError
from core.service import TrainService
from tests.functions.azure_deployment import (
    AzureDeployment,
    azure_deployment_fixture,  # noqa: F401
    http_request,
    indexed,
    response_json,
    spec,
    timer,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # azure-ai-ml's marshmallow use
ROOT = Path(__file__).resolve().parents[2]


def bindings() -> dict[str, list[dict[str, Any]]]:
    """Each function's bindings as the indexer reports them to the host (function.json)."""
    return {str(f.get_function_name()): json.loads(f.get_function_json())["bindings"] for f in indexed()}


def test_the_indexer_finds_four_functions_with_their_triggers() -> None:
    found = bindings()
    assert set(found) == {"http_api", "azureml_events", "azureml_events_webhook", "sweeper"}
    (api, out) = found["http_api"]
    assert (api["type"], api["route"], api["authLevel"], out["name"]) == ("httpTrigger", "{*path}", "ANONYMOUS",
                                                                          "$return")
    (events,) = found["azureml_events"]
    assert events["type"] == "eventGridTrigger"
    hook = found["azureml_events_webhook"][0]
    assert (hook["route"], hook["authLevel"], sorted(hook["methods"])) == ("eventgrid/azureml", "FUNCTION",
                                                                          ["OPTIONS", "POST"])
    (sweep,) = found["sweeper"]
    assert (sweep["type"], sweep["schedule"], sweep["runOnStartup"]) == ("timerTrigger", "0 */5 * * * *", False)


def test_host_json_serves_routes_at_the_root() -> None:
    host = json.loads((ROOT / "functions" / "azure" / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensions"]["http"]["routePrefix"] == ""
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"


def test_health_and_openapi_need_no_key(azure_deployment: AzureDeployment) -> None:
    api = azure_deployment.functions["http_api"]
    health = api(http_request("GET", "/health"))
    assert health.status_code == 200
    document = response_json(api(http_request("GET", "/openapi.json")))
    assert "/v1/jobs" in document["paths"]


def test_keys_and_accounts_are_checked(azure_deployment: AzureDeployment) -> None:
    api = azure_deployment.functions["http_api"]
    missing = api(http_request("GET", "/v1/jobs"))
    assert missing.status_code == 401 and missing.mimetype == "application/problem+json"
    job_id, _ = azure_deployment.submit()
    assert azure_deployment.api("GET", f"/v1/jobs/{job_id}", key=azure_deployment.other_key, account="acct-a")[0] == 403
    assert azure_deployment.api("GET", f"/v1/jobs/{job_id}", key=azure_deployment.other_key, account="acct-b")[0] == 404


def test_submit_list_and_page_with_query_parameters(azure_deployment: AzureDeployment) -> None:
    first, _ = azure_deployment.submit(name="first")
    second, _ = azure_deployment.submit(name="second")
    status, page = azure_deployment.api("GET", "/v1/jobs", query={"limit": "1"})
    assert status == 200 and [j["id"] for j in page["jobs"]] == [second]
    status, rest = azure_deployment.api("GET", "/v1/jobs", query={"limit": "1", "cursor": page["next_cursor"]})
    assert status == 200 and [j["id"] for j in rest["jobs"]] == [first]
    assert rest["jobs"][0]["job_type"] == "azure_ml"


def test_a_spec_azure_ml_cannot_run_is_422_before_any_call(azure_deployment: AzureDeployment) -> None:
    mounts = [{"source_uri": "s3://bucket/data", "mount_path": "/mnt/data"}]
    status, problem = azure_deployment.api("POST", "/v1/jobs", spec(storage_mounts=mounts))
    assert status == 422
    assert [e["field"] for e in problem["errors"]] == ["storage_mounts[0].source_uri"]
    assert azure_deployment.azureml.calls("PUT", "/jobs/") == []


def test_concurrent_requests_each_get_their_own_resolver(azure_deployment: AzureDeployment) -> None:
    job_id, _ = azure_deployment.submit()
    with ThreadPoolExecutor(max_workers=8) as pool:  # the worker's thread pool runs sync functions side by side
        results = list(pool.map(lambda _: azure_deployment.api("GET", f"/v1/jobs/{job_id}"), range(32)))
    assert {status for status, _ in results} == {200}
    assert {job["id"] for _, job in results} == {job_id}


@pytest.mark.parametrize(("past_due", "trigger"), [(False, "timer"), (True, "timer-past-due")])
def test_the_timer_runs_one_sweep(
    azure_deployment: AzureDeployment, caplog: pytest.LogCaptureFixture, past_due: bool, trigger: str
) -> None:
    azure_deployment.submit()
    with caplog.at_level(logging.INFO, logger="train"):
        azure_deployment.functions["sweeper"](timer(past_due=past_due))
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("sweep (")]
    assert line.startswith(f"sweep ({trigger}): scanned 1,")


class UnavailableIndex:
    def list_active(self, *, limit: int = 100, cursor: str | None = None) -> Any:
        raise UnavailableError("the job store is unavailable, retry later")


def test_an_unavailable_index_fails_the_timer_invocation(azure_deployment: AzureDeployment) -> None:
    real = build()
    store: Any = UnavailableIndex()
    service = TrainService(store, real.backends)
    hosts.set_wiring_for_tests(Wiring(real.settings, store, real.keys, real.backends, service))
    with pytest.raises(UnavailableError):
        azure_deployment.functions["sweeper"](timer())
