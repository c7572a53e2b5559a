"""Table tests of the pure SageMaker translation: names, the instance table, SageMaker's limits,
mounts, spot, checkpoints, multi-node, backend_options, the native shape, states and events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.backends.sagemaker import SageMakerBackend
from core.backends.sagemaker_launcher import launcher_script
from core.backends.sagemaker_map import (
    draft_record,
    from_sagemaker_event,
    from_sagemaker_state,
    parse_training_job_name,
    to_sagemaker_request,
    training_job_name,
)
from core.backends.sagemaker_request import INSTANCE_TABLE
from core.backends.sagemaker_shapes import member_shape
from core.errors import InvalidSpecError
from core.lifecycle import Status
from core.model import ImageRef, JobRecord, JobSpec, NativeJobRequest

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "events"
ROLE = "arn:aws:iam::123456789012:role/train-jobs"
OUT = "s3://train-out/jobs"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acct/pytorch:v1"
JOB_ID = "01jd0000000000000000000000"


def spec(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {"name": "mnist", "backend": "sagemaker", "image": IMAGE, "command": ["python", "train.py"]}
    return JobSpec.model_validate({**base, **fields})


def record(source: JobSpec | NativeJobRequest, **changes: Any) -> JobRecord:
    job = draft_record(source)
    if "image" in changes:
        changes["image"] = ImageRef.model_validate(changes["image"])
    return job.model_copy(update={"id": JOB_ID, **changes})


def request_for(source: JobSpec | NativeJobRequest, **changes: Any) -> dict[str, Any]:
    return to_sagemaker_request(record(source, **changes), role_arn=ROLE, output_s3_uri=OUT, prefix="train")


def refused(source: JobSpec | NativeJobRequest, **changes: Any) -> dict[str, str]:
    """The fields refused, each with its message."""
    with pytest.raises(InvalidSpecError) as caught:
        request_for(source, **changes)
    assert caught.value.status == 422
    return {e.field: e.message for e in caught.value.errors}


def native(job_config: dict[str, Any], **fields: Any) -> NativeJobRequest:
    return NativeJobRequest.model_validate({"name": "mnist", "job_config": job_config, **fields})


NATIVE_CONFIG: dict[str, Any] = {
    "algorithm_specification": {"training_image": IMAGE, "training_input_mode": "File"},
    "resource_config": {"instance_type": "ml.g5.xlarge", "instance_count": 1, "volume_size_in_gb": 30},
    "hyper_parameters": {"epochs": "3"},
}


# ---- names --------------------------------------------------------------------------------------


def test_the_job_name_is_prefix_id_attempt_and_parses_back() -> None:
    name = training_job_name("train", JOB_ID, 3)
    assert name == f"train-{JOB_ID}-3" and len(name) <= 63
    assert parse_training_job_name(name, "train") == (JOB_ID, 3)
    assert parse_training_job_name(training_job_name("my-team", JOB_ID, 1), "my-team") == (JOB_ID, 1)
    assert training_job_name("a" * 16, JOB_ID, 999) == f"{'a' * 16}-{JOB_ID}-999"


@pytest.mark.parametrize("name", ["89c96cc8-dded", "other-01jd-1", "train-01jd-x", "train--1", "train-01jd-0", "train"])
def test_names_that_are_not_ours_do_not_parse(name: str) -> None:
    assert parse_training_job_name(name, "train") is None


def test_an_impossible_name_is_refused() -> None:
    with pytest.raises(InvalidSpecError):
        training_job_name("x" * 40, JOB_ID, 1)


# ---- instance table -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accelerator", "count", "instance"),
    [
        ("T4", 1, "ml.g4dn.xlarge"), ("T4", 4, "ml.g4dn.12xlarge"),
        ("A10G", 1, "ml.g5.xlarge"), ("A10G", 4, "ml.g5.12xlarge"), ("A10G", 8, "ml.g5.48xlarge"),
        ("L4", 1, "ml.g6.xlarge"), ("L4", 8, "ml.g6.48xlarge"),
        ("L40S", 4, "ml.g6e.12xlarge"), ("L40S", 8, "ml.g6e.48xlarge"),
        ("A100", 8, "ml.p4d.24xlarge"), ("A100_80GB", 8, "ml.p4de.24xlarge"),
        ("H100", 8, "ml.p5.48xlarge"), ("H100", 1, "ml.p5.4xlarge"),
        ("H200", 8, "ml.p5e.48xlarge"), ("B200", 8, "ml.p6-b200.48xlarge"),
    ],
)
def test_accelerator_and_count_pick_the_instance(accelerator: str, count: int, instance: str) -> None:
    request = request_for(spec(compute={"accelerator": accelerator, "accelerators_per_node": count}))
    assert request["ResourceConfig"]["InstanceType"] == instance
    assert request["Environment"]["TRAIN_GPUS_PER_NODE"] == str(count)


def test_every_instance_in_the_table_is_a_sagemaker_training_type() -> None:
    valid = set(member_shape("ResourceConfig", "InstanceType").enum)
    assert {i for sizes in INSTANCE_TABLE.values() for i in sizes.values()} <= valid


def test_cpu_only_runs_on_a_general_purpose_instance() -> None:
    request = request_for(spec())
    assert request["ResourceConfig"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50}
    assert request["Environment"]["TRAIN_GPUS_PER_NODE"] == "0"


@pytest.mark.parametrize(
    ("accelerator", "count", "valid"), [("A100", 1, "8"), ("H100", 4, "1, 8"), ("T4", 8, "1, 4"), ("B200", 2, "8")]
)
def test_a_count_the_family_lacks_names_the_valid_counts(accelerator: str, count: int, valid: str) -> None:
    errors = refused(spec(compute={"accelerator": accelerator, "accelerators_per_node": count}))
    assert list(errors) == ["compute.accelerators_per_node"]
    assert f"with {valid} per instance" in errors["compute.accelerators_per_node"]


def test_instance_type_override() -> None:
    request = request_for(spec(compute={"accelerator": "H200", "accelerators_per_node": 8,
                                        "instance_type": "ml.p5en.48xlarge"}))
    assert request["ResourceConfig"]["InstanceType"] == "ml.p5en.48xlarge"
    for bad in ("p5.48xlarge", "ml.nothing.xlarge", "a3-highgpu-8g"):
        assert list(refused(spec(compute={"instance_type": bad}))) == ["compute.instance_type"]


# ---- command, launcher, environment and their limits ---------------------------------------------


def test_command_and_args_go_to_container_arguments_after_the_launcher() -> None:
    algorithm = request_for(spec(args=["--epochs", "3"]))["AlgorithmSpecification"]
    assert algorithm["ContainerArguments"] == ["python", "train.py", "--epochs", "3"]
    assert algorithm["ContainerEntrypoint"][:2] == ["/bin/sh", "-c"] and len(algorithm["ContainerEntrypoint"]) == 4
    assert algorithm["TrainingImage"] == IMAGE and algorithm["TrainingInputMode"] == "File"
    start = request_for(spec(command=None, start_commands=["pip install -r req.txt", "python train.py"]))
    assert start["AlgorithmSpecification"]["ContainerArguments"] == [
        "/bin/sh", "-c", "pip install -r req.txt && python train.py",
    ]


def test_the_image_goes_by_digest_when_resolved() -> None:
    digest = IMAGE.split(":")[0] + "@sha256:" + "0" * 64
    job_image = {"requested": IMAGE, "resolved": digest}
    assert request_for(spec(), image=job_image)["AlgorithmSpecification"]["TrainingImage"] == digest


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"args": ["x" * 257]}, "args[0]"),
        ({"command": ["python", "y" * 300]}, "command[1]"),
        ({"args": ["a"] * 99}, "args"),
        ({"command": None, "start_commands": ["echo " + "z" * 250, "python train.py"]}, "start_commands"),
        ({"image": "x" * 256}, "image"),
        ({"image": None}, "image"),
    ],
)
def test_container_limits_are_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    assert list(refused(spec(**fields))) == [field]


def test_items_at_the_limit_pass() -> None:
    request = request_for(spec(command=["p" * 256], args=["a"] * 99))
    assert len(request["AlgorithmSpecification"]["ContainerArguments"]) == 100


def test_identity_variables_are_set() -> None:
    env = request_for(spec(project="vision", env={"BATCH": "32"}))["Environment"]
    assert env["BATCH"] == "32"
    assert env["TRAIN_JOB_ID"] == JOB_ID and env["TRAIN_JOB_NAME"] == "mnist"
    assert env["TRAIN_PROJECT"] == "vision" and env["TRAIN_ATTEMPT"] == "1"
    assert all(len(v) <= 512 for v in env.values())


def _train_entries(**fields: Any) -> int:
    return len(request_for(spec(**fields))["Environment"])


def test_the_environment_is_refused_past_100_entries() -> None:
    ours = _train_entries()
    fits = {f"V{i}": "x" for i in range(100 - ours)}
    assert len(request_for(spec(env=fits))["Environment"]) == 100
    errors = refused(spec(env={**fits, "ONE_MORE": "x"}))
    assert list(errors) == ["env"]
    assert f"at most {100 - ours} of yours" in errors["env"]


def test_a_value_past_512_characters_is_refused() -> None:
    assert list(refused(spec(env={"OK": "x" * 512, "LONG": "x" * 513}))) == ["env.LONG"]


def test_secret_values_go_into_the_environment_and_count_against_its_limits() -> None:
    job = record(spec(env={"HF_TOKEN": {"secret": "hf_token"}, "A": "1"}))

    def build(value: str) -> dict[str, Any]:
        return to_sagemaker_request(job, role_arn=ROLE, output_s3_uri=OUT, prefix="train", secrets={"HF_TOKEN": value})

    assert build("hf-value")["Environment"]["HF_TOKEN"] == "hf-value"
    assert job.spec["env"]["HF_TOKEN"] == {"secret": "hf_token"}  # the record keeps the reference only
    with pytest.raises(InvalidSpecError) as caught:
        build("v" * 513)
    assert [e.field for e in caught.value.errors] == ["env.HF_TOKEN"]
    assert "secret 'hf_token' has 513" in caught.value.detail and "v" * 513 not in caught.value.detail

    ours = _train_entries()
    fits = {f"V{i}": "x" for i in range(100 - ours - 1)}
    with_secret = record(spec(env={**fits, "S": {"secret": "s"}}))
    request = to_sagemaker_request(with_secret, role_arn=ROLE, output_s3_uri=OUT, prefix="train", secrets={"S": "v"})
    assert len(request["Environment"]) == 100
    over = record(spec(env={**fits, "S": {"secret": "s"}, "T": {"secret": "t"}}))
    with pytest.raises(InvalidSpecError) as caught:
        to_sagemaker_request(over, role_arn=ROLE, output_s3_uri=OUT, prefix="train", secrets={"S": "v", "T": "w"})
    assert [e.field for e in caught.value.errors] == ["env"]


def test_a_secret_without_a_value_is_refused() -> None:
    errors = refused(spec(env={"HF_TOKEN": {"secret": "hf_token"}}))
    assert "secret store" in errors["env.HF_TOKEN"]


def test_the_launcher_moves_to_the_environment_when_it_grows() -> None:
    mounts = [{"source_uri": f"s3://b/d{n}", "read_only": True, "mount_path": f"/mnt/{'p' * 200}{n}"}
              for n in range(3)]
    request = request_for(spec(storage_mounts=mounts))
    env = request["Environment"]
    chunks = sorted(k for k in env if k.startswith("TRAIN_LAUNCHER_"))
    assert len(chunks) >= 2 and all(len(env[k]) <= 512 for k in chunks)
    loader = request["AlgorithmSpecification"]["ContainerEntrypoint"][2]
    assert len(loader) <= 256 and all(f"${{{k}}}" in loader for k in chunks)


def test_the_container_command_runs_the_users_argv_with_train_env(tmp_path: Path) -> None:
    """Run the request's entrypoint + arguments with its environment under sh, as the container would."""
    request = request_for(spec(command=["sh", "-c", 'echo "$TRAIN_JOB_ID $TRAIN_NUM_NODES $TRAIN_NODE_RANK $1"', "x"],
                               args=["arg with space"]))
    algorithm = request["AlgorithmSpecification"]
    env = {"PATH": os.environ["PATH"], **request["Environment"]}
    out = subprocess.run([*algorithm["ContainerEntrypoint"], *algorithm["ContainerArguments"]],
                         env=env, capture_output=True, text=True, timeout=10, check=True)
    assert out.stdout.strip() == f"{JOB_ID} 1 0 arg with space"


