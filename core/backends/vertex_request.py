"""Building ``CustomJob`` requests: the portable spec (SPEC §4) translated, or the native
``job_config`` (a snake_case ``CustomJobSpec``) with Train's own fields merged in. Pure: each
builder returns the request as a snake_case dict (durations as ``"3600s"``, enums by name, the
form ``json_format.ParseDict`` takes) and every problem found, named after the field the user wrote.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from core.backends.options import merge_options
from core.backends.vertex_launcher import fuse_path, launcher_command, launcher_script
from core.backends.vertex_machines import machine_for
from core.backends.vertex_shapes import shape_errors
from core.errors import FieldError
from core.model import RESERVED_ENV, JobRecord, JobSpec, StorageMount
from core.secrets.env import merge_env

Path = tuple[str | int, ...]

# Our job id and attempt ride on every CustomJob as labels: Vertex AI assigns the job id itself,
# so a retried submit lists jobs by these labels to find one a lost call created. Label keys and
# values: ≤ 63 characters of lowercase letters, digits, "_" and "-", keys starting with a letter;
# at most 64 labels per resource (CustomJob.labels in the Vertex AI API reference).
LABEL_JOB_ID = "train-job-id"
LABEL_ATTEMPT = "train-attempt"
# With base_output_directory set, Vertex exports AIP_CHECKPOINT_DIR = <base_output_directory>/checkpoints/
# (CustomJobSpec.base_output_directory in the Vertex AI API reference).
CHECKPOINTS = "checkpoints"
# "The first worker pool [...] must have a replica count of 1" (Vertex AI docs, "Configure
# distributed training": workerPoolSpecs[0] is the primary replica).
PRIMARY_REPLICAS = 1


def output_uri(staging: str, prefix: str, job_id: str, attempt: int) -> str:
    """``gs://<bucket>[/<path>]/<prefix>/<job id>/attempt-<n>/``: the attempt's base_output_directory."""
    return f"{job_dir(staging, prefix, job_id)}attempt-{attempt}/"


def job_dir(staging: str, prefix: str, job_id: str) -> str:
    return f"{staging.rstrip('/')}/{prefix}/{job_id}/"


def display_name(prefix: str, job_id: str, attempt: int) -> str:
    return f"{prefix}-{job_id}-{attempt}"


