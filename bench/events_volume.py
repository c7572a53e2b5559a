"""Events at volume, as a rate: the same stream of SageMaker EventBridge events through the real
event handler into SQLite (a file on disk, as ``train serve`` keeps it) and into DynamoDB (a table
in moto on 127.0.0.1), one delivery at a time, in one run.

The stream is ``tests/volume/stream.py``'s at a smaller size: 100 jobs x 20 events = 2 000
updates in a seeded shuffle, each delivered once. Printed: updates per second, store writes and
store reads per update for each store, and the SQLite / DynamoDB ratio of the rates. The moto
side measures moto's own cost (it parses every expression in Python, one request at a time), so
the ratio says how much faster the local store is than the local DynamoDB stand-in, not than AWS.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from core import hosts
from core.stores.dynamodb import create_table
from tests.fake_sagemaker import FakeSageMaker
from tests.servers import FAKE_AWS_ENV, dynamodb_client, moto_server
from tests.volume.stream import deliver_all, deliveries, plan, problems, read_back, submit_jobs, wiring_for

JOBS, COPIES, SEED = 100, 1, 7


@dataclass
class Rate:
    updates: int
    seconds: float
    writes: int
    reads: int

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds


@contextmanager
def aws_wiring_env(moto_url: str, sagemaker_url: str) -> Iterator[None]:
    """The ``TRAIN_*`` and AWS variables the AWS functions run with (tests/functions/conftest.py)."""
    values = {
        **FAKE_AWS_ENV, "AWS_MAX_ATTEMPTS": "1", "AWS_ENDPOINT_URL": moto_url,
        "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker_url, "TRAIN_BACKENDS": "sagemaker", "TRAIN_JOB_PREFIX": "train",
        "TRAIN_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/train-sagemaker-job",
        "TRAIN_SAGEMAKER_OUTPUT_URI": "s3://train-artifacts-bench/jobs",
    }
    saved = {name: os.environ.get(name) for name in [*values, "AWS_PROFILE", "AWS_SESSION_TOKEN"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update(values)
    try:
        yield
    finally:
        hosts.set_wiring_for_tests(None)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(store_url: str) -> Rate:
    wiring, counting = wiring_for(store_url)
    plans = [plan(job_id, name, i) for i, (job_id, name) in enumerate(submit_jobs(wiring.service, JOBS))]
    stream = deliveries(plans, copies=COPIES, seed=SEED)
    counting.reset()
    delivered = deliver_all(stream, threads=1)
    wrong = problems(plans, read_back(counting.inner, plans), delivered, counting, copies=COPIES)
    if wrong:
        raise SystemExit(f"{store_url}: final states not exact: {wrong[:3]}")
    return Rate(len(stream), delivered.seconds, counting.writes, counting.reads)


def main() -> None:
    with moto_server() as moto_url, FakeSageMaker() as sagemaker, aws_wiring_env(moto_url, sagemaker.url):
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = run(f"sqlite:///{tmp}/train.db")
        table = f"train-bench-{uuid.uuid4().hex[:8]}"
        create_table(dynamodb_client(moto_url), table)
        dynamodb = run(f"dynamodb://{table}")
    for name, rate in (("SQLite", sqlite), ("DynamoDB (moto)", dynamodb)):
        print(
            f"events into {name}: {rate.updates} updates in {rate.seconds:.1f} s, {rate.per_second:.0f} updates/s,"
            f" {rate.writes / rate.updates:.2f} store writes and {rate.reads / rate.updates:.2f} store reads per update"
        )
    print(f"events SQLite / DynamoDB (moto) updates per second: {sqlite.per_second / dynamodb.per_second:.1f}")


if __name__ == "__main__":
    main()