@pytest.mark.parametrize(("host", "rank"), [("algo-1", 0), ("algo-2", 1), ("algo-3", 2)])
def test_the_launcher_derives_rank_and_leader_from_resourceconfig(tmp_path: Path, host: str, rank: int) -> None:
    config = tmp_path / "resourceconfig.json"
    layout = {"current_host": host, "current_instance_type": "ml.p5.48xlarge",
              "current_group_name": "homogeneousCluster", "hosts": ["algo-1", "algo-2", "algo-3"],
              "network_interface_name": "eth0",
              "instance_groups": [{"instance_group_name": "homogeneousCluster", "hosts": ["algo-3"]}]}
    config.write_text(json.dumps(layout, indent=2))
    mount = tmp_path / "mnt dir" / "data"
    script = launcher_script([(str(tmp_path), str(mount))], config_path=str(config))
    out = subprocess.run(["/bin/sh", "-c", script, "train", "sh", "-c",
                          'echo "$TRAIN_NUM_NODES $TRAIN_NODE_RANK $TRAIN_LEADER_ADDR"'],
                         capture_output=True, text=True, timeout=10, check=True)
    assert out.stdout.split() == ["3", str(rank), "algo-1"]
    assert mount.is_symlink() and mount.resolve() == tmp_path.resolve()


