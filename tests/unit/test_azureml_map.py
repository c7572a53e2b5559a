"""Table tests of the pure Azure ML translation: spec → command job, states, Event Grid events."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.backends.azureml_map import (
    VM_TABLE,
    azureml_job_name,
    draft_record,
    environment_asset,
    from_azureml_status,
    from_eventgrid_event,
    parse_azure_time,
    parse_azureml_job_name,
    to_azureml_command_job,
)
from core.errors import InvalidSpecError
from core.ids import new_id
from core.lifecycle import Status
from core.model import JobRecord, JobSpec, NativeJobRequest

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "events"
IMAGE = "trainacr.azurecr.io/acct/pytorch@sha256:" + "ab" * 32
WS_TOPIC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/{ws}"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _spec(**fields: Any) -> JobSpec:
    base: dict[str, Any] = {"name": "mnist", "backend": "azure-ml", "image": IMAGE, "command": ["python", "train.py"]}
    return JobSpec.model_validate({**base, **fields})


def _job(spec: JobSpec | NativeJobRequest, *, attempt: int = 1, load_from: str | None = None) -> JobRecord:
    job = draft_record(spec)
    return job.model_copy(update={"id": new_id(), "attempt": attempt, "load_checkpoint_job_id": load_from})


def _build(spec: JobSpec | NativeJobRequest, *, compute: str | None = None, **job: Any) -> dict[str, Any]:
    return to_azureml_command_job(_job(spec, **job), prefix="train", compute=compute).job


def _errors(spec: JobSpec | NativeJobRequest, *, compute: str | None = None) -> dict[str, str]:
    with pytest.raises(InvalidSpecError) as caught:
        to_azureml_command_job(_job(spec), prefix="train", compute=compute)
    return {e.field: e.message for e in caught.value.errors}


# ---- names and environments ---------------------------------------------------------------------


def test_job_name_is_deterministic_and_parses_back() -> None:
    name = azureml_job_name("train", "01jabc", 2)
    assert name == "train-01jabc-2"
    assert parse_azureml_job_name(name, "train") == ("01jabc", 2)
    assert parse_azureml_job_name("AutoML_ad912b2d_5", "train") is None
    assert parse_azureml_job_name("train-x-0", "train") is None


def test_environment_is_keyed_by_digest() -> None:
    name, version = environment_asset("train", IMAGE)
    assert (name, version) == ("train-pytorch", "ab" * 16)
    assert environment_asset("train", IMAGE.replace("acct", "other")) == ("train-pytorch", version)
    tagged = environment_asset("train", "trainacr.azurecr.io/acct/pytorch:v1")
    assert tagged[0] == "train-pytorch" and tagged[1] != version and len(tagged[1]) == 32
    job = _build(_spec())
    assert job["environment"] == f"azureml:train-pytorch:{version}"


# ---- compute ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("accelerator", "count", "vm"), [
    ("T4", 1, "Standard_NC4as_T4_v3"),
    ("A10G", 1, "Standard_NV36ads_A10_v5"),
    ("A100", 1, "Standard_NC24ads_A100_v4"),
    ("A100", 8, "Standard_ND96asr_v4"),
    ("A100_80GB", 8, "Standard_ND96amsr_A100_v4"),
    ("H100", 1, "Standard_NC40ads_H100_v5"),
    ("H100", 8, "Standard_ND96isr_H100_v5"),
    ("H200", 8, "Standard_ND96isr_H200_v5"),
])
def test_accelerator_table_picks_the_vm_size(accelerator: str, count: int, vm: str) -> None:
    job = _build(_spec(compute={"accelerator": accelerator, "accelerators_per_node": count}))
    assert job["resources"] == {"instance_count": 1, "instance_type": vm}
    assert "compute" not in job
    assert job["environment_variables"]["TRAIN_GPUS_PER_NODE"] == str(count)


def test_cpu_job_runs_on_the_cpu_size() -> None:
    assert _build(_spec())["resources"]["instance_type"] == "Standard_DS3_v2"


@pytest.mark.parametrize(("compute", "field", "words"), [
    ({"accelerator": "A100", "accelerators_per_node": 3}, "compute.accelerators_per_node", "1, 2, 4, 8"),
    ({"accelerator": "H200", "accelerators_per_node": 1}, "compute.accelerators_per_node", "8"),
    ({"accelerator": "L4"}, "compute.accelerator", "compute.instance_type"),
    ({"accelerator": "B200", "accelerators_per_node": 8}, "compute.accelerator", "B200"),
    ({"instance_type": "ml.p5.48xlarge"}, "compute.instance_type", "not an Azure VM size"),
])
def test_combinations_azure_cannot_run_are_refused(compute: dict[str, Any], field: str, words: str) -> None:
    errors = _errors(_spec(compute=compute))
    assert words in errors[field]


def test_every_table_entry_is_a_vm_size() -> None:
    for sizes in VM_TABLE.values():
        assert all(vm.startswith("Standard_") for vm in sizes.values())


def test_configured_cluster_is_the_target_unless_a_vm_size_is_named() -> None:
    job = _build(_spec(compute={"accelerator": "H100", "accelerators_per_node": 8, "nodes": 2}), compute="gpu-a")
    assert job["compute"] == "gpu-a"
    assert job["resources"] == {"instance_count": 2}
    named = _build(_spec(compute={"instance_type": "Standard_ND96isr_H100_v5"}), compute="gpu-a")
    assert "compute" not in named and named["resources"]["instance_type"] == "Standard_ND96isr_H100_v5"


def test_multi_node_uses_a_pytorch_distribution_and_the_launcher_exports_ranks() -> None:
    job = _build(_spec(compute={"accelerator": "A100", "accelerators_per_node": 8, "nodes": 4}))
    assert job["resources"]["instance_count"] == 4
    assert job["distribution"] == {"type": "pytorch", "process_count_per_instance": 1}
    command = job["command"]
    assert "TRAIN_NUM_NODES=4" in command
    assert 'TRAIN_NODE_RANK="${NODE_RANK:-0}"' in command
    assert 'TRAIN_LEADER_ADDR="${MASTER_ADDR:-127.0.0.1}"' in command
    assert command.endswith("exec python train.py")
    assert "distribution" not in _build(_spec())


# ---- mounts, checkpoints, limits ----------------------------------------------------------------


def test_datastore_mounts_become_inputs_and_outputs_reaching_the_command() -> None:
    job = _build(_spec(storage_mounts=[
        {"source_uri": "azureml://datastores/data/paths/mnist", "read_only": True, "mount_path": "/mnt/data"},
        {"source_uri": "azureml://datastores/scratch/paths/out"},
    ]))
    assert job["inputs"]["mount_0"] == {"type": "uri_folder", "path": "azureml://datastores/data/paths/mnist",
                                        "mode": "ro_mount"}
    assert job["outputs"]["mount_1"] == {"type": "uri_folder", "path": "azureml://datastores/scratch/paths/out",
                                         "mode": "rw_mount"}
    assert 'export STORAGE_MOUNT_0_PATH="${{inputs.mount_0}}"' in job["command"]
    assert 'export STORAGE_MOUNT_1_PATH="${{outputs.mount_1}}"' in job["command"]
    assert 'ln -s "$STORAGE_MOUNT_0_PATH" /mnt/data' in job["command"]


def test_secret_values_go_into_environment_variables() -> None:
    built = to_azureml_command_job(_job(_spec(env={"HF_TOKEN": {"secret": "hf"}, "A": "1"})), prefix="train",
                                   secrets={"HF_TOKEN": "hf-value"})
    assert built.job["environment_variables"]["HF_TOKEN"] == "hf-value"
    assert built.job["environment_variables"]["A"] == "1"


def test_every_bad_field_is_named_in_one_error() -> None:
    errors = _errors(_spec(
        storage_mounts=[{"source_uri": "s3://b/data"}, {"source_uri": "gs://b/x"}, {"source_uri": "file:///d"},
                        {"source_uri": "/data"}, {"source_uri": "azureml://datastores/d/x"}],
        env={"HF_TOKEN": {"secret": "hf"}}, compute={"accelerator": "L40S"}, notify={"url": "https://example.com/h"},
    ))
    for n in range(5):
        assert f"storage_mounts[{n}].source_uri" in errors
    assert "s3://" in errors["storage_mounts[0].source_uri"] and "gs://" in errors["storage_mounts[1].source_uri"]
    assert "secret" in errors["env.HF_TOKEN"]
    assert "compute.accelerator" in errors and "notify" not in errors  # webhooks are Train's, on every backend


@pytest.mark.parametrize(
    ("native", "reason", "preempted"),
    [
        ("Failed", "The low priority node was preempted while the job ran", True),
        ("Failed", "Spot VM evicted", True),
        ("Failed", "exit code 1", False),
        ("Canceled", "preempted", False),
        ("Running", None, False),
    ],
)
def test_a_failed_job_whose_error_names_a_preemption_is_preempted(
    native: str, reason: str | None, preempted: bool
) -> None:
    update = from_azureml_status(native, event_time=T0, reason=reason, attempt=1)
    assert update.preempted is preempted


def test_checkpointing_is_an_output_and_load_checkpoint_an_input_of_the_earlier_job() -> None:
    earlier = new_id()
    job = _build(_spec(checkpointing={"enabled": True}, load_checkpoint={"job_id": earlier}), load_from=earlier)
    own = job["outputs"]["checkpoints"]
    assert own["mode"] == "rw_mount" and own["path"].startswith("azureml://datastores/workspaceblobstore/paths/train/")
    assert job["inputs"]["load_checkpoint"] == {
        "type": "uri_folder", "mode": "ro_mount",
        "path": f"azureml://datastores/workspaceblobstore/paths/train/{earlier}/checkpoints/",
    }
    assert 'TRAIN_CHECKPOINT_DIR="${{outputs.checkpoints}}"' in job["command"]
    assert 'TRAIN_LOAD_CHECKPOINT_DIR="${{inputs.load_checkpoint}}"' in job["command"]


def test_a_later_attempt_resumes_from_its_own_checkpoint_folder() -> None:
    job = _build(_spec(checkpointing={"enabled": True}), attempt=2)
    assert 'TRAIN_LOAD_CHECKPOINT_DIR="${{outputs.checkpoints}}"' in job["command"]
    assert job["name"].endswith("-2") and job["environment_variables"]["TRAIN_ATTEMPT"] == "2"


def test_runtime_spot_labels_and_identity() -> None:
    job = _build(_spec(max_runtime="1h30m", spot={"enabled": True}, labels={"team": "research"}, env={"A": "1"}))
    assert job["limits"] == {"timeout": 5400}
    assert job["queue_settings"] == {"job_tier": "spot"}
    assert job["tags"]["team"] == "research" and "train:job-id" in job["tags"]
    assert job["environment_variables"]["A"] == "1" and job["environment_variables"]["TRAIN_JOB_NAME"] == "mnist"
    assert job["experiment_name"] == "default" and job["display_name"] == "mnist"


def test_spot_needs_serverless_and_has_no_wait_limit() -> None:
    errors = _errors(_spec(spot={"enabled": True, "max_wait": "2h"}), compute="gpu-a")
    assert "gpu-a" in errors["spot.enabled"] and "max_pending" in errors["spot.max_wait"]


def test_backend_options_add_fields_but_never_replace_trains() -> None:
    job = _build(_spec(backend_options={"shm_size": "16g", "services": {"ssh": {"type": "ssh"}}}))
    assert job["shm_size"] == "16g" and job["services"] == {"ssh": {"type": "ssh"}}
    errors = _errors(_spec(backend_options={"command": "echo", "resources": {"instance_count": 3}}))
    assert set(errors) == {"backend_options.command", "backend_options.resources.instance_count"}
    mounts = [{"source_uri": "azureml://datastores/d/paths/p", "read_only": True}]
    extra = {"type": "uri_file", "path": "azureml://datastores/d/paths/f.csv"}
    job = _build(_spec(storage_mounts=mounts, backend_options={"inputs": {"labels": extra}}))
    assert set(job["inputs"]) == {"mount_0", "labels"}
    errors = _errors(_spec(storage_mounts=mounts, backend_options={"inputs": {"mount_0": {"mode": "download"}}}))
    assert set(errors) == {"backend_options.inputs.mount_0"}


# ---- the native shape ---------------------------------------------------------------------------


def _native(config: dict[str, Any], **fields: Any) -> NativeJobRequest:
    return NativeJobRequest.model_validate({"name": "mnist", "job_config": config, **fields})


def test_native_job_config_is_merged_with_trains_fields() -> None:
    job = _build(_native(
        {"command": "python train.py --data ${{inputs.mount_0}}", "environment": {"image": IMAGE},
         "resources": {"instance_type": "Standard_NC24ads_A100_v4", "instance_count": 1},
         "environment_variables": {"A": "1"}, "tags": {"k": "v"}},
        storage_mounts=[{"source_uri": "azureml://datastores/data/paths/mnist", "read_only": True}],
    ))
    assert job["name"].startswith("train-") and job["type"] == "command"
    assert job["environment"] == "azureml:train-pytorch:" + "ab" * 16
    assert job["inputs"]["mount_0"]["mode"] == "ro_mount"
    assert job["command"].endswith("; python train.py --data ${{inputs.mount_0}}")
    assert job["environment_variables"]["A"] == "1" and "TRAIN_JOB_ID" in job["environment_variables"]
    assert job["tags"]["k"] == "v" and "train:job-id" in job["tags"]


def test_native_job_config_problems_are_named_under_job_config() -> None:
    errors = _errors(_native(
        {"name": "mine", "environment": 3, "environment_variables": {"TRAIN_X": "1"},
         "inputs": {"mount_0": {"type": "uri_folder", "path": "azureml://datastores/a/paths/b"}}},
        storage_mounts=[{"source_uri": "azureml://datastores/d/paths/p", "read_only": True, "mount_path": "/m"}],
    ))
    assert {"job_config.name", "job_config.environment", "job_config.command",
            "job_config.environment_variables.TRAIN_X", "job_config.inputs.mount_0",
            "job_config.resources.instance_type", "storage_mounts[0].mount_path"} <= set(errors)


def test_native_job_takes_the_configured_cluster() -> None:
    job = _build(_native({"command": "python t.py", "environment": "azureml:mine:3"}), compute="gpu-a")
    assert job["compute"] == "gpu-a" and job["environment"] == "azureml:mine:3"


# ---- states -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("native", "status"), [
    ("NotStarted", Status.PENDING), ("Queued", Status.PENDING), ("Preparing", Status.PENDING),
    ("Provisioning", Status.PENDING), ("Starting", Status.PENDING), ("Running", Status.IN_PROGRESS),
    ("Finalizing", Status.IN_PROGRESS), ("CancelRequested", Status.IN_PROGRESS), ("Completed", Status.COMPLETED),
    ("completed", Status.COMPLETED), ("FAILED", Status.FAILED), ("Canceled", Status.CANCELED),
    ("NotFound", Status.FAILED), ("Paused", None), ("Unknown", None),
])
def test_status_table(native: str, status: Status | None) -> None:
    update = from_azureml_status(native, event_time=T0, attempt=1)
    assert update.status == status and update.native_status == native and update.event_time == T0


def test_a_timeout_breach_is_expired_and_a_requested_cancel_is_not() -> None:
    by_time = from_azureml_status("Canceled", event_time=T0, timeout_seconds=3600, run_seconds=3599)
    assert by_time.status == Status.EXPIRED and by_time.reason == "max_runtime exceeded"
    by_text = from_azureml_status("Canceled", event_time=T0, reason="Job exceeded the max run duration")
    assert by_text.status == Status.EXPIRED
    asked = from_azureml_status("Canceled", event_time=T0, timeout_seconds=60, run_seconds=60, cancel_requested=True)
    assert asked.status == Status.CANCELED
    early = from_azureml_status("Canceled", event_time=T0, timeout_seconds=3600, run_seconds=100)
    assert early.status == Status.CANCELED


# ---- Event Grid ---------------------------------------------------------------------------------


def _fixture(name: str) -> dict[str, Any]:
    events = json.loads((FIXTURES / name).read_text())
    return copy.deepcopy(events[0])


def _cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "type": event["eventType"], "source": event["topic"], "id": event["id"],
            "subject": event["subject"], "time": event["eventTime"], "data": event["data"]}


def test_fixtures_parse_in_both_schemas() -> None:
    changed, completed = _fixture("eventgrid_ml_run_status_changed.json"), _fixture("eventgrid_ml_run_completed.json")
    run = "AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5"
    assert from_eventgrid_event(changed) == (run, "failed")
    assert from_eventgrid_event(completed) == (run, "Completed")
    assert from_eventgrid_event(_cloudevent(changed)) == (run, "failed")
    assert from_eventgrid_event(_cloudevent(completed)) == (run, "Completed")


def test_capitalised_status_and_mapping_agree() -> None:
    event = _fixture("eventgrid_ml_run_status_changed.json")
    event["data"]["runStatus"] = "Failed"
    _, status = from_eventgrid_event(event) or ("", "")
    assert from_azureml_status(status, event_time=T0).status == Status.FAILED
    event["eventType"] = "microsoft.machinelearningservices.runstatuschanged"
    assert from_eventgrid_event(event) is not None


def test_workspace_filter() -> None:
    event = _fixture("eventgrid_ml_run_status_changed.json")
    event["topic"] = WS_TOPIC.format(ws="train-ws")
    assert from_eventgrid_event(event, workspace="train-ws") is not None
    assert from_eventgrid_event(event, workspace="Train-WS") is not None
    assert from_eventgrid_event(event, workspace="other-ws") is None
    assert from_eventgrid_event(_cloudevent(event), workspace="other-ws") is None


def test_run_id_falls_back_to_the_subject() -> None:
    event = _fixture("eventgrid_ml_run_status_changed.json")
    del event["data"]["runId"]
    assert from_eventgrid_event(event) == ("AutoML_ad912b2d-6467-4f32-a616-dbe4af6dd8fc_5", "failed")


@pytest.mark.parametrize("change", [
    lambda e: e.update(eventType="Microsoft.Storage.BlobCreated"),
    lambda e: e.update(eventType="Microsoft.EventGrid.SubscriptionValidationEvent"),
    lambda e: e.pop("eventType"),
    lambda e: e.update(data="not an object"),
    lambda e: e.update(data={"runStatus": "Failed"}, subject=""),
    lambda e: e["data"].update(runStatus=""),
    lambda e: e["data"].update(runStatus=7),
])
def test_other_and_malformed_events_are_none(change: Any) -> None:
    event = _fixture("eventgrid_ml_run_status_changed.json")
    change(event)
    assert from_eventgrid_event(event) is None


@pytest.mark.parametrize("event", [None, [], "text", 3])
def test_non_objects_are_none(event: Any) -> None:
    assert from_eventgrid_event(event) is None


def test_azure_times_with_seven_fractional_digits() -> None:
    assert parse_azure_time("2017-06-26T18:41:00.9584103Z") == datetime(2017, 6, 26, 18, 41, 0, 958410, tzinfo=UTC)
    assert parse_azure_time("2017-06-26T18:41:00Z") == datetime(2017, 6, 26, 18, 41, tzinfo=UTC)
    assert parse_azure_time("2017-06-26T20:41:00.5+02:00") == datetime(2017, 6, 26, 18, 41, 0, 500000, tzinfo=UTC)
    assert parse_azure_time("2017-06-26T18:41:00.1") == datetime(2017, 6, 26, 18, 41, 0, 100000, tzinfo=UTC)
    assert parse_azure_time("yesterday") is None and parse_azure_time(None) is None
    naive = datetime(2020, 1, 1)
    assert parse_azure_time(naive) == naive.replace(tzinfo=UTC)
    assert parse_azure_time(T0 + timedelta(hours=1)) == T0 + timedelta(hours=1)
