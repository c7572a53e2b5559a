"""functions/aws/http.py end to end: API Gateway payloads (REST 1.0 and HTTP API 2.0) in, the real
wiring (DynamoDB in moto, SageMaker through the real boto3 client to our fake endpoint), answers
in the shape each payload version expects."""

from __future__ import annotations

from typing import Any

import pytest

from core import hosts
from core.apigw import is_payload_v1, v1_to_v2, v2_response_to_v1
from core.lifecycle import Status
from functions.aws import http
from tests.functions.conftest import Deployment
from tests.functions.shapes import auth, header, http_v2, response_json, rest_v1, shared, spec

JSON = {"content-type": "application/json"}


def call(event: dict[str, Any]) -> tuple[int, Any, dict[str, Any]]:
    response = http.handler(event, None)
    return response["statusCode"], response_json(response), response


def test_submit_through_rest_v1_and_read_back_through_http_v2(deployment: Deployment) -> None:
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k-1", **auth(deployment.key, "acct-a")}
    status, job, response = call(rest_v1("POST", "/v1/jobs", spec(), headers=headers))

    assert status == 201, job
    assert set(response) == {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]
    native = job["cloud_job_identifier"]["job_name"]
    assert native == f"train-{job['id']}-1"
    assert [body["TrainingJobName"] for body in deployment.sagemaker.calls("CreateTrainingJob")] == [native]

    stored = deployment.store.get("acct-a", job["id"])
    assert stored is not None and stored.native_id == native and stored.status == Status.PENDING

    status, read, response = call(http_v2("GET", f"/v1/jobs/{job['id']}", headers=auth(deployment.key, "acct-a")))
    assert status == 200
    assert "multiValueHeaders" not in response
    assert (read["id"], read["backend"], read["job_type"], read["status"]) == (job["id"], "sagemaker", "sagemaker",
                                                                               "PENDING")


def test_idempotent_replay_through_either_payload_version(deployment: Deployment) -> None:
    headers = {**JSON, "idempotency-key": "same", **auth(deployment.key, "acct-a")}
    first_status, first, _ = call(http_v2("POST", "/v1/jobs", spec(), headers=headers))
    again_status, again, _ = call(rest_v1("POST", "/v1/jobs", spec(), headers=headers, base64_body=True))
    other_status, other, response = call(rest_v1("POST", "/v1/jobs", spec("other"), headers=headers))

    assert (first_status, again_status) == (201, 200)
    assert again["id"] == first["id"]
    assert len(deployment.sagemaker.calls("CreateTrainingJob")) == 1
    assert other_status == 422 and other["title"] == "Idempotency key reused"
    assert header(response, "content-type") == "application/problem+json"


def test_list_with_repeated_query_parameters_from_rest_v1(deployment: Deployment) -> None:
    headers = {**JSON, **auth(deployment.key, "acct-a")}
    ids = [call(http_v2("POST", "/v1/jobs", spec(f"job-{n}"), headers=headers))[1]["id"] for n in range(3)]

    query = {"status": ["PENDING", "IN_PROGRESS"], "limit": ["2"]}
    status, page, _ = call(rest_v1("GET", "/v1/jobs", headers=auth(deployment.key, "acct-a"), query=query))
    assert status == 200
    assert [j["id"] for j in page["jobs"]] == ids[::-1][:2]
    assert page["next_cursor"]

    query = {"status": ["PENDING"], "cursor": [page["next_cursor"]]}
    status, rest, _ = call(http_v2("GET", "/v1/jobs", headers=auth(deployment.key, "acct-a"), query=query))
    assert status == 200 and [j["id"] for j in rest["jobs"]] == [ids[0]]


def test_cancel_stops_the_native_job_and_events_show_the_history(deployment: Deployment) -> None:
    headers = {**JSON, **auth(deployment.key, "acct-a")}
    _, job, _ = call(http_v2("POST", "/v1/jobs", spec(), headers=headers))

    status, canceled, _ = call(rest_v1("POST", f"/v1/jobs/{job['id']}/cancel", headers=auth(deployment.key, "acct-a")))
    assert status == 202 and canceled["status"] == "PENDING"  # CANCELED once SageMaker confirms
    name = job["cloud_job_identifier"]["job_name"]
    assert deployment.sagemaker.jobs[name]["TrainingJobStatus"] == "Stopping"

    status, events, _ = call(http_v2("GET", f"/v1/jobs/{job['id']}/events", headers=auth(deployment.key, "acct-a")))
    assert status == 200
    assert [e["reason"] for e in events["events"]] == ["submitted", "cancel requested"]


