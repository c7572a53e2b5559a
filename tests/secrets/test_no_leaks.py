"""Issue 7, point 5: a ``{secret: name}`` env value reaches the training process (local) and the
CreateTrainingJob wire request (SageMaker), and nothing else: not a stored record (SQLite rows,
DynamoDB items), not an API response (submit, get, list, events, logs), not a log line (every logger
at DEBUG, the local job's logs.jsonl, the functions' stdout)."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from core.auth import create_key
from core.bootstrap import build
from core.config import Settings
from core.server import LocalHTTPServer
from functions.aws import http, sagemaker_events, sweeper
from tests.functions.conftest import Deployment
from tests.functions.shapes import auth, http_v2, shared, spec
from tests.secrets.leaks import debug_everywhere, files_under, log_lines, places_holding
from tests.servers import FAKE_AWS

SECRET = "tr41n-s3cr3t-" + uuid.uuid4().hex  # unique per run: a hit can only come from this test
ACCOUNT = "acct-a"


def _clear_train_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TRAIN_"):
            monkeypatch.delenv(name)


# ---- local mode ---------------------------------------------------------------------------------


class LocalApi:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.bodies: dict[str, bytes] = {}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"x-api-key": self.key, "x-selected-account-id": ACCOUNT, "content-type": "application/json"}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        self.bodies[f"{method} {path} #{len(self.bodies)}"] = raw
        return status, json.loads(raw) if raw else None


def test_local_job_gets_the_secret_and_nothing_else_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    _clear_train_env(monkeypatch)
    data = tmp_path / "data"
    secrets = data / "secrets"
    secrets.mkdir(parents=True, mode=0o700)
    (secrets / "hf_token").write_text(SECRET + "\n")
    (secrets / "hf_token").chmod(0o600)
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import hashlib, os
        token = os.environ["HF_TOKEN"]
        print("token sha256", hashlib.sha256(token.encode()).hexdigest(), flush=True)
        print("training with batch", os.environ["BATCH"], flush=True)
    """))
    wiring = build(Settings(data_dir=data, backends="local"))
    key, _ = create_key(wiring.keys, [ACCOUNT])
    server = LocalHTTPServer(wiring.api, host="127.0.0.1", port=0).start()
    api = LocalApi(server.url, key)
    try:
        with debug_everywhere(caplog):
            status, job = api.call("POST", "/v1/jobs", {
                "name": "leak-check", "backend": "local", "command": [sys.executable, str(script)],
                "env": {"HF_TOKEN": {"secret": "hf_token"}, "BATCH": "32"},
            })
            assert status == 201, job
            done = _wait(lambda: api.call("GET", f"/v1/jobs/{job['id']}")[1], "COMPLETED")
            assert done["spec"]["env"]["HF_TOKEN"] == {"secret": "hf_token"}
            assert api.call("GET", "/v1/jobs")[0] == 200
            assert api.call("GET", f"/v1/jobs/{job['id']}/events")[0] == 200
            status, logs = api.call("GET", f"/v1/jobs/{job['id']}/logs")
            assert status == 200
    finally:
        server.stop()
        wiring.close()

    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    assert [line["message"] for line in logs["lines"]] == [f"token sha256 {digest}", "training with batch 32"]
    assert len(api.bodies) >= 5
    rows = _sqlite_rows(data / "train.db")
    assert any(job["id"] in row for row in rows), "the job's row was read"
    places: dict[str, str | bytes] = {**api.bodies, **files_under(data, skip=secrets)}
    places |= {f"sqlite row {n}": row for n, row in enumerate(rows)}
    places |= {f"log line {n}": line for n, line in enumerate(log_lines(caplog))}
    out, err = capfd.readouterr()
    places |= {"stdout": out, "stderr": err}
    assert any("logs.jsonl" in where for where in places) and caplog.records
    assert places_holding(SECRET, places) == []


def _wait(read: Any, status: str, timeout: float = 20.0) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job: dict[str, Any] = read()
        if job["status"] == status:
            return job
        assert job["status"] in ("PENDING", "IN_PROGRESS"), job
        time.sleep(0.05)
    raise AssertionError(f"the job did not reach {status} within {timeout} s")


