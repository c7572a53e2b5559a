"""The AWS functions with their real wiring: ``core.bootstrap.build()`` reads ``TRAIN_*`` as on
Lambda, DynamoDB is a fresh table in the session's moto_server, SageMaker is our fake endpoint
(tests/fake_sagemaker.py), and boto3 finds both through its own endpoint variables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from core import hosts
from core.auth import create_key
from core.stores.dynamodb import DynamoDBJobStore, create_table
from tests.fake_sagemaker import FakeSageMaker
from tests.servers import FAKE_AWS_ENV, dynamodb_client

ROLE = "arn:aws:iam::123456789012:role/train-sagemaker-job"
OUTPUT = "s3://train-artifacts-test/jobs"


@dataclass
class Deployment:
    table: str
    sagemaker: FakeSageMaker
    store: DynamoDBJobStore  # our own client on the table: reads what the functions made durable
    key: str  # an API key of account "acct-a"
    other_key: str  # an API key of account "acct-b"


@pytest.fixture(autouse=True)
def fresh_container() -> Iterator[None]:
    """Each test starts as a cold container: no wiring until the first invocation."""
    hosts.set_wiring_for_tests(None)
    yield
    hosts.set_wiring_for_tests(None)


@pytest.fixture
def deployment(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> Iterator[Deployment]:
    client = dynamodb_client(moto_endpoint)
    table = f"train-{uuid.uuid4().hex[:12]}"
    create_table(client, table)
    store = DynamoDBJobStore(table, client=client)
    key, _ = create_key(store, ["acct-a"])
    other_key, _ = create_key(store, ["acct-b"])
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("TRAIN_STORE", f"dynamodb://{table}")
    monkeypatch.setenv("TRAIN_BACKENDS", "sagemaker")
    monkeypatch.setenv("TRAIN_JOB_PREFIX", "train")
    monkeypatch.setenv("TRAIN_SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.setenv("TRAIN_SAGEMAKER_OUTPUT_URI", OUTPUT)
    with FakeSageMaker() as sagemaker:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", sagemaker.url)
        yield Deployment(table, sagemaker, store, key, other_key)