def test_the_launcher_execs_so_sigterm_reaches_the_user_process(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    user = ("import os, signal, sys, time, pathlib\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
            f"pathlib.Path({str(ready)!r}).write_text(str(os.getpid()))\n"
            "time.sleep(30)\n")
    proc = subprocess.Popen(["/bin/sh", "-c", launcher_script(config_path=str(tmp_path / "none")), "train",
                             "python3", "-c", user], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert int(ready.read_text()) == proc.pid  # the user's process took the launcher's place
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 42
    finally:
        proc.kill()
        proc.wait()


# ---- storage, checkpoints, spot, retries, labels ------------------------------------------------


@pytest.mark.parametrize("uri", ["gs://bucket/data", "azureml://datastores/d/paths/x", "file:///data", "/data"])
def test_mounts_sagemaker_cannot_reach_are_refused(uri: str) -> None:
    errors = refused(spec(storage_mounts=[{"source_uri": "s3://ok/x", "read_only": True}, {"source_uri": uri}]))
    assert list(errors) == ["storage_mounts[1].source_uri"]


def test_read_only_s3_mounts_are_fastfile_channels() -> None:
    request = request_for(spec(storage_mounts=[{"source_uri": "s3://b/train", "read_only": True},
                                               {"source_uri": "s3://b/val", "read_only": True}]))
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["mount0", "mount1"]
    assert all(c["InputMode"] == "FastFile" for c in request["InputDataConfig"])
    assert request["InputDataConfig"][1]["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix", "S3Uri": "s3://b/val", "S3DataDistributionType": "FullyReplicated",
    }
    assert request["Environment"]["STORAGE_MOUNT_1_PATH"] == "/opt/ml/input/data/mount1"


def test_a_read_write_mount_is_synced_through_checkpoint_config() -> None:
    mounts = [{"source_uri": "s3://b/rw"}, {"source_uri": "s3://b/ro", "read_only": True}]
    request = request_for(spec(storage_mounts=mounts))
    assert request["CheckpointConfig"] == {"S3Uri": "s3://b/rw", "LocalPath": "/opt/ml/checkpoints"}
    assert request["Environment"]["STORAGE_MOUNT_0_PATH"] == "/opt/ml/checkpoints"
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["mount1"]


def test_only_one_read_write_location_fits() -> None:
    assert list(refused(spec(storage_mounts=[{"source_uri": "s3://b/a"}, {"source_uri": "s3://b/b"}]))) == [
        "storage_mounts[1].read_only"
    ]
    errors = refused(spec(storage_mounts=[{"source_uri": "s3://b/a"}], checkpointing={"enabled": True}))
    assert "checkpointing uses it" in errors["storage_mounts[0].read_only"]


def test_more_than_20_channels_are_refused() -> None:
    mounts = [{"source_uri": f"s3://b/{n}", "read_only": True} for n in range(21)]
    assert "storage_mounts" in refused(spec(storage_mounts=mounts))


def test_checkpointing_syncs_the_jobs_prefix() -> None:
    request = request_for(spec(checkpointing={"enabled": True}))
    assert request["CheckpointConfig"] == {"S3Uri": f"{OUT}/{JOB_ID}/checkpoints/", "LocalPath": "/opt/ml/checkpoints"}
    assert request["Environment"]["TRAIN_CHECKPOINT_DIR"] == "/opt/ml/checkpoints"
    assert "TRAIN_LOAD_CHECKPOINT_DIR" not in request["Environment"]
    later = request_for(spec(checkpointing={"enabled": True}), attempt=2)
    assert later["TrainingJobName"].endswith("-2")
    assert later["Environment"]["TRAIN_LOAD_CHECKPOINT_DIR"] == "/opt/ml/checkpoints"


@pytest.mark.parametrize(("name", "suffix"), [("latest", ""), ("step-100", "step-100/")])
def test_load_checkpoint_reads_the_earlier_jobs_prefix_as_a_channel(name: str, suffix: str) -> None:
    earlier = "01jc0000000000000000000000"
    request = request_for(spec(load_checkpoint={"job_id": earlier, "name": name}), load_checkpoint_job_id=earlier)
    [channel] = request["InputDataConfig"]
    assert channel["ChannelName"] == "load_checkpoint"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == f"{OUT}/{earlier}/checkpoints/{suffix}"
    assert request["Environment"]["TRAIN_LOAD_CHECKPOINT_DIR"] == "/opt/ml/input/data/load_checkpoint"


@pytest.mark.parametrize(
    ("fields", "stopping"),
    [
        ({}, {"MaxRuntimeInSeconds": 86400}),
        ({"max_runtime": "2h"}, {"MaxRuntimeInSeconds": 7200}),
        ({"max_runtime": "2h", "spot": {"enabled": True}},
         {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 7200}),
        ({"spot": {"enabled": True, "max_wait": "48h"}},
         {"MaxRuntimeInSeconds": 86400, "MaxWaitTimeInSeconds": 172800}),
        ({"max_runtime": "28d"}, {"MaxRuntimeInSeconds": 28 * 86400}),
    ],
)
def test_runtime_and_spot_map_to_the_stopping_condition(fields: dict[str, Any], stopping: dict[str, int]) -> None:
    request = request_for(spec(**fields))
    assert request["StoppingCondition"] == stopping
    assert request.get("EnableManagedSpotTraining", False) == bool(fields.get("spot"))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_runtime": "29d"}, "max_runtime"),
        ({"max_runtime": "4h", "spot": {"enabled": True, "max_wait": "1h"}}, "spot.max_wait"),
    ],
)
def test_runtime_and_spot_refusals(fields: dict[str, Any], field: str) -> None:
    assert list(refused(spec(**fields))) == [field]