def _sqlite_rows(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        tables = [t for (t,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [repr(row) for table in tables for row in connection.execute(f'SELECT * FROM "{table}"')]


# ---- SageMaker through the AWS functions ----------------------------------------------------------


def test_sagemaker_job_sends_the_secret_to_sagemaker_and_nowhere_else(
    deployment: Deployment, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    import boto3

    prefix = f"train-{uuid.uuid4().hex[:8]}/"
    boto3.client("secretsmanager", endpoint_url=moto_endpoint, **FAKE_AWS).create_secret(
        Name=prefix + "hf_token", SecretString=SECRET)
    monkeypatch.setenv("TRAIN_SECRETS", f"aws-secretsmanager://{prefix}")
    monkeypatch.setenv("TRAIN_STALE_AFTER_SECONDS", "0")
    bodies: dict[str, bytes] = {}

    def api(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = auth(deployment.key, ACCOUNT)
        if body is not None:
            headers["content-type"] = "application/json"
        response = http.handler(http_v2(method, path, body, headers=headers), None)
        bodies[f"{method} {path} #{len(bodies)}"] = response.get("body", "").encode()
        return response["statusCode"], json.loads(response["body"]) if response.get("body") else None

    with debug_everywhere(caplog):
        status, job = api("POST", "/v1/jobs", spec(env={"HF_TOKEN": {"secret": "hf_token"}, "BATCH": "32"}))
        assert status == 201, job
        name = job["cloud_job_identifier"]["job_name"]
        _cloudwatch_line(moto_endpoint, name, "epoch 1 loss 0.5")
        deployment.sagemaker.advance(name, "InProgress", "Training")
        assert sagemaker_events.handler(deployment.sagemaker.event(name), None) == {"outcome": "TRANSITION"}
        deployment.sagemaker.finish(name, "Completed")
        assert sweeper.handler(shared("eventbridge_scheduled.json"), None)["reconciled"] == 1  # DescribeTrainingJob
        assert sagemaker_events.handler(deployment.sagemaker.event(name), None)["outcome"] != "TRANSITION"
        status, got = api("GET", f"/v1/jobs/{job['id']}")
        assert status == 200 and got["status"] == "COMPLETED"
        assert api("GET", "/v1/jobs")[0] == 200
        assert api("GET", f"/v1/jobs/{job['id']}/events")[0] == 200
        status, logs = api("GET", f"/v1/jobs/{job['id']}/logs")
        assert status == 200 and [line["message"] for line in logs["lines"]] == ["epoch 1 loss 0.5"]
        lines = log_lines(caplog)

    (create,) = deployment.sagemaker.calls("CreateTrainingJob")
    assert create["Environment"]["HF_TOKEN"] == SECRET  # the one place it belongs: the wire request
    assert create["Environment"]["BATCH"] == "32"
    items = _dynamodb_items(moto_endpoint, deployment.table)
    assert any(job["id"] in item for item in items)
    places: dict[str, str | bytes] = {**bodies}
    places |= {f"dynamodb item {n}": item for n, item in enumerate(items)}
    places |= {f"log line {n}": line for n, line in enumerate(lines)}
    out, err = capfd.readouterr()
    places |= {"stdout": out, "stderr": err}
    assert len(bodies) >= 5 and lines
    assert places_holding(SECRET, places) == []


def _cloudwatch_line(endpoint: str, job_name: str, message: str) -> None:
    import boto3

    logs = boto3.client("logs", endpoint_url=endpoint, **FAKE_AWS)
    group, stream = "/aws/sagemaker/TrainingJobs", f"{job_name}/algo-1-1700000000"
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": int(time.time() * 1000), "message": message}])


def _dynamodb_items(endpoint: str, table: str) -> list[str]:
    """Every item of the table as DynamoDB returns it (attribute types and all)."""
    import boto3

    client = boto3.client("dynamodb", endpoint_url=endpoint, **FAKE_AWS)
    items: list[str] = []
    for page in client.get_paginator("scan").paginate(TableName=table):
        items += [json.dumps(item, ensure_ascii=False) for item in page["Items"]]
    return items