def test_problem_json_errors_in_both_shapes(deployment: Deployment) -> None:
    key_a = auth(deployment.key, "acct-a")
    _, job, _ = call(http_v2("POST", "/v1/jobs", spec(), headers={**JSON, **key_a}))

    key_b = auth(deployment.other_key, "acct-b")
    status, problem, response = call(rest_v1("GET", f"/v1/jobs/{job['id']}", headers=key_b))
    assert status == 404 and problem["status"] == 404  # another account's job does not exist for you
    assert response["multiValueHeaders"]["Content-Type"] == ["application/problem+json"]

    unknown = {"x-api-key": "trn_nope", "x-selected-account-id": "a"}
    status, problem, _ = call(http_v2("GET", "/v1/jobs", headers=unknown))
    assert status == 401 and problem["title"] == "Unauthenticated"

    status, problem, _ = call(rest_v1("GET", "/v1/jobs", headers=auth(deployment.key, "acct-b")))
    assert status == 403

    bad = spec(storage_mounts=[{"source_uri": "gs://bucket/data", "mount_path": "/mnt/data", "read_only": True}])
    status, problem, response = call(rest_v1("POST", "/v1/jobs", bad, headers={**JSON, **key_a}))
    assert status == 422 and header(response, "content-type") == "application/problem+json"
    assert any("storage_mounts" in str(e.get("field", e)) for e in problem["errors"]), problem
    assert len(deployment.sagemaker.calls("CreateTrainingJob")) == 1  # refused before any SageMaker call

    status, problem, _ = call(http_v2("POST", "/v1/jobs", "name=x", headers={"content-type": "text/plain", **key_a}))
    assert status == 415

    status, problem, _ = call(http_v2("POST", "/v1/jobs", "{not json", headers={**JSON, **key_a}))
    assert status in (400, 422) and problem["status"] == status


def test_health_and_openapi_need_no_key(deployment: Deployment) -> None:
    status, health, response = call(rest_v1("GET", "/health"))
    assert (status, health["status"]) == (200, "ok")
    assert response["multiValueHeaders"]["Content-Type"] == ["application/json"]

    status, document, _ = call(http_v2("GET", "/openapi.json"))
    assert status == 200 and "/v1/jobs" in document["paths"]


SAMPLES = ["apigw_http_v2.json", "apigw_http_v2_captured.json", "apigw_rest_v1.json", "apigw_rest_v1_captured.json"]


@pytest.mark.parametrize("fixture", SAMPLES)
def test_published_samples_reach_the_route_table(deployment: Deployment, fixture: str) -> None:
    """The samples name paths Train does not serve: each gets our problem+json 404 in its shape."""
    event = shared(fixture)
    status, problem, response = call(event)
    assert status == 404 and problem["status"] == 404
    assert header(response, "content-type") == "application/problem+json"
    assert ("multiValueHeaders" in response) == is_payload_v1(event)


def test_wiring_is_built_once_per_container(deployment: Deployment) -> None:
    call(http_v2("GET", "/health"))
    first = hosts.wiring()
    call(rest_v1("GET", "/health"))
    assert hosts.wiring() is first and hosts.http_app() is hosts.http_app()


def test_v1_to_v2_keeps_the_request() -> None:
    converted = v1_to_v2(shared("apigw_rest_v1.json"))
    assert converted["version"] == "2.0"
    assert converted["headers"] == {"header1": "value1", "header2": "value1,value2"}
    assert converted["queryStringParameters"] == {"parameter1": "value1,value2", "parameter2": "value"}
    assert converted["rawQueryString"] == "parameter1=value1&parameter1=value2&parameter2=value"
    assert converted["requestContext"]["http"] == {
        "method": "GET", "path": "/my/path", "protocol": "HTTP/1.1", "sourceIp": "IP", "userAgent": "user-agent",
    }
    assert converted["body"] == "Hello from Lambda!"

    captured = v1_to_v2(shared("apigw_rest_v1_captured.json"))
    assert captured["rawPath"] == "/"  # the stage ("/Prod/") is not part of the route
    assert captured["cookies"] == ["s_fid=7AABXMPL1AFD9BBF-0643XMPL09956DE2", "regStatus=pre-register"]
    assert "cookie" not in captured["headers"]
    assert captured["headers"]["host"] == "70ixmpl4fl.execute-api.ca-central-1.amazonaws.com"
    assert "body" not in captured and "queryStringParameters" not in captured


def test_v2_response_to_v1_keeps_each_header_whole() -> None:
    response = {"statusCode": 405, "body": "{}", "isBase64Encoded": False, "cookies": ["a=1", "b=2"],
                "headers": {"Allow": "GET, POST", "Content-Type": "application/problem+json"}}
    converted = v2_response_to_v1(response)
    assert converted["multiValueHeaders"] == {
        "Allow": ["GET, POST"], "Content-Type": ["application/problem+json"], "Set-Cookie": ["a=1", "b=2"],
    }
    assert converted["headers"]["Allow"] == "GET, POST" and converted["statusCode"] == 405
