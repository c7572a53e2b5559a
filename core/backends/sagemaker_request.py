"""Building CreateTrainingJob requests: the portable spec (SPEC §4) translated, or the native
``job_config`` merged with Train's own fields. Pure: each builder returns the request and every
problem found, as ``FieldError``s named after the field the user wrote.

SageMaker's limits and the instance table sit next to the rules that use them, with their source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.backends.options import merge_options
from core.backends.sagemaker_launcher import ARGV0, chunk, launcher_script
from core.backends.sagemaker_shapes import member_shape, request_errors, snake_path, to_pascal
from core.errors import FieldError
from core.model import RESERVED_ENV, Compute, JobRecord, JobSpec, SecretRef, StorageMount
from core.secrets.env import merge_env

Path = tuple[str | int, ...]

# Inside a SageMaker training container (SageMaker developer guide, "How Amazon SageMaker
# Provides Training Information"): channel data, the synced checkpoint dir, the cluster layout.
CHANNEL_ROOT = "/opt/ml/input/data"
CHECKPOINT_DIR = "/opt/ml/checkpoints"
LOAD_CHANNEL = "load_checkpoint"

# Limits of CreateTrainingJob, from botocore's sagemaker service-2.json (the API reference says
# the same). botocore checks only minimums before sending, so the maximums are checked here.
MAX_ENV_ENTRIES = 100  # Environment (TrainingEnvironmentMap): at most 100 entries
MAX_ENV_VALUE = 512  # TrainingEnvironmentValue: at most 512 characters
MAX_CONTAINER_ITEMS = 100  # ContainerEntrypoint / ContainerArguments: 1 to 100 items
MAX_CONTAINER_ITEM = 256  # each item (TrainingContainerEntrypointString / ...ArgumentString): ≤ 256 characters
MAX_CHANNELS = 20  # InputDataConfig: 1 to 20 channels
MAX_IMAGE = 255  # AlgorithmSpecification.TrainingImage: ≤ 255 characters
# StoppingCondition.MaxRuntimeInSeconds: "The default value is 1 day. The maximum value is 28 days."
DEFAULT_RUNTIME = 86400
MAX_RUNTIME = 28 * 86400
# ResourceConfig.VolumeSizeInGB is required; instances with NVMe instance storage ignore it.
DEFAULT_VOLUME_GB = 50

# Accelerator and GPUs per instance → SageMaker training instance type. GPU counts per instance
# from the Amazon EC2 accelerated-computing instance specifications; every type is in botocore's
# TrainingInstanceType enum (tests check it).
INSTANCE_TABLE: dict[str, dict[int, str]] = {
    "T4": {1: "ml.g4dn.xlarge", 4: "ml.g4dn.12xlarge"},
    "A10G": {1: "ml.g5.xlarge", 4: "ml.g5.12xlarge", 8: "ml.g5.48xlarge"},
    "L4": {1: "ml.g6.xlarge", 4: "ml.g6.12xlarge", 8: "ml.g6.48xlarge"},
    "L40S": {1: "ml.g6e.xlarge", 4: "ml.g6e.12xlarge", 8: "ml.g6e.48xlarge"},
    "A100": {8: "ml.p4d.24xlarge"},
    "A100_80GB": {8: "ml.p4de.24xlarge"},
    "H100": {1: "ml.p5.4xlarge", 8: "ml.p5.48xlarge"},
    "H200": {8: "ml.p5e.48xlarge"},  # ml.p5en.48xlarge (also 8 H200) through compute.instance_type
    "B200": {8: "ml.p6-b200.48xlarge"},
}
CPU_INSTANCE = "ml.m5.xlarge"  # accelerator "none": 4 vCPU, 16 GiB

@dataclass
class _Mounts:
    channels: list[dict[str, Any]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    checkpoint: dict[str, str] | None = None
    links: list[tuple[str, str]] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)


def instance_type_for(compute: Compute) -> tuple[str | None, list[FieldError]]:
    if compute.instance_type is not None:
        valid = member_shape("ResourceConfig", "InstanceType").enum
        if not compute.instance_type.startswith("ml.") or compute.instance_type not in valid:
            message = f"'{compute.instance_type}' is not a SageMaker training instance type (e.g. ml.p5.48xlarge)"
            return None, [FieldError(("compute", "instance_type"), message)]
        return compute.instance_type, []
    if compute.accelerator == "none":
        return CPU_INSTANCE, []
    sizes = INSTANCE_TABLE[compute.accelerator]
    count = compute.gpus_per_node
    if count not in sizes:
        valid_counts = ", ".join(str(n) for n in sorted(sizes))
        message = f"SageMaker offers {compute.accelerator} with {valid_counts} per instance, not {count}"
        return None, [FieldError(("compute", "accelerators_per_node"), message)]
    return sizes[count], []


def portable_request(
    job: JobRecord, *, name: str, role_arn: str, output_s3_uri: str, secrets: Mapping[str, str]
) -> tuple[dict[str, Any], list[FieldError]]:
    """``secrets``: the values of the spec's ``{secret: name}`` entries by variable. They go into
    ``Environment`` and count against its limits like any other value."""
    spec = JobSpec.model_validate(job.spec)
    out = output_s3_uri.rstrip("/")
    errors: list[FieldError] = []
    image = job.image.resolved or spec.image
    if not image:
        errors.append(FieldError(("image",), "SageMaker runs a container image: give image (an ECR image)"))
    elif len(image) > MAX_IMAGE:
        errors.append(FieldError(("image",), f"SageMaker takes image references of at most {MAX_IMAGE} characters"))
    instance_type, found = instance_type_for(spec.compute)
    errors += found
    stopping, found = _stopping(spec)
    errors += found

    checkpointing = spec.checkpointing.enabled
    mounts = _mounts(job.storage_mounts, rw_owner="checkpointing" if checkpointing else None, links=True)
    errors += mounts.errors
    env, found = merge_env(spec.env, secrets)
    errors += found
    for var, value in env.items():
        if len(value) > MAX_ENV_VALUE:
            ref = spec.env[var]
            what = f"the value of secret '{ref.secret}'" if isinstance(ref, SecretRef) else "this one"
            errors.append(FieldError(("env", var), f"SageMaker caps environment values at {MAX_ENV_VALUE} characters; "
                                                   f"{what} has {len(value)}"))
    own_env = _identity_env(job, spec.compute.gpus_per_node) | mounts.env
    channels = list(mounts.channels)
    checkpoint = mounts.checkpoint
    if checkpointing:
        checkpoint = {"S3Uri": f"{out}/{job.id}/checkpoints/", "LocalPath": CHECKPOINT_DIR}
        own_env["TRAIN_CHECKPOINT_DIR"] = CHECKPOINT_DIR
    if checkpointing and job.attempt > 1:
        own_env["TRAIN_LOAD_CHECKPOINT_DIR"] = CHECKPOINT_DIR  # SageMaker restores the synced prefix
    elif job.load_checkpoint_job_id:
        name_part = spec.load_checkpoint.name if spec.load_checkpoint else "latest"
        uri = f"{out}/{job.load_checkpoint_job_id}/checkpoints/" + ("" if name_part == "latest" else f"{name_part}/")
        channels.append(_channel(LOAD_CHANNEL, uri))
        own_env["TRAIN_LOAD_CHECKPOINT_DIR"] = f"{CHANNEL_ROOT}/{LOAD_CHANNEL}"
    if len(channels) > MAX_CHANNELS:
        errors.append(FieldError(("storage_mounts",), f"SageMaker takes at most {MAX_CHANNELS} input channels"))

    arguments, found = _arguments(spec)
    errors += found
    entrypoint, launcher_env = _entrypoint(launcher_script(mounts.links))
    own_env |= launcher_env
    if len(env) + len(own_env) > MAX_ENV_ENTRIES:
        errors.append(FieldError(("env",), (
            f"SageMaker takes at most {MAX_ENV_ENTRIES} environment entries and Train sets {len(own_env)} for this "
            f"job, so at most {MAX_ENV_ENTRIES - len(own_env)} of yours fit (you gave {len(env)})"
        )))
    if entrypoint is None:
        errors.append(FieldError(("storage_mounts",), "the mount paths make the launcher too long for SageMaker"))

    algorithm: dict[str, Any] = {"TrainingImage": image or "", "ContainerArguments": arguments}
    if entrypoint is not None:
        algorithm["ContainerEntrypoint"] = entrypoint
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": role_arn,
        "AlgorithmSpecification": algorithm,
        "ResourceConfig": {"InstanceType": instance_type or CPU_INSTANCE, "InstanceCount": spec.compute.nodes},
        "OutputDataConfig": {"S3OutputPath": f"{out}/{job.id}/output"},
        "StoppingCondition": stopping,
        "Environment": env | own_env,
        "Tags": _tags(job, []),
    }
    if channels:
        request["InputDataConfig"] = channels
    if checkpoint is not None:
        request["CheckpointConfig"] = checkpoint
    if spec.spot.enabled:
        request["EnableManagedSpotTraining"] = True
    # retries.on_preemption is Train's own: an Interrupted attempt is replaced by a new training job
    # (the next attempt) that restores the same CheckpointConfig prefix. SageMaker's RetryStrategy
    # (internal errors) stays available through backend_options.
    options, found = _options(spec.backend_options, request)
    errors += found
    algorithm.setdefault("TrainingInputMode", "File")
    request["ResourceConfig"].setdefault("VolumeSizeInGB", DEFAULT_VOLUME_GB)
    # botocore's checks: problems in what backend_options added are always named; the rest of the
    # request is Train's own, whose problems are reported above, so it is checked once those are fixed.
    clean = not errors
    for error in request_errors(request, ()):
        top = error.path[0] if error.path else None
        if top in options:
            errors.append(FieldError(("backend_options", *error.path), error.message))
        elif clean:
            errors.append(error)
    return request, errors


def _stopping(spec: JobSpec) -> tuple[dict[str, int], list[FieldError]]:
    errors: list[FieldError] = []
    runtime = int(spec.max_runtime.total_seconds()) if spec.max_runtime else DEFAULT_RUNTIME
    if runtime > MAX_RUNTIME:
        errors.append(FieldError(("max_runtime",), "SageMaker runs a training job for at most 28 days (28d)"))
    stopping = {"MaxRuntimeInSeconds": runtime}
    if spec.spot.enabled:
        # MaxWaitTimeInSeconds: spot wait plus run time; "must be equal to or greater than MaxRuntimeInSeconds".
        wait = int(spec.spot.max_wait.total_seconds()) if spec.spot.max_wait else runtime
        if wait < runtime:
            errors.append(FieldError(("spot", "max_wait"), "on SageMaker max_wait covers the run too: "
                                                           "it must be at least max_runtime (default 24h)"))
        stopping["MaxWaitTimeInSeconds"] = wait
    return stopping, errors


def _arguments(spec: JobSpec) -> tuple[list[str], list[FieldError]]:
    """The user's argv as ContainerArguments, each item named after the field it came from."""
    if spec.command is not None:
        argv = [*spec.command, *spec.args]
        fields: list[Path] = [("command", n) for n in range(len(spec.command))]
        fields += [("args", n) for n in range(len(spec.args))]
        whole: Path = ("args",) if spec.args else ("command",)
    else:
        argv = spec.entrypoint()
        fields = [("start_commands",)] * len(argv)
        whole = ("start_commands",)
    errors: list[FieldError] = []
    if len(argv) > MAX_CONTAINER_ITEMS:
        errors.append(FieldError(whole, f"SageMaker passes at most {MAX_CONTAINER_ITEMS} container arguments; "
                                        f"command and args have {len(argv)}"))
    for item, where in zip(argv, fields, strict=True):
        if len(item) > MAX_CONTAINER_ITEM:
            what = "joined with ' && ', the start commands are" if where == ("start_commands",) else "this item is"
            errors.append(FieldError(where, f"SageMaker caps each container argument at {MAX_CONTAINER_ITEM} "
                                            f"characters; {what} {len(item)}"))
    return argv, errors


