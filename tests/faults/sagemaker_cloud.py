"""The fault scenarios against the real ``SageMakerBackend`` and boto3 client, talking HTTP to our
SageMaker fake (``tests/fake_sagemaker.py``) on 127.0.0.1, with the faults on the wire.

``LossyFakeSageMaker`` records each SageMaker operation in the run's ``Trace`` and, when the trace's
fault names it, answers as a failing SageMaker would:

    throttle       400 ThrottlingException, nothing done
    5xx            500 InternalFailure, nothing done
    refused        400 ValidationException, nothing done (CreateTrainingJob only)
    lost-response  the operation is done, then the connection is closed with no answer
    timeout        the operation is done, then no answer within the client's read timeout

The client makes one attempt per call (botocore's own retries off), so every fault reaches the
service; ``SageMakerCloud`` is the platform side the scenarios drive (``tests/faults/cloud.py``).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

from core.backends.sagemaker import SageMakerBackend
from core.backends.sagemaker_map import from_sagemaker_event, from_sagemaker_job
from core.lifecycle import NativeUpdate, Status
from tests.fake_sagemaker import Failure, FakeSageMaker
from tests.fakes import FakeClock
from tests.faults.cloud import FAILED, QUEUED, RUNNING, STOPPED, SUCCEEDED, Cloud
from tests.faults.faulty import Trace
from tests.faults.matrix import MakeCloud
from tests.servers import FAKE_AWS

PREFIX = "train"
ROLE = "arn:aws:iam::123456789012:role/train-sagemaker-job"
OUTPUT = "s3://train-artifacts-test/jobs"
READ_TIMEOUT = 0.2  # seconds; a "timeout" answer comes after twice this
WIRE_KINDS: dict[str, tuple[str, ...]] = {
    "CreateTrainingJob": ("throttle", "5xx", "refused", "lost-response", "timeout"),
    "StopTrainingJob": ("throttle", "5xx", "lost-response", "timeout"),
    "DescribeTrainingJob": ("throttle", "5xx", "timeout"),
}
_FAILURES = {
    "throttle": Failure(400, "ThrottlingException", "Rate exceeded"),
    "5xx": Failure(500, "InternalFailure", "We encountered an internal error. Please try again."),
    "refused": Failure(400, "ValidationException", "The request was rejected (injected)."),
}
_AFTER = ("lost-response", "timeout")


class LossyFakeSageMaker(FakeSageMaker):
    def __init__(self) -> None:
        super().__init__()
        self.trace = Trace()
        self.accepted: Counter[str] = Counter()  # CreateTrainingJob calls that made a job, per name
        self._unanswered: set[int] = set()  # threads whose current request gets no answer
        self._stall: set[int] = set()

    def reset(self, trace: Trace) -> None:
        with self._lock:
            self.trace, self.jobs, self.requests = trace, {}, []
            self.accepted.clear()
            self._failures.clear()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(_LossyHandler):
            owner = fake

        return Handler

    def handle(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        kind = self.trace.enter("backend", operation) if operation in WIRE_KINDS else None
        if kind in _FAILURES:
            failure = _FAILURES[kind or ""]
            return failure.status, {"__type": failure.code, "message": failure.message}
        result = super().handle(operation, body)
        if kind in _AFTER:
            (self._stall if kind == "timeout" else self._unanswered).add(threading.get_ident())
        return result

    def _CreateTrainingJob(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, answer = super()._CreateTrainingJob(body)
        if status == 200:
            self.accepted[body["TrainingJobName"]] += 1
        return status, answer

    def unanswered(self) -> str | None:
        """"drop" or "stall" when this thread's request is to get no answer."""
        me = threading.get_ident()
        with self._lock:
            for mode, threads in (("drop", self._unanswered), ("stall", self._stall)):
                if me in threads:
                    threads.discard(me)
                    return mode
        return None


