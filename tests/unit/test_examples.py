from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli_spec import load_spec_file, read_submission
from core.model import BACKENDS, JobSpec, NativeJobRequest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HELLO = EXAMPLES / "hello"
SPECS = [*sorted(EXAMPLES.glob("*.yaml")), HELLO / "spec.yaml"]
NATIVE = sorted((EXAMPLES / "native").glob("*.json"))


def test_there_is_one_portable_and_one_native_example_per_cloud_backend() -> None:
    clouds = {b for b in BACKENDS if b != "local"}
    assert {JobSpec.model_validate(read_submission(p)[1]).backend for p in SPECS} == clouds | {"local"}
    assert {p.stem for p in NATIVE} == clouds


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_portable_examples_validate(path: Path) -> None:
    backend, body = read_submission(path)
    assert backend is None
    spec = JobSpec.model_validate(body)
    assert spec.name == load_spec_file(path)["name"]
    assert spec.max_runtime is not None and spec.checkpointing.enabled


@pytest.mark.parametrize("path", NATIVE, ids=lambda p: p.name)
def test_native_examples_validate(path: Path) -> None:
    backend, body = read_submission(path, backend=path.stem)
    assert backend == path.stem
    request = NativeJobRequest.model_validate(body)
    assert request.job_config and request.storage_mounts


def test_vertex_native_example_has_the_sgp_shape() -> None:
    config = json.loads((EXAMPLES / "native" / "vertex-ai.json").read_text())["job_config"]
    pool = config["worker_pool_specs"][0]
    assert set(pool["machine_spec"]) == {"machine_type", "accelerator_type", "accelerator_count"}
    assert set(pool["container_spec"]) == {"image_uri", "command", "args"}
    assert pool["replica_count"] == 1 and config["scheduling"]["timeout"].endswith("s")


def test_hello_spec_points_at_its_data_and_script() -> None:
    spec = JobSpec.model_validate(read_submission(HELLO / "spec.yaml")[1])
    assert spec.backend == "local" and spec.command == ["python3", "train.py"]
    assert spec.storage_mounts[0].read_only
    assert Path(spec.storage_mounts[0].source_uri, "train.csv").is_file()
    assert Path(spec.backend_options["working_dir"], "train.py").is_file()
    rows = (HELLO / "data" / "train.csv").read_text().splitlines()
    assert rows[0] == "x,y" and len(rows) == 201


def run_hello(*args: str, checkpoint_dir: Path, load_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAIN_", "STORAGE_MOUNT_"))}
    env |= {"STORAGE_MOUNT_0_PATH": str(HELLO / "data"), "TRAIN_CHECKPOINT_DIR": str(checkpoint_dir),
            "TRAIN_JOB_ID": "test", "TRAIN_ATTEMPT": "1"}
    if load_dir is not None:
        env["TRAIN_LOAD_CHECKPOINT_DIR"] = str(load_dir)
    return subprocess.run(
        [sys.executable, str(HELLO / "train.py"), "--sleep", "0", *args],
        env=env, cwd=HELLO, capture_output=True, text=True, timeout=60,
    )


def losses(stdout: str) -> list[float]:
    return [float(line.split("loss=")[1].split()[0]) for line in stdout.splitlines() if line.startswith("epoch ")]


def test_hello_trains_checkpoints_and_resumes(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    first = run_hello("--epochs", "3", checkpoint_dir=ckpt)
    assert first.returncode == 0, first.stderr
    assert "epoch 3/3" in first.stdout and "resumed" not in first.stdout
    assert sorted(p.name for p in ckpt.iterdir()) == ["epoch-0001.json", "epoch-0002.json", "epoch-0003.json"]
    state = json.loads((ckpt / "epoch-0003.json").read_text())
    assert state["epoch"] == 3 and abs(state["w"] - 3.0) < 0.3 and abs(state["b"] - 0.5) < 0.2
    assert losses(first.stdout) == sorted(losses(first.stdout), reverse=True)

    second = run_hello("--epochs", "5", checkpoint_dir=ckpt)
    assert second.returncode == 0, second.stderr
    assert "resumed from epoch 3" in second.stdout
    assert [line.split()[1] for line in second.stdout.splitlines() if line.startswith("epoch ")] == ["4/5", "5/5"]


def test_hello_fails_on_demand_then_resumes_from_an_earlier_jobs_checkpoints(tmp_path: Path) -> None:
    failed = run_hello("--epochs", "4", "--fail-at-epoch", "3", checkpoint_dir=tmp_path / "a")
    assert failed.returncode == 1
    assert "failing at epoch 3" in failed.stderr
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["epoch-0001.json", "epoch-0002.json"]

    resumed = run_hello("--epochs", "4", checkpoint_dir=tmp_path / "b", load_dir=tmp_path / "a")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from epoch 2" in resumed.stdout and "epoch 4/4" in resumed.stdout
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["epoch-0003.json", "epoch-0004.json"]


def test_hello_stops_promptly_on_sigterm_keeping_its_checkpoint(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAIN_", "STORAGE_MOUNT_"))}
    env |= {"STORAGE_MOUNT_0_PATH": str(HELLO / "data"), "TRAIN_CHECKPOINT_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, str(HELLO / "train.py"), "--sleep", "30"], env=env, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("epoch 1/"):
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 143
        assert "stopping before epoch 2" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-0001.json"]
