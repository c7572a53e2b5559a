"""The local backend's pure mapping (native process states → Train statuses) and its refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.backends.local import LocalBackend
from core.backends.local_state import (
    from_local_exit,
    from_local_state,
    identity_env,
    inherited_env,
    mount_local_path,
)
from core.errors import InvalidSpecError
from core.lifecycle import Status
from core.model import JobSpec, NativeJobRequest

ENDED = "2026-01-02T03:04:05.000006Z"
T = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    ("exit_info", "native", "status", "reason"),
    [
        ({"exit_code": 0, "signal": None, "stop_cause": None}, "Succeeded", Status.COMPLETED, None),
        ({"exit_code": 3, "signal": None, "stop_cause": None}, "Failed", Status.FAILED, "exit code 3"),
        ({"exit_code": None, "signal": 9, "stop_cause": None}, "Failed", Status.FAILED, "killed by signal 9"),
        ({"exit_code": None, "signal": 15, "stop_cause": "Canceled"}, "Stopped", Status.CANCELED, "canceled"),
        ({"exit_code": 0, "signal": None, "stop_cause": "Canceled"}, "Stopped", Status.CANCELED, "canceled"),
        ({"exit_code": None, "signal": 9, "stop_cause": "MaxRuntimeExceeded"}, "Stopped", Status.EXPIRED,
         "max_runtime exceeded"),
        ({"exit_code": 127, "signal": None, "stop_cause": None, "error": "could not start 'nope'"}, "Failed",
         Status.FAILED, "could not start 'nope'"),
        ({"exit_code": None, "signal": None, "stop_cause": None, "lost": True}, "Lost", Status.FAILED,
         "the process was lost while the server was down"),
        ({"exit_code": None, "signal": None, "stop_cause": "Rebooted"}, "Stopped", None, "stopped: Rebooted"),
    ],
)
def test_exit_maps_to_final_update(exit_info: dict[str, object], native: str, status: Status | None,
                                   reason: str | None) -> None:
    update = from_local_exit({**exit_info, "ended_at": ENDED}, attempt=2)
    assert (update.native_status, update.status, update.reason) == (native, status, reason)
    assert update.event_time == T
    assert update.attempt == 2


@pytest.mark.parametrize(
    ("native", "status"),
    [
        ("Starting", Status.PENDING),
        ("Running", Status.IN_PROGRESS),
        ("Succeeded", Status.COMPLETED),
        ("Failed", Status.FAILED),
        ("Lost", Status.FAILED),
        ("Sleeping", None),
    ],
)
def test_states_map_through_one_table(native: str, status: Status | None) -> None:
    update = from_local_state(native, T, attempt=1)
    assert update.status == status
    assert update.event_time == T


def test_lost_explains_itself() -> None:
    assert from_local_state("Lost", T).reason == "the process was lost while the server was down"


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:///data/mnist", "/data/mnist"),
        ("file:///data/with%20space", "/data/with space"),
        ("/srv/data", "/srv/data"),
        ("s3://bucket/data", None),
        ("gs://bucket/data", None),
    ],
)
def test_mount_local_path(uri: str, path: str | None) -> None:
    assert mount_local_path(uri) == path


def test_identity_env_is_one_node_here() -> None:
    env = identity_env(job_id="j1", name="mnist", project="p", attempt=2, gpus_per_node=0, mount_paths=["/a", "/b"])
    assert env == {
        "STORAGE_MOUNT_0_PATH": "/a", "STORAGE_MOUNT_1_PATH": "/b", "TRAIN_JOB_ID": "j1", "TRAIN_JOB_NAME": "mnist",
        "TRAIN_PROJECT": "p", "TRAIN_ATTEMPT": "2", "TRAIN_NUM_NODES": "1", "TRAIN_NODE_RANK": "0",
        "TRAIN_LEADER_ADDR": "127.0.0.1", "TRAIN_GPUS_PER_NODE": "0",
    }


def test_server_configuration_does_not_leak_into_jobs() -> None:
    env = inherited_env({"PATH": "/bin", "TRAIN_API_KEY": "k", "STORAGE_MOUNT_0_PATH": "/x", "HOME": "/root"})
    assert env == {"PATH": "/bin", "HOME": "/root"}


# ---- refusals -------------------------------------------------------------------------------


def _spec(**fields: object) -> JobSpec:
    return JobSpec.model_validate({"name": "j", "backend": "local", "command": ["true"], **fields})


def _fields(exc: pytest.ExceptionInfo[InvalidSpecError]) -> set[str]:
    return {e.field for e in exc.value.errors}


def test_check_spec_names_every_bad_field(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path, gpus=1)
    spec = _spec(
        compute={"accelerator": "H100", "accelerators_per_node": 2, "nodes": 2},
        spot={"enabled": True},
        notify={"url": "https://example.com/hook"},
        retries={"on_preemption": 1},
        storage_mounts=[
            {"source_uri": "s3://bucket/data"},
            {"source_uri": str(tmp_path / "missing")},
            {"source_uri": f"file://{tmp_path}"},
        ],
        env={"TOKEN": {"secret": "absent"}, "PLAIN": "x", "ESCAPE": {"secret": "../../etc/passwd"}},
        backend_options={"image_pull": True, "stop_grace_seconds": 7200, "working_dir": "relative"},
    )
    with pytest.raises(InvalidSpecError) as exc:
        backend.check_spec(spec)
    assert exc.value.status == 422
    assert _fields(exc) == {
        "compute.nodes", "compute.accelerators_per_node", "spot.enabled",
        "storage_mounts[0].source_uri", "storage_mounts[1].source_uri", "env.TOKEN", "env.ESCAPE",
        "backend_options.image_pull", "backend_options.stop_grace_seconds", "backend_options.working_dir",
    }


def test_check_spec_accepts_what_runs_here(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hf").write_text("v")
    backend = LocalBackend(tmp_path, gpus=0)
    backend.check_spec(_spec(
        storage_mounts=[{"source_uri": str(tmp_path), "read_only": True}],
        env={"HF": {"secret": "hf"}}, max_runtime="1h",
        backend_options={"working_dir": str(tmp_path), "stop_grace_seconds": 1.5},
    ))


def test_gpu_request_beyond_this_machine_names_the_accelerator(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpecError) as exc:
        LocalBackend(tmp_path, gpus=0).check_spec(_spec(compute={"accelerator": "T4"}))
    assert _fields(exc) == {"compute.accelerator"}


def test_check_native_validates_job_config(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path, gpus=0)
    backend.check_native(NativeJobRequest(name="n", job_config={
        "command": ["python", "-c", "pass"], "args": ["x"], "env": {"A": "1"}, "working_dir": str(tmp_path),
        "max_runtime": "90m",
    }))
    bad = NativeJobRequest(
        name="n",
        job_config={"command": "python", "args": [1], "env": {"TRAIN_X": "1"}, "working_dir": "/nowhere/at/all",
                    "max_runtime": "soon", "gpus": 1},
        storage_mounts=[{"source_uri": "gs://bucket/x"}],
    )
    with pytest.raises(InvalidSpecError) as exc:
        backend.check_native(bad)
    assert _fields(exc) == {
        "job_config.command", "job_config.args", "job_config.env.TRAIN_X", "job_config.working_dir",
        "job_config.max_runtime", "job_config.gpus", "storage_mounts[0].source_uri",
    }
    with pytest.raises(InvalidSpecError) as exc:
        backend.check_native(NativeJobRequest(name="n", job_config={"args": []}))
    assert _fields(exc) == {"job_config.command"}
