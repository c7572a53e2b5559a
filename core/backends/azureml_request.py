"""Building Azure ML command jobs: the portable spec (SPEC §4) translated, or the native
``job_config`` merged with Train's own fields. Pure: each builder returns the job in the
command-job YAML field names (``command``, ``environment``, ``compute``, ``resources``,
``distribution``, ``inputs``, ``outputs``, ``limits``, ``environment_variables``, ``queue_settings``,
``tags``) and every problem found, as ``FieldError``s named after the field the user wrote.
The SDK's own schema checks the result afterwards (``azureml_schema``).

Azure ML's rules and the VM size table sit next to the code that uses them, with their source.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.backends.options import merge_options
from core.errors import FieldError
from core.model import Compute, JobRecord, JobSpec, StorageMount
from core.secrets.env import merge_env

Path = tuple[str | int, ...]

# Accelerator and GPUs per VM → Azure VM size for serverless jobs (resources.instance_type). GPU
# counts from the Azure VM sizes documentation, GPU accelerated series NCasT4_v3, NVadsA10_v5,
# NC_A100_v4, ND_A100_v4, NDm_A100_v4, NC_H100_v5 (NCads/NCCadsH100), ND_H100_v5 and ND_H200_v5.
# Azure has no A10G: the NVadsA10_v5 sizes carry the A10 (same GA102 chip, 24 GB), and only the
# whole-GPU sizes are listed (the smaller ones are GPU partitions). The NC_A100_v4 sizes carry the
# 80 GB PCIe A100, so they serve a 40 GB request as well. No L4, L40S or B200 size is offered to
# Azure ML training in this table; compute.instance_type names any other size.
VM_TABLE: dict[str, dict[int, str]] = {
    "T4": {1: "Standard_NC4as_T4_v3", 4: "Standard_NC64as_T4_v3"},
    "A10G": {1: "Standard_NV36ads_A10_v5", 2: "Standard_NV72ads_A10_v5"},
    "A100": {1: "Standard_NC24ads_A100_v4", 2: "Standard_NC48ads_A100_v4", 4: "Standard_NC96ads_A100_v4",
             8: "Standard_ND96asr_v4"},
    "A100_80GB": {1: "Standard_NC24ads_A100_v4", 2: "Standard_NC48ads_A100_v4", 4: "Standard_NC96ads_A100_v4",
                  8: "Standard_ND96amsr_A100_v4"},
    "H100": {1: "Standard_NC40ads_H100_v5", 2: "Standard_NC80adis_H100_v5", 8: "Standard_ND96isr_H100_v5"},
    "H200": {8: "Standard_ND96isr_H200_v5"},
}
CPU_VM = "Standard_DS3_v2"  # accelerator "none": 4 vCPU, 14 GiB
VM_SIZE = re.compile(r"^Standard_[A-Za-z0-9_]{1,60}$")  # Azure VM size names: Standard_<family><size>_<version>

# Input and output names in a command job: letters, digits and '_', starting with a letter or '_'
# (CLI v2 command job YAML reference, "inputs" / "outputs" keys); Train's own are below.
MOUNT_NAME = "mount_{n}"
CHECKPOINT_OUTPUT = "checkpoints"
LOAD_INPUT = "load_checkpoint"
DATASTORE_URI = re.compile(r"^azureml://datastores/([A-Za-z0-9_]+)/paths/(.+)$")

TRAIN_FIELDS = frozenset({
    "type", "name", "display_name", "experiment_name", "command", "environment", "compute", "resources",
    "distribution", "inputs", "outputs", "limits", "environment_variables", "queue_settings", "tags",
})


# Environment asset names: letters, digits, '-', '_' and '.', starting with a letter or digit (CLI v2
# environment YAML reference). Train keeps names short and versions at 32 hex digits of the digest.
_NOT_NAME = re.compile(r"[^a-z0-9_-]+")


@dataclass
class Built:
    job: dict[str, Any]
    errors: list[FieldError] = field(default_factory=list)
    image: str | None = None  # to register as the job's Environment; None when the job names its own


def environment_asset(prefix: str, image: str) -> tuple[str, str]:
    """``(name, version)`` of the Environment that runs ``image``: named after the repository and
    versioned by the image's digest, so each digest is registered once and reused. A reference
    without a digest is keyed by the hash of the reference itself."""
    repo, at, digest = image.partition("@")
    if at and digest.startswith("sha256:") and len(digest) > 7:
        version = digest.removeprefix("sha256:")[:32]
    else:
        version = hashlib.sha256(image.encode()).hexdigest()[:32]
    last = repo.rsplit("/", 1)[-1].split(":", 1)[0].lower()
    name = f"{prefix}-{_NOT_NAME.sub('-', last).strip('-_') or 'image'}"[:64].rstrip("-_")
    return name, version


def environment_ref(prefix: str, image: str) -> str:
    name, version = environment_asset(prefix, image)
    return f"azureml:{name}:{version}"


def checkpoint_uri(datastore: str, prefix: str, job_id: str) -> str:
    """Where a job's checkpoints live, per job (not per attempt), so a later attempt or job reads them."""
    return f"azureml://datastores/{datastore}/paths/{prefix}/{job_id}/checkpoints/"