def test_multi_node_retries_and_labels() -> None:
    request = request_for(spec(compute={"accelerator": "A100", "accelerators_per_node": 8, "nodes": 4},
                               retries={"on_preemption": 3}, labels={"team": "research"}))
    assert request["ResourceConfig"]["InstanceCount"] == 4
    assert "RetryStrategy" not in request  # Train resubmits preempted attempts itself
    assert request["Tags"] == [
        {"Key": "team", "Value": "research"}, {"Key": "train:job-id", "Value": JOB_ID},
        {"Key": "train:project", "Value": "default"},
    ]


def test_every_problem_is_named_at_once() -> None:
    errors = refused(spec(image=None, compute={"accelerator": "A100"}, env={"S": {"secret": "s"}},
                          storage_mounts=[{"source_uri": "gs://b/x"}]))
    assert set(errors) == {"image", "compute.accelerators_per_node", "env.S", "storage_mounts[0].source_uri"}


# ---- backend_options ----------------------------------------------------------------------------


def test_backend_options_add_native_fields() -> None:
    request = request_for(spec(backend_options={
        "vpc_config": {"security_group_ids": ["sg-1"], "subnets": ["subnet-1"]},
        "resource_config": {"volume_size_in_gb": 200, "keep_alive_period_in_seconds": 600},
        "enable_network_isolation": True,
    }))
    assert request["VpcConfig"] == {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}
    assert request["ResourceConfig"]["VolumeSizeInGB"] == 200
    assert request["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 600
    assert request["EnableNetworkIsolation"] is True


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"bogus": 1}, "backend_options.bogus"),
        ({"VpcConfig": {}}, "backend_options.VpcConfig"),
        ({"role_arn": "arn:aws:iam::1:role/other"}, "backend_options.role_arn"),
        ({"training_job_name": "mine"}, "backend_options.training_job_name"),
        ({"algorithm_specification": {"training_image": "other"}},
         "backend_options.algorithm_specification.training_image"),
        ({"resource_config": {"instance_type": "ml.p5.48xlarge"}}, "backend_options.resource_config.instance_type"),
        ({"enable_network_isolation": "yes"}, "backend_options.enable_network_isolation"),
        ({"resource_config": {"volume_size_in_gb": -1}}, "backend_options.resource_config.volume_size_in_gb"),
    ],
)
def test_backend_options_are_validated(options: dict[str, Any], field: str) -> None:
    assert list(refused(spec(backend_options=options))) == [field]