class _LossyHandler(BaseHTTPRequestHandler):
    owner: LossyFakeSageMaker
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: without this, Nagle and the client's delayed ACK
        # hold every answer back ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        _, _, operation = self.headers.get("X-Amz-Target", "").partition(".")
        status, answer = self.owner.handle(operation, json.loads(raw or b"{}"))
        mode = self.owner.unanswered()
        if mode is not None:
            if mode == "stall":
                time.sleep(READ_TIMEOUT * 2)
            self.close_connection = True
            return
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Session:
    """A boto3 session whose clients reach the fake, make ``attempts`` tries per call (botocore's
    standard retries) and wait ``READ_TIMEOUT`` for each answer."""

    def __init__(self, endpoint: str, attempts: int) -> None:
        import boto3

        self._session = boto3.session.Session(**FAKE_AWS)
        self._endpoint = endpoint
        self._attempts = attempts

    def client(self, service: str, region_name: str | None = None, config: Any = None) -> Any:
        from botocore.config import Config

        ours = Config(read_timeout=READ_TIMEOUT, connect_timeout=1,
                      retries={"mode": "standard", "total_max_attempts": self._attempts})
        return self._session.client(service, region_name=region_name, endpoint_url=self._endpoint,
                                    config=config.merge(ours) if config is not None else ours)


def sagemaker_backend(fake: LossyFakeSageMaker, *, attempts: int = 1) -> SageMakerBackend:
    return SageMakerBackend(role_arn=ROLE, output_s3_uri=OUTPUT, job_prefix=PREFIX, region="us-east-1",
                            session_factory=lambda: _Session(fake.url, attempts))


class SageMakerCloud:
    """``Cloud`` over the fake: the platform's side of the scenarios. A stop the platform was asked
    for finishes (Stopping, then Stopped) the next time the platform is looked at."""

    name = "sagemaker"

    def __init__(self, fake: LossyFakeSageMaker) -> None:
        self.fake = fake

    def settle(self) -> None:
        for name, job in list(self.fake.jobs.items()):
            if job["TrainingJobStatus"] == "Stopping":
                self.fake.finish(name, "Stopped")

    def _names(self, job_id: str) -> dict[int, str]:
        head = f"{PREFIX}-{job_id}-"
        return {int(n.removeprefix(head)): n for n in self.fake.jobs if n.startswith(head)}

    def latest(self, job_id: str) -> tuple[int, str] | None:
        self.settle()
        names = self._names(job_id)
        return (max(names), names[max(names)]) if names else None

    def state(self, native_id: str) -> str:
        status = from_sagemaker_job(self.fake.jobs[native_id]).status
        return {Status.PENDING: QUEUED, Status.IN_PROGRESS: RUNNING, Status.COMPLETED: SUCCEEDED,
                Status.FAILED: FAILED}.get(status or Status.CANCELED, STOPPED)

    def move(self, native_id: str, state: str) -> None:
        if state == RUNNING:
            self.fake.advance(native_id, "InProgress", "Training")
        elif state == FAILED:
            self.fake.finish(native_id, "Failed", failure_reason="AlgorithmError: exit code 1")
        else:
            self.fake.finish(native_id, {SUCCEEDED: "Completed", STOPPED: "Stopped"}[state])

    def update(self, native_id: str, attempt: int, *, preempted: bool = False) -> NativeUpdate:
        parsed = from_sagemaker_event(self.fake.event(native_id), PREFIX)
        if parsed is None:
            raise AssertionError(f"the fake's event for {native_id} does not parse")
        return parsed[1]

    def throttle_next_create(self) -> None:
        self.fake.fail("CreateTrainingJob", code="ThrottlingException")

    def preempt(self, native_id: str) -> None:
        raise NotImplementedError("the SageMaker scenarios have no preemption")

    def natives(self, job_id: str) -> dict[int, Status | None]:
        """A job being stopped counts as stopped: the platform was asked, and it is on its way."""
        out: dict[int, Status | None] = {}
        for attempt, name in self._names(job_id).items():
            job = self.fake.jobs[name]
            out[attempt] = Status.CANCELED if job["TrainingJobStatus"] == "Stopping" else from_sagemaker_job(job).status
        return out

    def creates_per_attempt(self) -> Counter[tuple[str, int]]:
        out: Counter[tuple[str, int]] = Counter()
        for name, n in self.fake.accepted.items():
            job_id, _, attempt = name.removeprefix(f"{PREFIX}-").rpartition("-")
            out[(job_id, int(attempt))] += n
        return out


def sagemaker_cloud(fake: LossyFakeSageMaker, backend: SageMakerBackend) -> MakeCloud:
    """Each world gets the fake emptied, with its trace; the backend (and its client) is shared."""

    def make(clock: FakeClock, trace: Trace) -> tuple[Cloud, Any]:
        fake.reset(trace)
        return SageMakerCloud(fake), backend

    return make
