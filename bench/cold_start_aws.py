"""Cold-start cost of each AWS function module, as a ratio to ``import boto3`` alone.

Two figures per module, each measured in fresh interpreters: ``import`` is what Lambda's init
phase pays for the module itself (the functions import no SDK and build nothing at import time);
``import + wiring`` adds what the first invocation pays before doing any work: ``build()`` with
the AWS settings (boto3 and its DynamoDB client, the SageMaker backend) and, for the HTTP
function, the route table. No network is used: clients are created, not called. The modules and
the boto3 baseline take turns round after round, so drift on a shared machine hits every side
alike, and the median of the rounds is reported.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "boto3"
MODULES = ("functions.aws.http", "functions.aws.sagemaker_events", "functions.aws.sweeper")
ROUNDS = 7
# The deployment's settings (serverless.yml), with dummy values: nothing is called.
SETTINGS = {
    "TRAIN_STORE": "dynamodb://train-bench",
    "TRAIN_BACKENDS": "sagemaker",
    "TRAIN_JOB_PREFIX": "train",
    "TRAIN_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/train-sagemaker-job",
    "TRAIN_SAGEMAKER_OUTPUT_URI": "s3://train-bench/jobs",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def seconds(module: str, *, wiring: bool = False) -> float:
    """Seconds ``import module`` (and with ``wiring``, the first invocation's set-up) takes in a
    fresh interpreter; interpreter start-up is not counted."""
    lines = ["import time", "start = time.perf_counter()", f"import {module}"]
    if wiring:
        lines += ["from core import hosts", "hosts.wiring()"]
        if module.endswith(".http"):
            lines.append("hosts.http_app()")
    lines.append("print(time.perf_counter() - start)")
    out = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, **SETTINGS},
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(rounds: int = ROUNDS) -> dict[tuple[str, bool], float]:
    """Median seconds per (module, with wiring), the boto3 baseline as ``(BASELINE, False)``."""
    cases = [(BASELINE, False)] + [(module, wiring) for module in MODULES for wiring in (False, True)]
    samples: dict[tuple[str, bool], list[float]] = {case: [] for case in cases}
    for _ in range(rounds):
        for (name, wiring), times in samples.items():
            times.append(seconds(name, wiring=wiring))
    return {case: statistics.median(times) for case, times in samples.items()}


def main() -> None:
    medians = measure()
    base = medians[(BASELINE, False)]
    print(f"import {BASELINE} alone: {base * 1000:.0f} ms (median of {ROUNDS} fresh interpreters)")
    for module in MODULES:
        alone, wired = medians[(module, False)], medians[(module, True)]
        print(
            f"{module}: import {alone * 1000:.0f} ms, ratio to import {BASELINE} {alone / base:.2f}; "
            f"import + wiring {wired * 1000:.0f} ms, ratio {wired / base:.2f}"
        )


if __name__ == "__main__":
    main()