# ---- the native shape ---------------------------------------------------------------------------


def test_native_job_config_is_merged_with_trains_own() -> None:
    request = request_for(native(NATIVE_CONFIG, storage_mounts=[{"source_uri": "s3://b/data", "read_only": True}],
                                 labels={"team": "x"}))
    assert request["TrainingJobName"] == f"train-{JOB_ID}-1" and request["RoleArn"] == ROLE
    assert request["AlgorithmSpecification"] == {"TrainingImage": IMAGE, "TrainingInputMode": "File"}
    assert request["ResourceConfig"] == {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert request["HyperParameters"] == {"epochs": "3"}
    assert request["OutputDataConfig"] == {"S3OutputPath": f"{OUT}/{JOB_ID}/output"}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["mount0"]
    assert request["Environment"]["STORAGE_MOUNT_0_PATH"] == "/opt/ml/input/data/mount0"
    assert request["Environment"]["TRAIN_JOB_ID"] == JOB_ID
    assert {"Key": "team", "Value": "x"} in request["Tags"]


def test_native_fields_of_the_user_are_kept() -> None:
    config = {**NATIVE_CONFIG, "role_arn": "arn:aws:iam::123456789012:role/own-role",
              "stopping_condition": {"max_runtime_in_seconds": 3600},
              "input_data_config": [{"channel_name": "train", "data_source": {"s3_data_source": {
                  "s3_data_type": "S3Prefix", "s3_uri": "s3://b/train"}}}],
              "environment": {"LR": "0.1"}, "checkpoint_config": {"s3_uri": "s3://b/ck"}}
    digest = IMAGE.split(":")[0] + "@sha256:" + "1" * 64
    request = request_for(native(config), image={"requested": None, "resolved": digest})
    assert request["RoleArn"].endswith("own-role")
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://b/train"
    assert request["Environment"]["LR"] == "0.1"
    assert request["Environment"]["TRAIN_CHECKPOINT_DIR"] == "/opt/ml/checkpoints"
    assert request["AlgorithmSpecification"]["TrainingImage"] == digest


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"training_job_name": "mine"}, "job_config.training_job_name"),
        ({"bogus": 1}, "job_config.bogus"),
        ({"TrainingImage": "x"}, "job_config.TrainingImage"),
        ({"hyper_parameters": {"lr": 0.1}}, "job_config.hyper_parameters.lr"),
        ({"resource_config": {"instance_type": "ml.g5.xlarge", "instance_count": "1", "volume_size_in_gb": 30}},
         "job_config.resource_config.instance_count"),
        ({"resource_config": {"instance_type": "ml.nope", "instance_count": 1}},
         "job_config.resource_config.instance_type"),
        ({"algorithm_specification": {"training_image": IMAGE, "training_input_mode": "Files"}},
         "job_config.algorithm_specification.training_input_mode"),
        ({"algorithm_specification": {"training_image": IMAGE, "training_input_mode": "File",
                                      "container_arguments": ["x" * 257]}},
         "job_config.algorithm_specification.container_arguments[0]"),
        ({"environment": {"TRAIN_JOB_ID": "x"}}, "job_config.environment.TRAIN_JOB_ID"),
        ({"environment": {f"V{i}": "x" for i in range(99)}}, "job_config.environment"),
        ({"stopping_condition": {"max_runtime_in_seconds": 0}}, "job_config.stopping_condition.max_runtime_in_seconds"),
        ({"input_data_config": [{"channel_name": "x"}]}, "job_config.input_data_config[0].data_source"),
        ({"role_arn": "short"}, "job_config.role_arn"),
    ],
)
def test_native_job_config_problems_are_named_in_snake_case(change: dict[str, Any], field: str) -> None:
    assert field in refused(native({**NATIVE_CONFIG, **change}))


