"""The GCP functions with their real wiring: ``core.bootstrap.build()`` reads ``TRAIN_*`` as on
Cloud Functions, Firestore is fresh collections in the session's emulator (tests/conftest.py) and
Vertex AI is our fake endpoint (tests/fake_vertex.py) reached by the real ``JobServiceClient``.

The ``gcp`` fixture is imported by the ``test_gcp_*`` modules. The functions run in-process
through ``functions_framework.create_app(...).test_client()`` (``app()``) or as a real
``functions-framework`` process on 127.0.0.1 (``FunctionsFramework``). Trigger payloads are built
from the captured samples in ``../shared/fixtures/events/`` and the ``gcp_*`` variants in ``events/``.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import functions_framework
import pytest

from core import hosts
from core.auth import create_key
from core.stores.firestore import FirestoreJobStore
from tests.fake_vertex import FakeVertex
from tests.firestore_emulator import FIRESTORE, PROJECT
from tests.functions.shapes import shared, variant
from tests.servers import ServerStartError, free_port, wait_until_answers

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "functions" / "gcp" / "main.py"
VERTEX_PROJECT = "my-project"  # the project of the captured log entry
LOCATION = "us-central1"
STAGING = "gs://train-staging-test"
DIGEST_IMAGE = "us-docker.pkg.dev/my-project/acct/pytorch@sha256:" + "cd" * 32
FIRST_VERTEX_JOB = "3000721679224668160"  # the fake's first job id, as in the captured log entry


@dataclass
class GcpDeployment:
    prefix: str
    vertex: FakeVertex
    store: FirestoreJobStore  # our own client on the collections: reads what the functions made durable
    key: str  # an API key of account "acct-a"
    other_key: str  # an API key of account "acct-b"
    env: dict[str, str] = field(default_factory=dict)  # what a functions-framework process needs

    def auth(self, account: str = "acct-a") -> dict[str, str]:
        return {"x-api-key": self.key if account == "acct-a" else self.other_key, "x-selected-account-id": account}


@pytest.fixture
def gcp(monkeypatch: pytest.MonkeyPatch, firestore_emulator_host: str) -> Iterator[GcpDeployment]:
    store = FIRESTORE.new_store()
    key, _ = create_key(store, ["acct-a"])
    other_key, _ = create_key(store, ["acct-b"])
    with FakeVertex(project=VERTEX_PROJECT, location=LOCATION) as vertex:
        env = {
            "FIRESTORE_EMULATOR_HOST": firestore_emulator_host,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "TRAIN_STORE": f"firestore://{store.names.prefix}",
            "TRAIN_BACKENDS": "vertex-ai",
            "TRAIN_JOB_PREFIX": "train",
            "TRAIN_VERTEX_PROJECT": VERTEX_PROJECT,
            "TRAIN_VERTEX_LOCATION": LOCATION,
            "TRAIN_VERTEX_STAGING_BUCKET": STAGING,
            "TRAIN_VERTEX_ENDPOINT": vertex.url,
            "TRAIN_VERTEX_LOGGING_ENDPOINT": vertex.url,
            "TRAIN_VERTEX_STORAGE_ENDPOINT": vertex.url,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        # create_app() records the signature type in the environment; keep it out of later tests.
        monkeypatch.setenv("FUNCTION_SIGNATURE_TYPE", "http")
        hosts.set_wiring_for_tests(None)
        try:
            yield GcpDeployment(store.names.prefix, vertex, store, key, other_key, env)
        finally:
            hosts.set_wiring_for_tests(None)


def app(target: str) -> Any:
    """A Flask test client of one function, loaded from main.py as the framework loads it."""
    return functions_framework.create_app(target, str(SOURCE)).test_client()


class FunctionsFramework:
    """``functions-framework --target <target>`` as a real process on 127.0.0.1, with ``env``."""

    def __init__(self, target: str, env: dict[str, str], timeout: float = 30.0) -> None:
        self.target, self.env, self.timeout = target, env, timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self, attempts: int = 3) -> FunctionsFramework:
        for attempt in range(attempts):
            try:
                return self._start()
            except ServerStartError:
                if attempt == attempts - 1:
                    raise  # else most likely another process took the port between probe and bind
        return self

    def _start(self) -> FunctionsFramework:
        program = Path(sys.executable).with_name("functions-framework")
        self.port = free_port()
        command = [str(program), "--target", self.target, "--source", str(SOURCE),
                   "--host", "127.0.0.1", "--port", str(self.port)]
        self._log = tempfile.TemporaryFile()
        environment = {**os.environ, **self.env, "PYTHONPATH": str(ROOT), "WORKERS": "1", "THREADS": "4"}
        environment.pop("FUNCTION_SIGNATURE_TYPE", None)
        self._process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=self._log,
                                         stderr=subprocess.STDOUT)
        try:
            wait_until_answers(f"{self.url}/robots.txt", self._process, self._log, self.timeout)
        except ServerStartError:
            self.__exit__()
            raise
        return self

    def output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None


# ---- payloads -----------------------------------------------------------------------------------


def spec(name: str = "mnist", **extra: Any) -> dict[str, Any]:
    return {"name": name, "backend": "vertex-ai", "image": DIGEST_IMAGE, "command": ["python", "train.py"], **extra}


def log_entry(job_id: str = FIRST_VERTEX_JOB, *, state: str = "SUCCEEDED", text: str | None = None,
              text_payload: bool = False) -> dict[str, Any]:
    """The captured service log entry of a custom job, for ``job_id`` in ``state``."""
    entry = shared("vertex_custom_job_log_entry_succeeded.json")
    entry["insertId"] = uuid.uuid4().hex[:12]
    entry["resource"]["labels"]["job_id"] = job_id
    entry["labels"]["ml.googleapis.com/job_state"] = state
    entry["logName"] = f"projects/{VERTEX_PROJECT}/logs/ml.googleapis.com%2F{job_id}"
    message = text or f"Job is now {state.lower()}."
    if text_payload:
        del entry["jsonPayload"]
        entry["textPayload"] = message
    else:
        entry["jsonPayload"] = {"message": message}
    return entry


def pubsub_event(data: Any, *, raw: bytes | None = None, event_id: str | None = None) -> dict[str, Any]:
    """The captured log-sink CloudEvent (structured form) carrying ``data`` as its message."""
    event = shared("pubsub_cloudevent_vertex_log_entry.json")
    event["id"] = event_id or str(uuid.uuid4().int)[:17]
    message = event["data"]["message"]
    payload = raw if raw is not None else json.dumps(data).encode()
    message["data"] = base64.b64encode(payload).decode()
    message["messageId"] = message["message_id"] = event["id"]
    return event


def binary_mode(event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """Headers and body of ``event`` in CloudEvents binary mode, as Eventarc delivers it."""
    headers = {f"ce-{k}": str(v) for k, v in event.items() if k not in ("data", "datacontenttype")}
    headers["Content-Type"] = str(event.get("datacontenttype", "application/json"))
    return headers, json.dumps(event["data"]).encode()


def structured_mode(event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/cloudevents+json"}, json.dumps(event).encode()


def gcp_variant(name: str) -> Any:
    return copy.deepcopy(variant(name))
