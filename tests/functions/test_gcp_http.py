"""The ``http`` Cloud Function: Flask requests through the route table, Firestore in the emulator,
Vertex AI through the real JobServiceClient to the fake endpoint. In-process with the framework's
test client, and once through a real ``functions-framework`` process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.functions.gcp_deployment import FunctionsFramework, GcpDeployment, app, gcp, spec

__all__ = ["gcp"]


def test_health_needs_no_key(gcp: GcpDeployment) -> None:
    response = app("http").get("/health")
    assert response.status_code == 200
    assert response.is_json


def test_submit_get_and_list_a_vertex_job(gcp: GcpDeployment) -> None:
    client = app("http")
    created = client.post("/v1/jobs", json=spec(max_runtime="2h"), headers=gcp.auth())
    assert created.status_code == 201, created.get_data(as_text=True)
    job = created.get_json()
    assert job["backend"] == "vertex-ai" and job["job_type"] == "vertex_ai" and job["status"] == "PENDING"
    name = job["cloud_job_identifier"]["job_name"]
    assert name == gcp.vertex.name("3000721679224668160")
    (sent,) = gcp.vertex.created()
    assert sent["labels"]["train-job-id"] == job["id"]
    assert sent["jobSpec"]["scheduling"]["timeout"] == "7200s"

    stored = gcp.store.get("acct-a", job["id"])
    assert stored is not None and stored.native_id == name

    got = client.get(f"/v1/jobs/{job['id']}", headers=gcp.auth())
    assert got.status_code == 200 and got.get_json()["id"] == job["id"]
    client.post("/v1/jobs", json=spec("second"), headers=gcp.auth())
    page = client.get("/v1/jobs?limit=1&backend=vertex-ai", headers=gcp.auth()).get_json()
    assert [j["name"] for j in page["jobs"]] == ["second"] and page["next_cursor"]


def test_idempotency_key_header_reaches_the_route_table(gcp: GcpDeployment) -> None:
    client = app("http")
    headers = {**gcp.auth(), "Idempotency-Key": "k-1"}
    first = client.post("/v1/jobs", json=spec(), headers=headers)
    again = client.post("/v1/jobs", json=spec(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["id"] == again.get_json()["id"]
    assert len(gcp.vertex.created()) == 1


def test_errors_are_problem_documents(gcp: GcpDeployment) -> None:
    client = app("http")
    missing = client.get("/v1/jobs")
    assert missing.status_code == 401 and missing.content_type == "application/problem+json"
    job = client.post("/v1/jobs", json=spec(), headers=gcp.auth()).get_json()
    other = client.get(f"/v1/jobs/{job['id']}", headers=gcp.auth("acct-b"))
    assert other.status_code == 404
    refused = client.post("/v1/jobs", json=spec(storage_mounts=[{"source_uri": "s3://b/d", "mount_path": "/mnt/d"}]),
                          headers=gcp.auth())
    assert refused.status_code == 422
    assert any("storage_mounts" in e.get("field", e.get("pointer", "")) for e in refused.get_json()["errors"])
    wrong_type = client.post("/v1/jobs", data="name: x", headers={**gcp.auth(), "Content-Type": "text/yaml"})
    assert wrong_type.status_code == 415
    assert len(gcp.vertex.created()) == 1  # only the accepted job reached Vertex AI


def test_native_sgp_shape(gcp: GcpDeployment) -> None:
    body = {
        "name": "native",
        "job_config": {
            "worker_pool_specs": [{
                "machine_spec": {"machine_type": "n1-standard-4"}, "replica_count": 1,
                "container_spec": {"image_uri": spec()["image"], "command": ["python"], "args": ["train.py"]},
            }],
            "scheduling": {"timeout": "3600s"},
        },
        "storage_mounts": [],
    }
    created = app("http").post("/v1/vertex-ai/jobs", json=body, headers=gcp.auth())
    assert created.status_code == 201, created.get_data(as_text=True)
    (sent,) = gcp.vertex.created()
    assert sent["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["machineType"] == "n1-standard-4"


def _call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        **(headers or {}), **({"Content-Type": "application/json"} if data else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_real_functions_framework_process(gcp: GcpDeployment) -> None:
    with FunctionsFramework("http", gcp.env) as server:
        assert _call(f"{server.url}/health")[0] == 200
        status, job = _call(f"{server.url}/v1/jobs", "POST", spec(), gcp.auth())
        assert status == 201, server.output()[-2000:]
        status, got = _call(f"{server.url}/v1/jobs/{job['id']}", headers=gcp.auth())
        assert status == 200 and got["cloud_job_identifier"] == job["cloud_job_identifier"]
        status, page = _call(f"{server.url}/v1/jobs?status=PENDING", headers=gcp.auth())
        assert status == 200 and [j["id"] for j in page["jobs"]] == [job["id"]]
        assert _call(f"{server.url}/v1/jobs")[0] == 401
    assert gcp.store.get("acct-a", job["id"]) is not None