def portable_job(
    job: JobRecord, *, prefix: str, staging: str, service_account: str | None, secrets: Mapping[str, str]
) -> tuple[dict[str, Any], list[FieldError]]:
    """``secrets``: the values of the spec's ``{secret: name}`` entries by variable, which go into
    every pool's ``container_spec.env``."""
    spec = JobSpec.model_validate(job.spec)
    errors: list[FieldError] = []
    image = job.image.resolved or spec.image
    if not image:
        message = "Vertex AI runs a container image: give image (an Artifact Registry image)"
        errors.append(FieldError(("image",), message))
    machine, found = machine_for(spec.compute)
    errors += found
    env, found = merge_env(spec.env, secrets)
    errors += found
    mount_env, links, found = _mounts(job.storage_mounts, links=True)
    errors += found

    own_env = _identity_env(job) | {
        "TRAIN_GPUS_PER_NODE": str(spec.compute.gpus_per_node), "TRAIN_NUM_NODES": str(spec.compute.nodes),
    } | mount_env
    checkpointing = spec.checkpointing.enabled
    load_dir: str | None = None
    load_name = None
    if checkpointing and job.attempt > 1:  # a resubmitted attempt resumes from the one before
        own_env["TRAIN_LOAD_CHECKPOINT_DIR"] = fuse_path(output_uri(staging, prefix, job.id, job.attempt - 1)
                                                         + CHECKPOINTS)
    elif job.load_checkpoint_job_id:
        load_dir = fuse_path(job_dir(staging, prefix, job.load_checkpoint_job_id))
        wanted = spec.load_checkpoint.name if spec.load_checkpoint else "latest"
        load_name = None if wanted == "latest" else wanted
    script = launcher_script(links=links, checkpointing=checkpointing, load_job_dir=load_dir, load_name=load_name)
    container = {
        "image_uri": image or "",
        "command": launcher_command(script),
        "args": spec.entrypoint(),
        "env": [{"name": k, "value": v} for k, v in (env | own_env).items()],
    }
    machine_spec = machine.to_spec() if machine is not None else {}
    pools: list[dict[str, Any]] = [
        {"machine_spec": machine_spec, "replica_count": PRIMARY_REPLICAS, "container_spec": container}
    ]
    if spec.compute.nodes > 1:
        pools.append({"machine_spec": dict(machine_spec), "replica_count": spec.compute.nodes - 1,
                      "container_spec": copy.deepcopy(container)})
    job_spec: dict[str, Any] = {"worker_pool_specs": pools}
    scheduling: dict[str, Any] = {}
    if spec.max_runtime is not None:
        scheduling["timeout"] = _seconds(spec.max_runtime.total_seconds())
    if spec.spot.enabled:
        scheduling["strategy"] = "SPOT"
        if spec.spot.max_wait is not None:
            # Scheduling.max_wait_duration: how long the job may wait for resources to be provisioned.
            scheduling["max_wait_duration"] = _seconds(spec.spot.max_wait.total_seconds())
    if scheduling:
        job_spec["scheduling"] = scheduling
    if checkpointing:
        job_spec["base_output_directory"] = {"output_uri_prefix": output_uri(staging, prefix, job.id, job.attempt)}
    if service_account:
        job_spec["service_account"] = service_account
    options = _options(spec.backend_options, job_spec)
    custom_job = {"display_name": display_name(prefix, job.id, job.attempt), "labels": _labels(job, errors),
                  "job_spec": job_spec}
    if not errors and not options:
        errors += shape_errors(custom_job, "CustomJob", ())
    return custom_job, errors + options


def native_job(
    job: JobRecord, *, prefix: str, staging: str, service_account: str | None
) -> tuple[dict[str, Any], list[FieldError]]:
    """``job_config`` as given (the user's entrypoint runs without the launcher), plus the SPEC §5
    environment in every container, ``gs://`` mounts through Cloud Storage FUSE, a default
    ``base_output_directory`` and the labels that lead back to our job."""
    body = job.native_request or {}
    config = body.get("job_config", {})
    errors = shape_errors(config, "CustomJobSpec", ("job_config",))
    job_spec: dict[str, Any] = copy.deepcopy(config) if not errors else {}
    pools = job_spec.get("worker_pool_specs")
    if not errors and not pools:
        errors.append(FieldError(("job_config", "worker_pool_specs"),
                                 "required: [{machine_spec, replica_count, container_spec}]"))
    output = job_spec.setdefault(
        "base_output_directory", {"output_uri_prefix": output_uri(staging, prefix, job.id, job.attempt)}
    )
    mount_env, _, found = _mounts(job.storage_mounts, links=False)
    errors += found
    own_env = _identity_env(job) | mount_env
    prefix_uri = str(output.get("output_uri_prefix", ""))
    if prefix_uri.startswith("gs://"):
        own_env["TRAIN_CHECKPOINT_DIR"] = fuse_path(prefix_uri.rstrip("/") + "/" + CHECKPOINTS)
    for n, pool in enumerate(pools or []):
        errors += _native_pool(pool, ("job_config", "worker_pool_specs", n), own_env, primary=n == 0)
    if service_account:
        job_spec.setdefault("service_account", service_account)
    custom_job = {"display_name": display_name(prefix, job.id, job.attempt), "labels": _labels(job, errors),
                  "job_spec": job_spec}
    if not errors:
        errors += shape_errors(custom_job, "CustomJob", ())
    return custom_job, errors