def vm_size_for(compute: Compute) -> tuple[str | None, list[FieldError]]:
    if compute.instance_type is not None:
        if not VM_SIZE.match(compute.instance_type):
            message = f"'{compute.instance_type}' is not an Azure VM size (e.g. Standard_ND96isr_H100_v5)"
            return None, [FieldError(("compute", "instance_type"), message)]
        return compute.instance_type, []
    if compute.accelerator == "none":
        return CPU_VM, []
    sizes = VM_TABLE.get(compute.accelerator)
    if sizes is None:
        message = (f"Train has no Azure VM size with {compute.accelerator} GPUs; choose one of "
                   f"{', '.join(VM_TABLE)} or name a VM size in compute.instance_type")
        return None, [FieldError(("compute", "accelerator"), message)]
    count = compute.gpus_per_node
    if count not in sizes:
        valid = ", ".join(str(n) for n in sorted(sizes))
        message = f"Azure offers {compute.accelerator} VMs with {valid} GPUs, not {count}"
        return None, [FieldError(("compute", "accelerators_per_node"), message)]
    return sizes[count], []


def identity_env(job: JobRecord, gpus_per_node: int | None) -> dict[str, str]:
    env = {"TRAIN_JOB_ID": job.id, "TRAIN_JOB_NAME": job.name, "TRAIN_PROJECT": job.project,
           "TRAIN_ATTEMPT": str(job.attempt)}
    if gpus_per_node is not None:
        env["TRAIN_GPUS_PER_NODE"] = str(gpus_per_node)
    return env


def tags(job: JobRecord, existing: dict[str, Any] | None = None) -> dict[str, str]:
    own = {"train:job-id": job.id, "train:project": job.project}
    return {**{str(k): str(v) for k, v in (existing or {}).items()}, **job.labels, **own}


@dataclass
class _Mounts:
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    exports: dict[str, str] = field(default_factory=dict)  # variable → ${{inputs.x}} / ${{outputs.x}}
    links: list[tuple[str, str]] = field(default_factory=list)
    errors: list[FieldError] = field(default_factory=list)


def mounts_of(mounts: list[StorageMount], *, links: bool) -> _Mounts:
    """``azureml://datastores/<ds>/paths/<p>`` mounts: read-only ones as ``ro_mount`` inputs, the
    others as ``rw_mount`` outputs, each named ``mount_<n>``; their paths reach the job through the
    command (Azure ML substitutes ``${{inputs.mount_<n>}}`` only there)."""
    parts = _Mounts()
    for n, mount in enumerate(mounts):
        if mount.scheme != "azureml" or not DATASTORE_URI.match(mount.source_uri):
            parts.errors.append(FieldError(("storage_mounts", n, "source_uri"), _scheme_message(mount)))
            continue
        name = MOUNT_NAME.format(n=n)
        if mount.read_only:
            parts.inputs[name] = {"type": "uri_folder", "path": mount.source_uri, "mode": "ro_mount"}
            ref = f"${{{{inputs.{name}}}}}"
        else:
            parts.outputs[name] = {"type": "uri_folder", "path": mount.source_uri, "mode": "rw_mount"}
            ref = f"${{{{outputs.{name}}}}}"
        parts.exports[f"STORAGE_MOUNT_{n}_PATH"] = ref
        if mount.mount_path:
            if links:
                parts.links.append((f"STORAGE_MOUNT_{n}_PATH", mount.mount_path))
            else:
                parts.errors.append(FieldError(("storage_mounts", n, "mount_path"), (
                    f"Azure ML chooses the mount point; your command finds it in STORAGE_MOUNT_{n}_PATH "
                    "(or ${{inputs." + name + "}}); remove mount_path"
                )))
    return parts


def _scheme_message(mount: StorageMount) -> str:
    if mount.scheme == "s3":
        return "Azure ML mounts azureml://datastores/<datastore>/paths/<path> URIs; s3:// is Amazon S3 (register " \
               "the data in an Azure ML datastore)"
    if mount.scheme == "gs":
        return "Azure ML mounts azureml://datastores/<datastore>/paths/<path> URIs; gs:// is Google Cloud Storage " \
               "(register the data in an Azure ML datastore)"
    if mount.scheme == "azureml":
        return "write Azure ML datastore paths as azureml://datastores/<datastore>/paths/<path>"
    return "Azure ML mounts azureml://datastores/<datastore>/paths/<path> URIs; a path on this machine is not " \
           "reachable from Azure ML (upload it to a datastore)"


