"""A small fake SageMaker endpoint for tests: the real boto3 client talks to it over HTTP.

It speaks SageMaker's JSON 1.1 protocol (``X-Amz-Target: SageMaker.<Operation>``) for
CreateTrainingJob, DescribeTrainingJob and StopTrainingJob, keeps jobs in memory, and lets a test
script each job's progression (moto's SageMaker completes jobs at once, has no StopTrainingJob and
accepts duplicate names). Every request body is recorded: botocore has already validated it
against the service model before sending, so it is the real wire request.

    with FakeSageMaker() as fake:                       # listens on 127.0.0.1, a free port
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = fake.url
        ...
        fake.advance(name, "InProgress", "Training")
        fake.finish(name, "Completed")
        fake.fail("CreateTrainingJob", code="ThrottlingException")   # the next call fails once
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import Loopback

ACCOUNT = "123456789012"
REGION = "us-east-1"
TERMINAL = ("Completed", "Failed", "Stopped")


@dataclass
class Failure:
    status: int
    code: str
    message: str


class FakeSageMaker:
    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._failures: dict[str, list[Failure]] = {}
        self._lock = threading.Lock()
        self._http = Loopback("fake-sagemaker")
        self._last = 0.0

    # ---- lifecycle ----------------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, bound to this fake."""
        fake = self

        class Handler(_Handler):
            owner = fake

        return Handler

    def start(self) -> str:
        self._http.start(self.handler())
        return self.url

    def stop(self) -> None:
        self._http.stop()

    @property
    def url(self) -> str:
        return self._http.url

    def __enter__(self) -> FakeSageMaker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- scripting ----------------------------------------------------------------------------

    def advance(
        self, name: str, status: str, secondary: str | None = None, *, failure_reason: str | None = None
    ) -> None:
        """Move job ``name`` to ``status``/``secondary`` now (LastModifiedTime strictly increases)."""
        with self._lock:
            job = self.jobs[name]
            now = self._tick()
            job["TrainingJobStatus"] = status
            job["SecondaryStatus"] = secondary or status
            job["LastModifiedTime"] = now
            if failure_reason:
                job["FailureReason"] = failure_reason
            if secondary == "Training" and "TrainingStartTime" not in job:
                job["TrainingStartTime"] = now
            if status in TERMINAL:
                job["TrainingEndTime"] = now
            job["SecondaryStatusTransitions"].append({"Status": secondary or status, "StartTime": now})

    def finish(self, name: str, status: str = "Completed", secondary: str | None = None,
               *, failure_reason: str | None = None) -> None:
        self.advance(name, status, secondary or status, failure_reason=failure_reason)

    def fail(self, operation: str, *, status: int = 400, code: str = "ThrottlingException",
             message: str = "Rate exceeded", times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` fail with this error."""
        with self._lock:
            self._failures.setdefault(operation, []).extend([Failure(status, code, message)] * times)

    def calls(self, operation: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for op, body in self.requests if op == operation]

    def event(self, name: str) -> dict[str, Any]:
        """The EventBridge "SageMaker Training Job State Change" event of the job's current state,
        shaped like the published sample (times as epoch-millisecond strings)."""
        with self._lock:
            job = dict(self.jobs[name])
        detail = {k: v for k, v in job.items() if k != "ModelArtifacts"}
        for key in ("CreationTime", "LastModifiedTime", "TrainingStartTime", "TrainingEndTime"):
            if key in detail:
                detail[key] = str(int(detail[key] * 1000))
        detail["SecondaryStatusTransitions"] = []
        return {
            "version": "0", "id": str(uuid.uuid4()), "detail-type": "SageMaker Training Job State Change",
            "source": "aws.sagemaker", "account": ACCOUNT,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job["LastModifiedTime"])),
            "region": REGION, "resources": [job["TrainingJobArn"]], "detail": detail,
        }

    def _tick(self) -> float:
        now = max(time.time(), self._last + 0.001)
        self._last = now
        return now

    # ---- operations ---------------------------------------------------------------------------

    def handle(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append((operation, body))
            queued = self._failures.get(operation)
            if queued:
                failure = queued.pop(0)
                return failure.status, {"__type": failure.code, "message": failure.message}
            method = getattr(self, "_" + operation, None)
            if method is None:
                return 400, {"__type": "UnknownOperationException", "message": f"{operation} is not faked"}
            result: tuple[int, dict[str, Any]] = method(body)
            return result

    def _CreateTrainingJob(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body["TrainingJobName"]
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name.lower()}"
        if name in self.jobs:
            message = f"Training job names must be unique within an AWS account and region, and a training job with this name already exists ({arn})"  # noqa: E501
            return 400, {"__type": "ResourceInUse", "message": message}
        now = self._tick()
        output = body["OutputDataConfig"]["S3OutputPath"]
        self.jobs[name] = {
            **{k: v for k, v in body.items() if k not in ("Tags",)},
            "TrainingJobArn": arn, "TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting",
            "CreationTime": now, "LastModifiedTime": now,
            "ModelArtifacts": {"S3ModelArtifacts": f"{output}/{name}/output/model.tar.gz"},
            "SecondaryStatusTransitions": [{"Status": "Starting", "StartTime": now}],
        }
        return 200, {"TrainingJobArn": arn}

    def _DescribeTrainingJob(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        job = self.jobs.get(body["TrainingJobName"])
        if job is None:
            return 400, {"__type": "ValidationException", "message": "Requested resource not found."}
        return 200, dict(job)

    def _StopTrainingJob(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        job = self.jobs.get(body["TrainingJobName"])
        if job is None:
            return 400, {"__type": "ValidationException", "message": "Requested resource not found."}
        if job["TrainingJobStatus"] != "InProgress":
            message = f"The request was rejected because the training job is in status {job['TrainingJobStatus']}."
            return 400, {"__type": "ValidationException", "message": message}
        now = self._tick()
        job.update(TrainingJobStatus="Stopping", SecondaryStatus="Stopping", LastModifiedTime=now)
        job["SecondaryStatusTransitions"].append({"Status": "Stopping", "StartTime": now})
        return 200, {}


class _Handler(BaseHTTPRequestHandler):
    owner: FakeSageMaker
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        target = self.headers.get("X-Amz-Target", "")
        service, _, operation = target.partition(".")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if service != "SageMaker" or not isinstance(body, dict):
            status, answer = 400, {"__type": "SerializationException", "message": "not a SageMaker JSON request"}
        else:
            status, answer = self.owner.handle(operation, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return