def test_native_requires_an_algorithm_and_resources() -> None:
    errors = refused(native({"hyper_parameters": {}}))
    assert {"job_config.algorithm_specification", "job_config.resource_config"} <= set(errors)


def test_native_mount_problems() -> None:
    mounts = [{"source_uri": "s3://b/a", "read_only": True, "mount_path": "/data"}, {"source_uri": "gs://b/x"}]
    config = {**NATIVE_CONFIG, "input_data_config": [{"channel_name": "mount0", "data_source": {"s3_data_source": {
        "s3_data_type": "S3Prefix", "s3_uri": "s3://b/train"}}}]}
    errors = refused(native(config, storage_mounts=mounts))
    assert set(errors) == {"storage_mounts[0].mount_path", "storage_mounts[1].source_uri",
                           "job_config.input_data_config[0].channel_name"}


def test_check_native_and_check_spec_make_no_call(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    backend = SageMakerBackend(role_arn=ROLE, output_s3_uri=OUT)  # no region, no credentials: a call would fail
    backend.check_native(native(NATIVE_CONFIG))
    backend.check_spec(spec())
    with pytest.raises(InvalidSpecError) as caught:
        backend.check_native(native({**NATIVE_CONFIG, "bogus": 1}))
    assert [e.field for e in caught.value.errors] == ["job_config.bogus"]


# ---- states -------------------------------------------------------------------------------------


T = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "secondary", "expected", "native"),
    [
        ("InProgress", "Starting", Status.PENDING, "InProgress/Starting"),
        ("InProgress", "LaunchingMLInstances", Status.PENDING, "InProgress/LaunchingMLInstances"),
        ("InProgress", "Downloading", Status.PENDING, "InProgress/Downloading"),
        ("InProgress", "DownloadingTrainingImage", Status.PENDING, "InProgress/DownloadingTrainingImage"),
        ("InProgress", "Pending", Status.PENDING, "InProgress/Pending"),
        ("InProgress", None, Status.PENDING, "InProgress"),
        ("InProgress", "Training", Status.IN_PROGRESS, "InProgress/Training"),
        ("InProgress", "Uploading", Status.IN_PROGRESS, "InProgress/Uploading"),
        ("InProgress", "Restarting", Status.IN_PROGRESS, "InProgress/Restarting"),
        ("InProgress", "Interrupted", Status.IN_PROGRESS, "InProgress/Interrupted"),
        ("Stopping", "Stopping", Status.IN_PROGRESS, "Stopping"),
        ("Completed", "Completed", Status.COMPLETED, "Completed"),
        ("Failed", "Failed", Status.FAILED, "Failed"),
        ("Stopped", "Stopped", Status.CANCELED, "Stopped"),
        ("Stopped", "MaxRuntimeExceeded", Status.EXPIRED, "Stopped/MaxRuntimeExceeded"),
        ("Stopped", "MaxWaitTimeExceeded", Status.EXPIRED, "Stopped/MaxWaitTimeExceeded"),
        ("InProgress", "SomethingNew", None, "InProgress/SomethingNew"),
        ("Deleting", None, None, "Deleting"),
    ],
)
def test_state_mapping(status: str, secondary: str | None, expected: Status | None, native: str) -> None:
    update = from_sagemaker_state(status, secondary, event_time=T, attempt=2)
    assert (update.status, update.native_status, update.event_time, update.attempt) == (expected, native, T, 2)