def _native_pool(pool: dict[str, Any], where: Path, own_env: dict[str, str], *, primary: bool) -> list[FieldError]:
    if not pool:
        return []  # an empty pool placeholder keeps the numbering of the pools after it
    errors: list[FieldError] = []
    if not pool.get("machine_spec", {}).get("machine_type"):
        errors.append(FieldError((*where, "machine_spec", "machine_type"), "required, e.g. a3-highgpu-8g"))
    if primary and pool.get("replica_count", PRIMARY_REPLICAS) != PRIMARY_REPLICAS:
        errors.append(FieldError((*where, "replica_count"), "Vertex AI runs exactly one replica in the first "
                                                            "worker pool; put the others in a second pool"))
    programs = [k for k in ("container_spec", "python_package_spec") if k in pool]
    if not programs:
        errors.append(FieldError((*where, "container_spec"), "required: {image_uri, command, args}"))
    elif "container_spec" in pool and not pool["container_spec"].get("image_uri"):
        errors.append(FieldError((*where, "container_spec", "image_uri"), "required"))
    for kind in programs:
        env = pool[kind].setdefault("env", [])
        for n, item in enumerate(env):
            if RESERVED_ENV.match(str(item.get("name", ""))):
                errors.append(FieldError((*where, kind, "env", n, "name"), "collides with a variable Train sets"))
        env += [{"name": k, "value": v} for k, v in own_env.items()]
    return errors


def _identity_env(job: JobRecord) -> dict[str, str]:
    return {"TRAIN_JOB_ID": job.id, "TRAIN_JOB_NAME": job.name, "TRAIN_PROJECT": job.project,
            "TRAIN_ATTEMPT": str(job.attempt)}


Links = list[tuple[str, str]]


def _mounts(mounts: list[StorageMount], *, links: bool) -> tuple[dict[str, str], Links, list[FieldError]]:
    """``gs://`` mounts are read through Cloud Storage FUSE, which Vertex AI mounts for every
    bucket the job's service account can read, at ``/gcs/<bucket>/<path>``. A ``mount_path`` is
    made a symlink by the launcher; FUSE mounts are writable whatever ``read_only`` says."""
    env: dict[str, str] = {}
    made: Links = []
    errors: list[FieldError] = []
    for n, mount in enumerate(mounts):
        if mount.scheme != "gs":
            errors.append(FieldError(("storage_mounts", n, "source_uri"), _scheme_message(mount.scheme)))
            continue
        local = fuse_path(mount.source_uri)
        env[f"STORAGE_MOUNT_{n}_PATH"] = local
        if mount.mount_path and mount.mount_path != local:
            if links:
                made.append((local, mount.mount_path))
            else:
                errors.append(FieldError(("storage_mounts", n, "mount_path"), (
                    f"the native shape runs your own entrypoint, so this mount is at {local} "
                    f"(STORAGE_MOUNT_{n}_PATH); remove mount_path"
                )))
    return env, made, errors


def _scheme_message(scheme: str) -> str:
    if scheme == "s3":
        return "Vertex AI mounts only gs:// URIs; s3:// is Amazon S3 (copy the data to Cloud Storage)"
    if scheme == "azureml":
        return "Vertex AI mounts only gs:// URIs; azureml:// is an Azure ML datastore (copy the data to Cloud Storage)"
    return "Vertex AI mounts only gs:// URIs; a path on this machine is not reachable from Vertex AI " \
           "(upload it to Cloud Storage)"


def _labels(job: JobRecord, errors: list[FieldError]) -> dict[str, str]:
    own = {LABEL_JOB_ID: job.id, LABEL_ATTEMPT: str(job.attempt)}
    for key in job.labels:
        if key in own:
            errors.append(FieldError(("labels", key), "Train sets this label to find the job again; use another key"))
    return {**job.labels, **own}


def _options(options: dict[str, Any], job_spec: dict[str, Any]) -> list[FieldError]:
    """Merge ``backend_options`` (snake_case CustomJobSpec fields) into ``job_spec``: new members
    are added, anything Train already set is refused."""
    if not options:
        return []
    errors = shape_errors(options, "CustomJobSpec", ("backend_options",))
    if not errors:
        errors += merge_options(job_spec, copy.deepcopy(options))
    return errors


def _seconds(value: float) -> str:
    return f"{int(value)}s"
