"""Cold-start cost of ``functions/gcp/main.py``, as a ratio to ``import google.cloud.firestore`` alone.

Two figures, each measured in fresh interpreters: ``import`` is what a Cloud Functions instance
pays to load the module as functions-framework loads it (by file path; the framework itself,
Flask included, comes with it, but no Google client: they load on first use); ``import + wiring``
adds the first invocation's set-up: ``build()`` with the deployment's settings (the Firestore
client, the Vertex AI backend; nothing is called) and the route table. The baseline and the two
cases take turns round after round, so drift on a shared machine hits every side alike, and the
median of the rounds is reported.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "functions" / "gcp" / "main.py"
BASELINE = "import google.cloud.firestore"
ROUNDS = 7
# The deployment's settings (infra/gcp), with dummy values: clients are built, never called.
SETTINGS = {
    "TRAIN_STORE": "firestore://train_",
    "TRAIN_BACKENDS": "vertex-ai",
    "TRAIN_JOB_PREFIX": "train",
    "TRAIN_VERTEX_PROJECT": "bench-project",
    "TRAIN_VERTEX_LOCATION": "us-central1",
    "TRAIN_VERTEX_STAGING_BUCKET": "gs://bench-staging",
    "GOOGLE_CLOUD_PROJECT": "bench-project",
    "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",  # no credentials lookup; nothing connects
}
LOAD = (
    "import importlib.util, sys\n"
    f"spec = importlib.util.spec_from_file_location('main', {str(SOURCE)!r})\n"
    "main = importlib.util.module_from_spec(spec)\n"
    f"sys.path.append({str(SOURCE.parent)!r})\n"
    "sys.modules['main'] = main\n"
    "spec.loader.exec_module(main)\n"
)
WIRING = "from core import hosts\nfrom core.api import create_app\nw = hosts.wiring()\ncreate_app(w.service, w.keys)\n"


def seconds(body: str) -> float:
    """Seconds ``body`` takes in a fresh interpreter; interpreter start-up is not counted."""
    code = f"import time\nstart = time.perf_counter()\n{body}\nprint(time.perf_counter() - start)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, **SETTINGS},
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(rounds: int = ROUNDS) -> dict[str, float]:
    cases = {"baseline": BASELINE, "import": LOAD, "import + wiring": LOAD + WIRING}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, body in cases.items():
            samples[name].append(seconds(body))
    return {name: statistics.median(times) for name, times in samples.items()}


def main() -> None:
    medians = measure()
    base = medians["baseline"]
    print(f"{BASELINE} alone: {base * 1000:.0f} ms (median of {ROUNDS} fresh interpreters)")
    alone, wired = medians["import"], medians["import + wiring"]
    print(
        f"functions/gcp/main.py: import {alone * 1000:.0f} ms, ratio to {BASELINE} {alone / base:.2f}; "
        f"import + wiring {wired * 1000:.0f} ms, ratio {wired / base:.2f}"
    )


if __name__ == "__main__":
    main()