def launcher(exports: dict[str, str], links: list[tuple[str, str]], argv: list[str] | None, *,
             nodes: int | None) -> str:
    """The shell prefix of the command (SPEC §5). The PyTorch distribution runs one process per
    node and sets ``NODE_RANK`` and ``MASTER_ADDR`` (Azure ML docs, "Distributed GPU training
    guide"); the launcher exports them under Train's names, the mount paths Azure ML substituted,
    links requested mount paths, then ``exec``s the user's argv so it receives SIGTERM itself."""
    parts: list[str] = []
    if nodes is not None:
        parts.append(f'export TRAIN_NUM_NODES={nodes} TRAIN_NODE_RANK="${{NODE_RANK:-0}}" '
                     f'TRAIN_LEADER_ADDR="${{MASTER_ADDR:-127.0.0.1}}"')
    parts += [f'export {var}="{ref}"' for var, ref in exports.items()]
    for var, path in links:
        parent = shlex.quote(path.rsplit("/", 1)[0] or "/")
        parts.append(f'[ -e {shlex.quote(path)} ] || {{ mkdir -p {parent} 2>/dev/null; '
                     f'ln -s "${var}" {shlex.quote(path)} 2>/dev/null; }}')
    if argv is not None:
        parts.append("exec " + shlex.join(argv))
    return "; ".join(parts)


def portable_job(
    job: JobRecord, *, name: str, compute: str | None, datastore: str, prefix: str, secrets: Mapping[str, str]
) -> Built:
    """``secrets``: the values of the spec's ``{secret: name}`` entries by variable, which go into
    ``environment_variables``."""
    spec = JobSpec.model_validate(job.spec)
    errors: list[FieldError] = []
    image = job.image.resolved or spec.image
    if not image:
        errors.append(FieldError(("image",), "an Azure ML command job runs a container image: give image"))
    resources: dict[str, Any] = {"instance_count": spec.compute.nodes}
    target = None if spec.compute.instance_type else compute
    if target is None:
        vm, found = vm_size_for(spec.compute)
        errors += found
        resources["instance_type"] = vm or CPU_VM
    if spec.spot.enabled and target is not None:
        errors.append(FieldError(("spot", "enabled"), (
            f"this deployment runs Azure ML jobs on compute cluster '{target}', whose VM priority is its own; "
            "spot applies to serverless jobs (set compute.instance_type)"
        )))
    if spec.spot.max_wait is not None:
        errors.append(FieldError(("spot", "max_wait"), "Azure ML has no spot wait limit; use max_pending instead"))

    mounts = mounts_of(job.storage_mounts, links=True)
    errors += mounts.errors
    env, found = merge_env(spec.env, secrets)
    errors += found
    exports = dict(mounts.exports)
    inputs, outputs = dict(mounts.inputs), dict(mounts.outputs)
    if spec.checkpointing.enabled:
        outputs[CHECKPOINT_OUTPUT] = {"type": "uri_folder", "mode": "rw_mount",
                                      "path": checkpoint_uri(datastore, prefix, job.id)}
        exports["TRAIN_CHECKPOINT_DIR"] = f"${{{{outputs.{CHECKPOINT_OUTPUT}}}}}"
    if spec.checkpointing.enabled and job.attempt > 1:
        exports["TRAIN_LOAD_CHECKPOINT_DIR"] = exports["TRAIN_CHECKPOINT_DIR"]  # the same folder persists
    elif job.load_checkpoint_job_id:
        name_part = spec.load_checkpoint.name if spec.load_checkpoint else "latest"
        path = checkpoint_uri(datastore, prefix, job.load_checkpoint_job_id)
        inputs[LOAD_INPUT] = {"type": "uri_folder", "mode": "ro_mount",
                              "path": path + ("" if name_part == "latest" else f"{name_part}/")}
        exports["TRAIN_LOAD_CHECKPOINT_DIR"] = f"${{{{inputs.{LOAD_INPUT}}}}}"

    out: dict[str, Any] = {
        "type": "command",
        "name": name,
        "display_name": job.name,
        "experiment_name": job.project,
        "command": launcher(exports, mounts.links, spec.entrypoint(), nodes=spec.compute.nodes),
        "environment": environment_ref(prefix, image or "missing"),
        "environment_variables": env | identity_env(job, spec.compute.gpus_per_node),
        "resources": resources,
        "tags": tags(job),
    }
    if target is not None:
        out["compute"] = target
    if spec.compute.nodes > 1:
        out["distribution"] = {"type": "pytorch", "process_count_per_instance": 1}
    if inputs:
        out["inputs"] = inputs
    if outputs:
        out["outputs"] = outputs
    if spec.max_runtime is not None:
        out["limits"] = {"timeout": int(spec.max_runtime.total_seconds())}
    if spec.spot.enabled:
        out["queue_settings"] = {"job_tier": "spot"}
    # New inputs and outputs may be added; Train's own are not changed.
    errors += merge_options(
        out, spec.backend_options, sealed=lambda here: len(here) > 1 and here[0] in ("inputs", "outputs")
    )
    return Built(out, errors, image)


