"""Cold-start cost of the Azure function app, as a ratio to ``import azure.functions`` alone.

Two figures, each measured in fresh interpreters: ``import`` is what the Python worker pays to
index ``functions/azure/function_app.py`` (the app imports no SDK and builds nothing at import
time); ``import + wiring`` adds the first HTTP invocation, ``GET /health`` through
``core.azure_host``: ``build()`` with the Azure settings (SQLite here; the Azure ML backend, whose
``azure.ai.ml`` import waits for the first call that needs Azure ML), the route table and the
request itself. No network is used. The app and the
baseline take turns round after round, so drift on a shared machine hits every side alike, and the
median of the rounds is reported.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "azure.functions"
MODULE = "functions.azure.function_app"
ROUNDS = 7


def settings(data_dir: str) -> dict[str, str]:
    """The deployment's settings (infra/azure), with dummy values: nothing is called."""
    return {
        "TRAIN_STORE": f"sqlite:///{data_dir}/train.db",
        "TRAIN_DATA_DIR": data_dir,
        "TRAIN_BACKENDS": "azure-ml",
        "TRAIN_JOB_PREFIX": "train",
        "TRAIN_AZUREML_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
        "TRAIN_AZUREML_RESOURCE_GROUP": "train-bench",
        "TRAIN_AZUREML_WORKSPACE": "train-bench",
    }


def seconds(module: str, data_dir: str, *, wiring: bool = False) -> float:
    """Seconds ``import module`` (and with ``wiring``, the first invocation's set-up) takes in a
    fresh interpreter; interpreter start-up is not counted."""
    lines = ["import time", "start = time.perf_counter()", f"import {module}"]
    if wiring:
        lines += ["from core import azure_host", "azure_host.api('GET', 'https://bench.invalid/health', {}, b'')"]
    lines.append("print(time.perf_counter() - start)")
    out = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, **settings(data_dir)},
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(rounds: int = ROUNDS) -> dict[tuple[str, bool], float]:
    """Median seconds per (module, with wiring), the baseline as ``(BASELINE, False)``."""
    cases = [(BASELINE, False), (MODULE, False), (MODULE, True)]
    samples: dict[tuple[str, bool], list[float]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory(prefix="train-bench-azure-") as data_dir:
        for _ in range(rounds):
            for (name, wiring), times in samples.items():
                times.append(seconds(name, data_dir, wiring=wiring))
    return {case: statistics.median(times) for case, times in samples.items()}


def main() -> None:
    medians = measure()
    base = medians[(BASELINE, False)]
    alone, wired = medians[(MODULE, False)], medians[(MODULE, True)]
    print(f"import {BASELINE} alone: {base * 1000:.0f} ms (median of {ROUNDS} fresh interpreters)")
    print(
        f"{MODULE}: import {alone * 1000:.0f} ms, ratio to import {BASELINE} {alone / base:.2f}; "
        f"import + wiring {wired * 1000:.0f} ms, ratio {wired / base:.2f}"
    )


if __name__ == "__main__":
    main()