@pytest.mark.parametrize(
    ("status", "secondary", "preempted"),
    [("InProgress", "Interrupted", True), ("InProgress", "Training", False), ("Failed", "Failed", False),
     ("Stopped", "MaxWaitTimeExceeded", False)],
)
def test_only_the_interrupted_secondary_status_is_a_preemption(status: str, secondary: str, preempted: bool) -> None:
    update = from_sagemaker_state(status, secondary, event_time=T, attempt=1)
    assert update.preempted is preempted
    if preempted:
        assert update.status == Status.IN_PROGRESS and update.reason == "spot capacity interrupted"


def test_failure_and_stop_reasons() -> None:
    assert from_sagemaker_state("Failed", "Failed", event_time=T, reason="AlgorithmError: boom").reason == (
        "AlgorithmError: boom"
    )
    assert from_sagemaker_state("Stopped", "MaxRuntimeExceeded", event_time=T).reason == "max_runtime exceeded"


# ---- events -------------------------------------------------------------------------------------


def load_event() -> dict[str, Any]:
    return json.loads((FIXTURES / "sagemaker_state_change_completed.json").read_text())


def ours(**detail: Any) -> dict[str, Any]:
    event = load_event()
    event["detail"] = {**event["detail"], "TrainingJobName": f"train-{JOB_ID}-2", **detail}
    return event


