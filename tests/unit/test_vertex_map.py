"""Table tests of the pure Vertex AI translation: the CustomJob of a portable spec (names, labels,
pools, the machine table, launcher, env, mounts, checkpoints, scheduling, backend_options), the
native shape, states, and Cloud Logging entries and Pub/Sub CloudEvents."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.cloud import aiplatform_v1
from google.protobuf import json_format

from core.backends.vertex import VertexBackend
from core.backends.vertex_launcher import launcher_script
from core.backends.vertex_machines import MACHINE_TABLE
from core.backends.vertex_map import (
    STATE_TABLE,
    checkpoint_location,
    custom_job_name,
    decode_pubsub_cloudevent,
    draft_record,
    from_vertex_job,
    from_vertex_log_entry,
    from_vertex_log_line,
    from_vertex_state,
    job_filter,
    log_filter,
    parse_custom_job_name,
    parse_timestamp,
    to_vertex_custom_job,
    train_labels,
)
from core.errors import InvalidSpecError
from core.lifecycle import Status
from core.model import ImageRef, JobRecord, JobSpec, NativeJobRequest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "events"
IMAGE = "us-docker.pkg.dev/acct/train/pytorch:v1"
DIGEST = "us-docker.pkg.dev/acct/train/pytorch@sha256:" + "a" * 64
JOB_ID = "01jd0000000000000000000000"
EARLIER = "01jc0000000000000000000000"


def spec(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {"name": "mnist", "backend": "vertex-ai", "image": IMAGE, "command": ["python", "train.py"]}
    return JobSpec.model_validate({**base, **fields})


def record(source: JobSpec | NativeJobRequest, **changes: Any) -> JobRecord:
    job = draft_record(source)
    if "image" in changes:
        changes["image"] = ImageRef.model_validate(changes["image"])
    return job.model_copy(update={"id": JOB_ID, **changes})


def build(source: JobSpec | NativeJobRequest, **changes: Any) -> dict[str, Any]:
    job = to_vertex_custom_job(record(source, **changes), prefix="train", staging_bucket="gs://stage",
                               service_account="jobs@p.iam.gserviceaccount.com")
    json_format.ParseDict(job, aiplatform_v1.CustomJob.pb()())  # the API's own message takes it
    return job


def refused(source: JobSpec | NativeJobRequest, **changes: Any) -> dict[str, str]:
    with pytest.raises(InvalidSpecError) as caught:
        build(source, **changes)
    assert caught.value.status == 422
    return {e.field: e.message for e in caught.value.errors}


def pool(job: dict[str, Any], n: int = 0) -> dict[str, Any]:
    return dict(job["job_spec"]["worker_pool_specs"][n])


def env_of(job: dict[str, Any], n: int = 0) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pool(job, n)["container_spec"]["env"]}


# ---- names, labels, pools ---------------------------------------------------------------------


def test_display_name_and_labels_lead_back_to_the_job_and_attempt() -> None:
    job = build(spec(labels={"team": "vision"}), attempt=3)
    assert job["display_name"] == f"train-{JOB_ID}-3"
    assert job["labels"] == {"team": "vision", "train-job-id": JOB_ID, "train-attempt": "3"}
    assert job["job_spec"]["service_account"] == "jobs@p.iam.gserviceaccount.com"
    assert job_filter(JOB_ID, 3) == f'labels.train-job-id="{JOB_ID}" AND labels.train-attempt="3"'


def test_a_user_label_may_not_take_trains_own_keys() -> None:
    assert set(refused(spec(labels={"train-attempt": "9"}))) == {"labels.train-attempt"}


@pytest.mark.parametrize(("nodes", "pools"), [(1, [1]), (2, [1, 1]), (4, [1, 3])])
def test_worker_pool_0_has_one_replica_and_pool_1_the_other_nodes(nodes: int, pools: list[int]) -> None:
    job = build(spec(compute={"accelerator": "H100", "accelerators_per_node": 8, "nodes": nodes}))
    specs = job["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in specs] == pools
    assert all(p["machine_spec"] == specs[0]["machine_spec"] for p in specs)
    assert all(p["container_spec"] == specs[0]["container_spec"] for p in specs)
    assert env_of(job)["TRAIN_NUM_NODES"] == str(nodes)


# ---- machines ---------------------------------------------------------------------------------

TABLE = [
    (accelerator, count, machine, accelerator_type)
    for accelerator, (accelerator_type, sizes) in MACHINE_TABLE.items()
    for count, machine in sizes.items()
]


@pytest.mark.parametrize(("accelerator", "count", "machine", "accelerator_type"), TABLE)
def test_machine_table(accelerator: str, count: int, machine: str, accelerator_type: str) -> None:
    job = build(spec(compute={"accelerator": accelerator, "accelerators_per_node": count}))
    assert pool(job)["machine_spec"] == {"machine_type": machine, "accelerator_type": accelerator_type,
                                         "accelerator_count": count}
    assert accelerator_type in aiplatform_v1.AcceleratorType.__members__


@pytest.mark.parametrize(("accelerator", "count", "machine"), [
    ("H100", 8, "a3-highgpu-8g"), ("H200", 8, "a3-ultragpu-8g"), ("B200", 8, "a4-highgpu-8g"),
    ("A100", 1, "a2-highgpu-1g"), ("A100_80GB", 4, "a2-ultragpu-4g"), ("T4", 4, "n1-standard-32"),
    ("L4", 1, "g2-standard-8"),
])
def test_the_machine_types_the_issue_names(accelerator: str, count: int, machine: str) -> None:
    job = build(spec(compute={"accelerator": accelerator, "accelerators_per_node": count}))
    assert pool(job)["machine_spec"]["machine_type"] == machine


def test_no_accelerator_runs_on_a_cpu_machine() -> None:
    assert pool(build(spec()))["machine_spec"] == {"machine_type": "n1-standard-4"}


@pytest.mark.parametrize(("compute", "field"), [
    ({"accelerator": "A10G"}, "compute.accelerator"),
    ({"accelerator": "L40S", "accelerators_per_node": 8}, "compute.accelerator"),
    ({"accelerator": "H100", "accelerators_per_node": 3}, "compute.accelerators_per_node"),
    ({"accelerator": "H200", "accelerators_per_node": 4}, "compute.accelerators_per_node"),
    ({"accelerator": "B200", "accelerators_per_node": 1}, "compute.accelerators_per_node"),
    ({"accelerator": "T4", "accelerators_per_node": 8}, "compute.accelerators_per_node"),
    ({"accelerator": "H100", "accelerators_per_node": 8, "instance_type": "a2-highgpu-8g"}, "compute.instance_type"),
    ({"accelerator": "T4", "accelerators_per_node": 3, "instance_type": "n1-standard-16"},
     "compute.accelerators_per_node"),
    ({"accelerator": "L4", "accelerators_per_node": 1, "instance_type": "g2-standard-24"},
     "compute.accelerators_per_node"),
    ({"instance_type": "a3-highgpu-8g"}, "compute.accelerator"),
    ({"instance_type": "ml.p5.48xlarge"}, "compute.instance_type"),
])
def test_combinations_vertex_cannot_run_are_refused(compute: dict[str, Any], field: str) -> None:
    assert set(refused(spec(compute=compute))) == {field}


def test_a10g_is_refused_as_not_offered_on_vertex() -> None:
    assert "not offer" in refused(spec(compute={"accelerator": "A10G"}))["compute.accelerator"]


@pytest.mark.parametrize(("compute", "expected"), [
    ({"accelerator": "H100", "accelerators_per_node": 8, "instance_type": "a3-megagpu-8g"},
     {"machine_type": "a3-megagpu-8g", "accelerator_type": "NVIDIA_H100_MEGA_80GB", "accelerator_count": 8}),
    ({"accelerator": "T4", "accelerators_per_node": 2, "instance_type": "n1-highmem-16"},
     {"machine_type": "n1-highmem-16", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 2}),
    ({"accelerator": "L4", "accelerators_per_node": 2, "instance_type": "g2-standard-24"},
     {"machine_type": "g2-standard-24", "accelerator_type": "NVIDIA_L4", "accelerator_count": 2}),
    ({"instance_type": "e2-standard-8"}, {"machine_type": "e2-standard-8"}),
])
def test_instance_type_overrides(compute: dict[str, Any], expected: dict[str, Any]) -> None:
    assert pool(build(spec(compute=compute)))["machine_spec"] == expected


# ---- container --------------------------------------------------------------------------------


def test_image_by_digest_when_resolved() -> None:
    assert pool(build(spec(), image={"requested": IMAGE, "resolved": DIGEST}))["container_spec"]["image_uri"] == DIGEST
    assert pool(build(spec()))["container_spec"]["image_uri"] == IMAGE
    assert set(refused(spec(image=None))) == {"image"}


def test_command_is_the_launcher_and_args_the_users_argv() -> None:
    container = pool(build(spec(args=["--epochs", "3"])))["container_spec"]
    assert container["command"][:2] == ["/bin/sh", "-c"] and container["command"][3] == "train"
    assert 'exec "$@"' in container["command"][2]
    assert container["args"] == ["python", "train.py", "--epochs", "3"]
    chained = pool(build(spec(command=None, start_commands=["pip install x", "python t.py"])))["container_spec"]
    assert chained["args"] == ["/bin/sh", "-c", "pip install x && python t.py"]


def test_env_has_the_identity_and_the_users_variables() -> None:
    env = env_of(build(spec(env={"BATCH": "32"}, compute={"accelerator": "L4", "accelerators_per_node": 4}),
                       attempt=2))
    assert env == {
        "BATCH": "32", "TRAIN_JOB_ID": JOB_ID, "TRAIN_JOB_NAME": "mnist", "TRAIN_PROJECT": "default",
        "TRAIN_ATTEMPT": "2", "TRAIN_GPUS_PER_NODE": "4", "TRAIN_NUM_NODES": "1",
    }


def test_secret_values_go_into_every_pools_container_env() -> None:
    job = to_vertex_custom_job(
        record(spec(env={"HF_TOKEN": {"secret": "hf"}, "A": "1"}, compute={"accelerator": "L4", "nodes": 2})),
        prefix="train", staging_bucket="gs://stage", secrets={"HF_TOKEN": "hf-value"},
    )
    for pool in job["job_spec"]["worker_pool_specs"]:
        env = {e["name"]: e["value"] for e in pool["container_spec"]["env"]}
        assert env["HF_TOKEN"] == "hf-value" and env["A"] == "1"


def test_a_secret_without_a_value_is_refused() -> None:
    errors = refused(spec(env={"HF_TOKEN": {"secret": "hf"}, "A": "1"}))
    assert set(errors) == {"env.HF_TOKEN"} and "secret store" in errors["env.HF_TOKEN"]


def test_notify_is_accepted_webhooks_are_trains_own() -> None:
    assert build(spec(notify={"url": "https://example.com/hook"}))["display_name"]


@pytest.mark.parametrize(
    ("state", "message", "preempted"),
    [
        ("JOB_STATE_FAILED", "The replica workerpool0-0 was preempted.", True),
        ("JOB_STATE_FAILED", "Spot VM PREEMPTED by Compute Engine", True),
        ("JOB_STATE_FAILED", "The replica workerpool0-0 exited with a non-zero status of 1.", False),
        ("JOB_STATE_CANCELLED", "preempted", False),
    ],
)
def test_a_failed_job_whose_error_says_preempted_is_a_preemption(state: str, message: str, preempted: bool) -> None:
    update = from_vertex_job({"state": state, "update_time": "2026-01-01T00:00:00Z", "error": {"message": message},
                              "labels": {"train-job-id": "j", "train-attempt": "1"}})
    assert update.preempted is preempted and update.attempt == 1


# ---- mounts and checkpoints -------------------------------------------------------------------


def test_gs_mounts_are_cloud_storage_fuse_paths() -> None:
    job = build(spec(storage_mounts=[{"source_uri": "gs://data/mnist/", "read_only": True},
                                     {"source_uri": "gs://other", "mount_path": "/mnt/other"}]))
    env = env_of(job)
    assert env["STORAGE_MOUNT_0_PATH"] == "/gcs/data/mnist"
    assert env["STORAGE_MOUNT_1_PATH"] == "/gcs/other"
    assert "ln -s /gcs/other /mnt/other" in pool(job)["container_spec"]["command"][2]


@pytest.mark.parametrize("uri", ["s3://bucket/data", "azureml://datastores/d/paths/x", "file:///data", "/data"])
def test_mounts_vertex_cannot_reach_are_refused(uri: str) -> None:
    errors = refused(spec(storage_mounts=[{"source_uri": "gs://ok/x"}, {"source_uri": uri}]))
    assert set(errors) == {"storage_mounts[1].source_uri"}
    assert "gs://" in errors["storage_mounts[1].source_uri"]


def test_every_bad_field_is_named_in_one_error() -> None:
    errors = refused(spec(image=None, env={"K": {"secret": "k"}}, compute={"accelerator": "A10G"},
                          storage_mounts=[{"source_uri": "s3://b/x"}], backend_options={"nope": 1}))
    assert set(errors) == {"image", "env.K", "compute.accelerator", "storage_mounts[0].source_uri",
                           "backend_options.nope"}


def test_checkpointing_sets_the_attempts_base_output_directory() -> None:
    job = build(spec(checkpointing={"enabled": True}), attempt=2)
    assert job["job_spec"]["base_output_directory"] == {
        "output_uri_prefix": f"gs://stage/train/{JOB_ID}/attempt-2/"
    }
    script = pool(job)["container_spec"]["command"][2]
    assert "AIP_CHECKPOINT_DIR" in script and "TRAIN_CHECKPOINT_DIR" in script
    assert env_of(job)["TRAIN_LOAD_CHECKPOINT_DIR"] == f"/gcs/stage/train/{JOB_ID}/attempt-1/checkpoints"
    assert "base_output_directory" not in build(spec())["job_spec"]
    assert checkpoint_location(record(spec(), attempt=2), prefix="train", staging_bucket="stage") == (
        "stage", f"train/{JOB_ID}/attempt-2/checkpoints/"
    )


def test_load_checkpoint_of_an_earlier_job_reads_its_newest_attempt() -> None:
    job = build(spec(load_checkpoint={"job_id": EARLIER, "name": "step-100"}), load_checkpoint_job_id=EARLIER)
    script = pool(job)["container_spec"]["command"][2]
    assert f"/gcs/stage/train/{EARLIER}/attempt-" in script and "/step-100" in script
    assert "TRAIN_LOAD_CHECKPOINT_DIR" not in env_of(job)


def run_launcher(script: str, env: dict[str, str]) -> dict[str, str]:
    shown = 'printf "%s|%s|%s|%s" "$TRAIN_NODE_RANK" "$TRAIN_LEADER_ADDR" "${TRAIN_CHECKPOINT_DIR:-}" "$1"'
    out = subprocess.run(["/bin/sh", "-c", script, "train", "/bin/sh", "-c", shown, "sh", "user arg"],
                         env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=10)
    rank, leader, checkpoint, arg = out.stdout.split("|")
    return {"rank": rank, "leader": leader, "checkpoint": checkpoint, "arg": arg}


@pytest.mark.parametrize(("task", "rank"), [({"type": "workerpool0", "index": 0}, "0"),
                                            ({"type": "workerpool1", "index": 0}, "1"),
                                            ({"index": 2, "type": "workerpool1"}, "3")])
def test_launcher_reads_rank_and_leader_from_cluster_spec(task: dict[str, Any], rank: str) -> None:
    cluster = {"cluster": {"workerpool0": ["cmle-training-workerpool0-ab-0:2222"],
                           "workerpool1": ["w1-0:2222", "w1-1:2222", "w1-2:2222"]},
               "environment": "cloud", "task": task,
               "job": json.dumps({"task": {"type": "workerpool0", "index": 7}})}
    shown = run_launcher(launcher_script(), {"CLUSTER_SPEC": json.dumps(cluster, indent=2)})
    assert shown == {"rank": rank, "leader": "cmle-training-workerpool0-ab-0", "checkpoint": "", "arg": "user arg"}


def test_launcher_without_cluster_spec_is_rank_0_and_maps_the_checkpoint_dir(tmp_path: Path) -> None:
    shown = run_launcher(launcher_script(checkpointing=True),
                         {"AIP_CHECKPOINT_DIR": "gs://stage/train/j/attempt-1/checkpoints/"})
    assert shown == {"rank": "0", "leader": "127.0.0.1", "checkpoint": "/gcs/stage/train/j/attempt-1/checkpoints",
                     "arg": "user arg"}


# ---- scheduling and backend_options -----------------------------------------------------------


def test_max_runtime_and_spot_go_to_scheduling() -> None:
    job = build(spec(max_runtime="2h", spot={"enabled": True, "max_wait": "30m"}))
    assert job["job_spec"]["scheduling"] == {"timeout": "7200s", "strategy": "SPOT", "max_wait_duration": "1800s"}
    assert "scheduling" not in build(spec())["job_spec"]


def test_backend_options_are_merged() -> None:
    job = build(spec(max_runtime="1h", backend_options={
        "enable_web_access": True, "scheduling": {"restart_job_on_worker_restart": True},
        "network": "projects/1/global/networks/n",
    }))
    assert job["job_spec"]["enable_web_access"] is True
    assert job["job_spec"]["scheduling"] == {"timeout": "3600s", "restart_job_on_worker_restart": True}


@pytest.mark.parametrize(("options", "field"), [
    ({"nope": 1}, "backend_options.nope"),
    ({"enableWebAccess": True}, "backend_options.enableWebAccess"),
    ({"enable_web_access": "yes"}, "backend_options.enable_web_access"),
    ({"scheduling": {"timeout": "1h"}}, "backend_options.scheduling.timeout"),
    ({"scheduling": {"timeout": "60s"}}, "backend_options.scheduling.timeout"),
    ({"worker_pool_specs": []}, "backend_options.worker_pool_specs"),
    ({"service_account": "x@y"}, "backend_options.service_account"),
    ({"display_name": "x"}, "backend_options.display_name"),
])
def test_backend_options_are_validated(options: dict[str, Any], field: str) -> None:
    assert set(refused(spec(max_runtime="1h", backend_options=options))) == {field}


# ---- the native shape -------------------------------------------------------------------------

SGP_CONFIG: dict[str, Any] = {
    "worker_pool_specs": [{
        "machine_spec": {"machine_type": "a3-highgpu-8g", "accelerator_type": "NVIDIA_H100_80GB",
                         "accelerator_count": 8},
        "replica_count": 1,
        "container_spec": {"image_uri": IMAGE, "command": ["python", "train.py"], "args": ["--epochs", "3"]},
    }],
    "scheduling": {"timeout": "86400s"},
}


def native(config: dict[str, Any] | None = None, **fields: Any) -> NativeJobRequest:
    return NativeJobRequest.model_validate({"name": "mnist", "job_config": config or SGP_CONFIG, **fields})


def test_native_shape_as_sgp_writes_it() -> None:
    job = build(native(storage_mounts=[{"source_uri": "gs://data/mnist"}], labels={"team": "v"}))
    spec_ = job["job_spec"]
    assert spec_["scheduling"] == {"timeout": "86400s"}
    assert pool(job)["machine_spec"] == SGP_CONFIG["worker_pool_specs"][0]["machine_spec"]
    container = pool(job)["container_spec"]
    assert (container["command"], container["args"]) == (["python", "train.py"], ["--epochs", "3"])
    assert env_of(job) == {"TRAIN_JOB_ID": JOB_ID, "TRAIN_JOB_NAME": "mnist", "TRAIN_PROJECT": "default",
                           "TRAIN_ATTEMPT": "1", "STORAGE_MOUNT_0_PATH": "/gcs/data/mnist",
                           "TRAIN_CHECKPOINT_DIR": f"/gcs/stage/train/{JOB_ID}/attempt-1/checkpoints"}
    assert spec_["base_output_directory"] == {"output_uri_prefix": f"gs://stage/train/{JOB_ID}/attempt-1/"}
    assert job["labels"] == {"team": "v", "train-job-id": JOB_ID, "train-attempt": "1"}
    assert job["display_name"] == f"train-{JOB_ID}-1"
    assert SGP_CONFIG["worker_pool_specs"][0]["container_spec"].get("env") is None  # the input is not changed


def test_native_checkpoints_follow_the_users_output_directory() -> None:
    config = {**SGP_CONFIG, "base_output_directory": {"output_uri_prefix": "gs://mine/run7"}}
    job = record(native(config))
    assert checkpoint_location(job, prefix="train", staging_bucket="stage") == ("mine", "run7/checkpoints/")
    assert env_of(build(native(config)))["TRAIN_CHECKPOINT_DIR"] == "/gcs/mine/run7/checkpoints"


def bad_pool(**changes: Any) -> dict[str, Any]:
    first = json.loads(json.dumps(SGP_CONFIG["worker_pool_specs"][0]))
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = first
        for part in parents:
            target = target[part]
        target[leaf] = value
    return {**SGP_CONFIG, "worker_pool_specs": [first]}


@pytest.mark.parametrize(("config", "field"), [
    ({"worker_pool_specs": [{"machine_spec": {"machine_typ": "x"}}]},
     "job_config.worker_pool_specs[0].machine_spec.machine_typ"),
    (bad_pool(machine_spec__accelerator_type="H100"), "job_config.worker_pool_specs[0].machine_spec.accelerator_type"),
    (bad_pool(replica_count="one"), "job_config.worker_pool_specs[0].replica_count"),
    (bad_pool(replica_count=2), "job_config.worker_pool_specs[0].replica_count"),
    (bad_pool(container_spec__env=[{"name": "TRAIN_JOB_ID", "value": "x"}]),
     "job_config.worker_pool_specs[0].container_spec.env[0].name"),
    (bad_pool(container_spec__image_uri=""), "job_config.worker_pool_specs[0].container_spec.image_uri"),
    ({**SGP_CONFIG, "scheduling": {"timeout": 3600}}, "job_config.scheduling.timeout"),
    ({**SGP_CONFIG, "labels": {"a": "b"}}, "job_config.labels"),
    ({"scheduling": {"timeout": "60s"}}, "job_config.worker_pool_specs"),
])
def test_native_job_config_is_checked_against_the_api_types(config: dict[str, Any], field: str) -> None:
    assert set(refused(native(config))) == {field}


def test_native_mounts_are_gs_only_and_without_mount_path() -> None:
    errors = refused(native(storage_mounts=[{"source_uri": "s3://b/x"},
                                            {"source_uri": "gs://b/y", "mount_path": "/data"}]))
    assert set(errors) == {"storage_mounts[0].source_uri", "storage_mounts[1].mount_path"}


def test_check_native_and_check_spec_call_out_nowhere() -> None:
    backend = VertexBackend(project="p", location="us-central1", staging_bucket="stage",
                            client_options={"api_endpoint": "http://127.0.0.1:9"})
    backend.check_native(native())
    backend.check_spec(spec(compute={"accelerator": "H100", "accelerators_per_node": 8}))
    with pytest.raises(InvalidSpecError):
        backend.check_native(native({"worker_pool_specs": "x"}))
    assert not backend._google.started  # no client or session was ever built


# ---- states -----------------------------------------------------------------------------------

STATES = {
    "JOB_STATE_QUEUED": Status.PENDING, "JOB_STATE_PENDING": Status.PENDING,
    "JOB_STATE_RUNNING": Status.IN_PROGRESS, "JOB_STATE_UPDATING": Status.IN_PROGRESS,
    "JOB_STATE_CANCELLING": Status.IN_PROGRESS, "JOB_STATE_SUCCEEDED": Status.COMPLETED,
    "JOB_STATE_FAILED": Status.FAILED, "JOB_STATE_CANCELLED": Status.CANCELED, "JOB_STATE_EXPIRED": Status.EXPIRED,
    "JOB_STATE_PAUSED": None, "JOB_STATE_UNSPECIFIED": None, "JOB_STATE_PARTIALLY_SUCCEEDED": None,
    "SOMETHING_NEW": None, "NOT_FOUND": Status.FAILED,
}


@pytest.mark.parametrize(("state", "status"), list(STATES.items()))
def test_state_table(state: str, status: Status | None) -> None:
    when = datetime(2025, 1, 21, tzinfo=UTC)
    update = from_vertex_state(state, event_time=when, attempt=2)
    assert (update.native_status, update.status, update.event_time, update.attempt) == (state, status, when, 2)


def test_every_job_state_of_the_api_is_decided() -> None:
    assert set(STATE_TABLE) | {"JOB_STATE_PAUSED", "JOB_STATE_UNSPECIFIED", "JOB_STATE_PARTIALLY_SUCCEEDED"} == set(
        aiplatform_v1.JobState.__members__
    )


@pytest.mark.parametrize("time_key", ["update_time", "updateTime"])
def test_from_vertex_job_takes_update_time_error_and_attempt_label(time_key: str) -> None:
    job = {"name": custom_job_name("p", "l", "1"), "state": "JOB_STATE_FAILED",
           time_key: "2025-01-21T06:28:38.483205565Z", "error": {"code": 3, "message": "OOM in replica 0"},
           "labels": {"train-job-id": JOB_ID, "train-attempt": "2"}}
    update = from_vertex_job(job)
    assert update.status == Status.FAILED and update.reason == "OOM in replica 0" and update.attempt == 2
    assert update.event_time == datetime(2025, 1, 21, 6, 28, 38, 483205, tzinfo=UTC)
    assert from_vertex_job(job, attempt=5).attempt == 5
    assert train_labels(job) == (JOB_ID, 2) and train_labels({"labels": {"team": "x"}}) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-01-21T06:28:38.483205565Z", datetime(2025, 1, 21, 6, 28, 38, 483205, tzinfo=UTC)),
    ("2025-01-21T06:28:38Z", datetime(2025, 1, 21, 6, 28, 38, tzinfo=UTC)),
    ("2025-01-21T06:28:38.5Z", datetime(2025, 1, 21, 6, 28, 38, 500000, tzinfo=UTC)),
    ("2025-01-21T08:28:38.1234567+02:00", datetime(2025, 1, 21, 6, 28, 38, 123456, tzinfo=UTC)),
    ("2025-01-21 06:28:38", None), ("yesterday", None), ("2025-13-01T00:00:00Z", None), (None, None), (17, None),
])
def test_parse_timestamp(text: object, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_resource_names() -> None:
    name = custom_job_name("my-project", "us-central1", "3000721679224668160")
    assert name == "projects/my-project/locations/us-central1/customJobs/3000721679224668160"
    assert parse_custom_job_name(name) == ("my-project", "us-central1", "3000721679224668160")
    assert parse_custom_job_name("projects/p/locations/l/trainingPipelines/1") is None


# ---- Cloud Logging entries and Pub/Sub CloudEvents --------------------------------------------


def fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


def test_log_entry_fixture_names_the_vertex_job() -> None:
    entry = fixture("vertex_custom_job_log_entry_succeeded.json")
    assert from_vertex_log_entry(entry) == "3000721679224668160"
    line = from_vertex_log_line(entry)
    assert line is not None and line.message == "Job completed successfully." and line.source == "service"
    assert line.time == datetime(2025, 1, 21, 6, 28, 38, 483205, tzinfo=UTC)


def test_text_payload_entries_are_read_too() -> None:
    entry = fixture("vertex_custom_job_log_entry_succeeded.json")
    del entry["jsonPayload"]
    entry["textPayload"] = "Job completed successfully.\n"
    entry["severity"] = "ERROR"
    assert from_vertex_log_entry(entry) == "3000721679224668160"
    line = from_vertex_log_line(entry)
    assert line is not None and (line.message, line.stream) == ("Job completed successfully.", "stderr")


@pytest.mark.parametrize("change", [
    lambda e: e["resource"].update(type="gce_instance"),
    lambda e: e["resource"]["labels"].pop("job_id"),
    lambda e: e["resource"]["labels"].update(job_id="../x"),
    lambda e: e.pop("resource"),
    lambda e: e.update(resource="ml_job"),
])
def test_entries_that_are_not_a_vertex_job_give_none(change: Any) -> None:
    entry = fixture("vertex_custom_job_log_entry_succeeded.json")
    change(entry)
    assert from_vertex_log_entry(entry) is None


@pytest.mark.parametrize("value", [None, [], "text", 3])
def test_non_objects_are_not_log_entries(value: object) -> None:
    assert from_vertex_log_entry(value) is None


def test_cloudevent_fixture_decodes_to_the_log_entry() -> None:
    event = fixture("pubsub_cloudevent_vertex_log_entry.json")
    entry = fixture("vertex_custom_job_log_entry_succeeded.json")
    assert decode_pubsub_cloudevent(event["data"]) == entry
    assert decode_pubsub_cloudevent(event) == entry  # the whole event is taken too
    assert from_vertex_log_entry(decode_pubsub_cloudevent(event["data"])) == "3000721679224668160"


def encoded(raw: bytes) -> dict[str, Any]:
    return {"message": {"data": base64.b64encode(raw).decode(), "messageId": "1"}, "subscription": "s"}


@pytest.mark.parametrize("data", [
    {"message": {"data": "%%% not base64 %%%"}},
    encoded(b"\xff\xfe not json"),
    encoded(b"[1, 2]"),
    encoded(b""),
    {"message": {"attributes": {}}},
    {"message": "text"},
    {},
    None,
])
def test_undecodable_pubsub_data_gives_none(data: object) -> None:
    assert decode_pubsub_cloudevent(data) is None


def test_log_filter() -> None:
    assert log_filter("42") == 'resource.type="ml_job" AND resource.labels.job_id="42"'
    assert log_filter("42", "2025-01-21T06:28:38.483205565Z").endswith(
        ' AND timestamp>="2025-01-21T06:28:38.483205565Z"'
    )


def test_importing_the_vertex_backend_loads_no_google_module() -> None:
    code = "import sys, json\nimport core.backends.vertex\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    # google and google.cloud are empty namespace packages a ".pth" of google-cloud-aiplatform registers
    loaded = [m for m in json.loads(out.stdout) if m.split(".")[0] == "google" and m not in {"google", "google.cloud"}]
    assert loaded == []
