"""Trigger payloads for the AWS function tests, built from the captured samples in
``../shared/fixtures/events/`` (and the variants in ``events/``) so every field the platform
sends is there."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "events"
VARIANTS = Path(__file__).resolve().parent / "events"
DIGEST_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acct/pytorch@sha256:" + "ab" * 32


def shared(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SHARED / name).read_text())
    return data


def variant(name: str) -> Any:
    return json.loads((VARIANTS / name).read_text())


def spec(name: str = "mnist", **extra: Any) -> dict[str, Any]:
    return {"name": name, "backend": "sagemaker", "image": DIGEST_IMAGE, "command": ["python", "train.py"], **extra}


def auth(key: str, account: str) -> dict[str, str]:
    return {"x-api-key": key, "x-selected-account-id": account}


def http_v2(
    method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
    query: dict[str, list[str]] | None = None, base64_body: bool = False,
) -> dict[str, Any]:
    """An HTTP API payload 2.0 event: the published sample with this request in it."""
    event = shared("apigw_http_v2.json")
    event.pop("cookies", None)
    event.pop("pathParameters", None)
    pairs = [(k, v) for k, values in (query or {}).items() for v in values]
    event["rawPath"] = path
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in pairs)
    event["headers"] = {k.lower(): v for k, v in (headers or {}).items()}
    if pairs:
        event["queryStringParameters"] = {k: ",".join(values) for k, values in (query or {}).items()}
    else:
        event.pop("queryStringParameters", None)
    event["requestContext"]["http"].update(method=method, path=path)
    event["requestContext"]["requestId"] = uuid.uuid4().hex
    _body(event, body, base64_body)
    return event


def rest_v1(
    method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
    query: dict[str, list[str]] | None = None, base64_body: bool = False,
) -> dict[str, Any]:
    """A REST API payload 1.0 event: the published sample with this request in it, headers in
    their sent case, and the stage in ``requestContext.path`` only."""
    event = shared("apigw_rest_v1.json")
    sent = dict(headers or {})
    event.update(resource=path, path=path, httpMethod=method)
    event["headers"] = sent
    event["multiValueHeaders"] = {k: [v] for k, v in sent.items()}
    if query:
        event["queryStringParameters"] = {k: values[-1] for k, values in query.items()}
        event["multiValueQueryStringParameters"] = copy.deepcopy(query)
    else:
        event["queryStringParameters"] = event["multiValueQueryStringParameters"] = None
    context = event["requestContext"]
    context.update(httpMethod=method, path=f"/prod{path}", resourcePath=path, stage="prod",
                   requestId=uuid.uuid4().hex)
    _body(event, body, base64_body)
    return event


def _body(event: dict[str, Any], body: Any, base64_body: bool) -> None:
    if body is None:
        event["body"], event["isBase64Encoded"] = None, False
        return
    text = body if isinstance(body, str) else json.dumps(body)
    if base64_body:
        event["body"], event["isBase64Encoded"] = base64.b64encode(text.encode()).decode(), True
    else:
        event["body"], event["isBase64Encoded"] = text, False


def sagemaker_event(
    name: str, status: str, secondary: str | None = None, *, modified_ms: int, failure_reason: str | None = None,
) -> dict[str, Any]:
    """The published "SageMaker Training Job State Change" sample, for job ``name`` in this state
    (``LastModifiedTime`` as the epoch-millisecond string SageMaker sends)."""
    event = shared("sagemaker_state_change_completed.json")
    event["id"] = str(uuid.uuid4())
    detail = event["detail"]
    detail.update(TrainingJobName=name, TrainingJobStatus=status, SecondaryStatus=secondary or status,
                  LastModifiedTime=str(modified_ms))
    detail["TrainingJobArn"] = f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}"
    event["resources"] = [detail["TrainingJobArn"]]
    if failure_reason:
        detail["FailureReason"] = failure_reason
    return event


def response_json(response: dict[str, Any]) -> Any:
    body = response.get("body")
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body or "").decode()
    return json.loads(body) if body else None


def header(response: dict[str, Any], name: str) -> str | None:
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None