def test_the_published_sample_is_foreign() -> None:
    assert from_sagemaker_event(load_event(), "train") is None  # its name is not one of ours
    assert from_sagemaker_event(load_event(), "89c96cc8") is None  # nor a name with our shape


def test_an_event_of_ours_maps_with_its_epoch_millisecond_time() -> None:
    parsed = from_sagemaker_event(ours(), "train")
    assert parsed is not None
    name, update = parsed
    assert name == f"train-{JOB_ID}-2"  # from detail.TrainingJobName, not the ARN
    assert update.status == Status.COMPLETED and update.attempt == 2
    assert update.event_time == datetime(2020, 3, 10, 9, 18, 9, 50000, tzinfo=UTC)
    assert from_sagemaker_event(ours(), "train") == parsed  # a duplicate gives the same update


@pytest.mark.parametrize(
    ("time_value", "expected"),
    [
        (1583831889050, datetime(2020, 3, 10, 9, 18, 9, 50000, tzinfo=UTC)),
        (" 1583831889050 ", datetime(2020, 3, 10, 9, 18, 9, 50000, tzinfo=UTC)),
        ("2020-03-10T09:18:09.050Z", datetime(2020, 3, 10, 9, 18, 9, 50000, tzinfo=UTC)),
    ],
)
def test_event_times_in_other_forms(time_value: object, expected: datetime) -> None:
    parsed = from_sagemaker_event(ours(LastModifiedTime=time_value), "train")
    assert parsed is not None and parsed[1].event_time == expected


def test_an_event_without_last_modified_time_uses_the_event_time() -> None:
    event = ours()
    del event["detail"]["LastModifiedTime"]
    parsed = from_sagemaker_event(event, "train")
    assert parsed is not None and parsed[1].event_time == datetime(2018, 10, 6, 12, 26, 13, tzinfo=UTC)


def test_stopped_events_split_by_secondary_status() -> None:
    canceled = from_sagemaker_event(ours(TrainingJobStatus="Stopped", SecondaryStatus="Stopped"), "train")
    expired = from_sagemaker_event(ours(TrainingJobStatus="Stopped", SecondaryStatus="MaxRuntimeExceeded"), "train")
    failing = ours(TrainingJobStatus="Failed", SecondaryStatus="Failed", FailureReason="OOM")
    failed = from_sagemaker_event(failing, "train")
    assert canceled is not None and canceled[1].status == Status.CANCELED
    assert expired is not None and expired[1].status == Status.EXPIRED
    assert failed is not None and (failed[1].status, failed[1].reason) == (Status.FAILED, "OOM")


def _without_time() -> dict[str, Any]:
    event = ours()
    del event["detail"]["LastModifiedTime"]
    del event["time"]
    return event


@pytest.mark.parametrize(
    "event",
    [
        None, [], "text", {},
        {**ours(), "source": "aws.ec2"},
        {**ours(), "detail-type": "SageMaker Endpoint State Change"},
        {**ours(), "detail": "not an object"},
        ours(TrainingJobName=None),
        ours(TrainingJobName=123),
        ours(TrainingJobName=f"train-{JOB_ID}-two"),
        ours(TrainingJobName=f"other-{JOB_ID}-1"),
        ours(TrainingJobStatus=None),
        ours(TrainingJobStatus=""),
        {**ours(LastModifiedTime="yesterday"), "time": None},
        _without_time(),
    ],
)
def test_foreign_and_malformed_events_are_none(event: Any) -> None:
    assert from_sagemaker_event(event, "train") is None


def test_backend_option_problems_are_named_alongside_spec_problems() -> None:
    errors = refused(spec(image=None, backend_options={"enable_network_isolation": "yes"}))
    assert set(errors) == {"image", "backend_options.enable_network_isolation"}


def test_native_tags_may_be_written_as_an_object() -> None:
    request = request_for(native({**NATIVE_CONFIG, "tags": {"cost-center": "42"}}))
    assert request["Tags"][0] == {"Key": "cost-center", "Value": "42"}