def _entrypoint(script: str) -> tuple[list[str] | None, dict[str, str]]:
    """The launcher as ContainerEntrypoint: inline when it fits one item, otherwise carried in
    ``TRAIN_LAUNCHER_<i>`` environment entries of ≤ 512 characters and ``eval``ed."""
    if len(script) <= MAX_CONTAINER_ITEM:
        return ["/bin/sh", "-c", script, ARGV0], {}
    parts = chunk(script, MAX_ENV_VALUE)
    env = {f"TRAIN_LAUNCHER_{i}": part for i, part in enumerate(parts)}
    loader = 'eval "' + "".join(f"${{{name}}}" for name in env) + '"'
    if len(loader) > MAX_CONTAINER_ITEM:
        return None, env
    return ["/bin/sh", "-c", loader, ARGV0], env


def _identity_env(job: JobRecord, gpus_per_node: int | None) -> dict[str, str]:
    env = {
        "TRAIN_JOB_ID": job.id,
        "TRAIN_JOB_NAME": job.name,
        "TRAIN_PROJECT": job.project,
        "TRAIN_ATTEMPT": str(job.attempt),
    }
    if gpus_per_node is not None:
        env["TRAIN_GPUS_PER_NODE"] = str(gpus_per_node)
    return env


def _channel(name: str, uri: str) -> dict[str, Any]:
    source = {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": "FullyReplicated"}
    return {"ChannelName": name, "DataSource": {"S3DataSource": source}, "InputMode": "FastFile"}


def _mounts(mounts: list[StorageMount], *, rw_owner: str | None, links: bool) -> _Mounts:
    """Read-only ``s3://`` mounts become FastFile channels ``mount<n>``; one read-write mount
    becomes the job's CheckpointConfig (SageMaker's only synced read-write location)."""
    parts = _Mounts()
    for n, mount in enumerate(mounts):
        if mount.scheme != "s3":
            parts.errors.append(FieldError(("storage_mounts", n, "source_uri"), _scheme_message(mount.scheme)))
            continue
        if mount.read_only:
            local = f"{CHANNEL_ROOT}/mount{n}"
            parts.channels.append(_channel(f"mount{n}", mount.source_uri))
        elif rw_owner is not None:
            parts.errors.append(FieldError(("storage_mounts", n, "read_only"), (
                f"SageMaker syncs one read-write S3 location per job (CheckpointConfig) and {rw_owner} uses it; "
                "mount this one with read_only: true"
            )))
            continue
        else:
            local, rw_owner = CHECKPOINT_DIR, f"storage_mounts[{n}]"
            parts.checkpoint = {"S3Uri": mount.source_uri, "LocalPath": CHECKPOINT_DIR}
        parts.env[f"STORAGE_MOUNT_{n}_PATH"] = local
        if mount.mount_path and mount.mount_path != local:
            if links:
                parts.links.append((local, mount.mount_path))
            else:
                parts.errors.append(FieldError(("storage_mounts", n, "mount_path"), (
                    f"the native shape runs your own entrypoint, so this mount is at {local} "
                    f"(STORAGE_MOUNT_{n}_PATH); remove mount_path"
                )))
    return parts


def _scheme_message(scheme: str) -> str:
    if scheme == "gs":
        return "SageMaker mounts only s3:// URIs; gs:// is Google Cloud Storage (copy the data to S3)"
    if scheme == "azureml":
        return "SageMaker mounts only s3:// URIs; azureml:// is an Azure ML datastore (copy the data to S3)"
    return "SageMaker mounts only s3:// URIs; a path on this machine is not reachable from SageMaker (upload it to S3)"


def _tags(job: JobRecord, existing: list[Any]) -> list[Any]:
    own = [{"Key": "train:job-id", "Value": job.id}, {"Key": "train:project", "Value": job.project}]
    return [*existing, *({"Key": k, "Value": v} for k, v in job.labels.items()), *own]


def _options(options: dict[str, Any], request: dict[str, Any]) -> tuple[set[str], list[FieldError]]:
    """Merge ``backend_options`` (snake_case CreateTrainingJob fields) into ``request``: new
    members are added, anything Train already set is refused. Returns the option keys given."""
    if not options:
        return set(), []
    converted, errors = to_pascal(options, member_shape(), ("backend_options",))
    errors += merge_options(request, converted, field=lambda here: ("backend_options", *snake_path(here)))
    return set(options), errors


def native_request(
    job: JobRecord, *, name: str, role_arn: str, output_s3_uri: str
) -> tuple[dict[str, Any], list[FieldError]]:
    """``job_config`` (snake_case CreateTrainingJob fields) with Train's own merged in: the job
    name, the role and output path when absent, mounts as channels, the SPEC §5 environment and
    tags. The user's entrypoint runs as given, without the launcher."""
    body = job.native_request or {}
    request, errors = to_pascal(dict(body.get("job_config", {})), member_shape(), ("job_config",))
    if "TrainingJobName" in request:
        errors.append(FieldError(("job_config", "training_job_name"),
                                 "Train names the job (<prefix>-<job id>-<attempt>) so retries find it; remove it"))
    request["TrainingJobName"] = name
    request.setdefault("RoleArn", role_arn)
    request.setdefault("OutputDataConfig", {"S3OutputPath": f"{output_s3_uri.rstrip('/')}/{job.id}/output"})
    request.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": DEFAULT_RUNTIME})
    algorithm = request.get("AlgorithmSpecification")
    if not isinstance(algorithm, dict):
        errors.append(FieldError(("job_config", "algorithm_specification"),
                                 "required: {training_image, training_input_mode, ...}"))
    elif job.image.resolved:
        algorithm["TrainingImage"] = job.image.resolved
    resources = request.get("ResourceConfig")
    if isinstance(resources, dict):
        resources.setdefault("VolumeSizeInGB", DEFAULT_VOLUME_GB)
    if "ResourceConfig" not in request and "ServerlessJobConfig" not in request:
        errors.append(FieldError(("job_config", "resource_config"),
                                 "required: {instance_type, instance_count, volume_size_in_gb}"))

    has_checkpoint = isinstance(request.get("CheckpointConfig"), dict)
    mounts = _mounts(job.storage_mounts, rw_owner="job_config.checkpoint_config" if has_checkpoint else None,
                     links=False)
    errors += mounts.errors
    channels = request.get("InputDataConfig", [])
    if mounts.channels and isinstance(channels, list):
        taken = {c.get("ChannelName") for c in mounts.channels}
        for n, channel in enumerate(channels):
            if isinstance(channel, dict) and channel.get("ChannelName") in taken:
                errors.append(FieldError(("job_config", "input_data_config", n, "channel_name"),
                                         "Train names the channels of storage_mounts mount<n>; choose another name"))
        request["InputDataConfig"] = [*channels, *mounts.channels]
    if mounts.checkpoint is not None:
        request["CheckpointConfig"] = mounts.checkpoint

    env = request.get("Environment", {})
    if isinstance(env, dict):
        for var in env:
            if isinstance(var, str) and RESERVED_ENV.match(var):
                errors.append(FieldError(("job_config", "environment", var), "collides with a variable Train sets"))
        own = _identity_env(job, None) | mounts.env
        checkpoint = request.get("CheckpointConfig")
        if isinstance(checkpoint, dict):
            own["TRAIN_CHECKPOINT_DIR"] = str(checkpoint.get("LocalPath") or CHECKPOINT_DIR)
        request["Environment"] = {**env, **own}
    tags = request.get("Tags", [])
    if isinstance(tags, dict):  # {key: value}, as labels are written
        tags = [{"Key": k, "Value": v} for k, v in tags.items()]
    request["Tags"] = _tags(job, tags if isinstance(tags, list) else [tags])
    named = {e.field for e in errors}
    errors += [e for e in request_errors(request, ("job_config",)) if e.field not in named]
    return request, errors
