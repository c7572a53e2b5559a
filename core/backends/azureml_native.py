"""Building an Azure ML command job from the native shape (``POST /v1/azure-ml/jobs``): the
user's ``job_config``, in the command-job YAML field names, merged with Train's own fields. Pure:
returns the job and every problem found, named under ``job_config`` or ``storage_mounts``.
"""

from __future__ import annotations

from core.backends.azureml_request import (
    CHECKPOINT_OUTPUT,
    Built,
    Path,
    environment_ref,
    identity_env,
    launcher,
    mounts_of,
    tags,
)
from core.errors import FieldError
from core.model import RESERVED_ENV, JobRecord


def native_job(job: JobRecord, *, name: str, compute: str | None, datastore: str, prefix: str) -> Built:
    """``job_config`` (command-job YAML field names) with Train's own merged in: the job name, the
    default compute, mounts as inputs/outputs exported by a prefix of the user's command, the SPEC §5
    environment and tags. The user's command runs as given after that prefix."""
    del datastore  # the native shape names its own outputs
    config = dict((job.native_request or {}).get("job_config", {}))
    errors: list[FieldError] = []
    base: Path = ("job_config",)
    for key in ("name", "type"):
        if key in config and not (key == "type" and config[key] == "command"):
            why = ("Train names the job (<prefix>-<job id>-<attempt>) so retries find it; remove it" if key == "name"
                   else "Train submits command jobs; remove type or set it to command")
            errors.append(FieldError((*base, key), why))
        config.pop(key, None)
    image: str | None = None
    environment = config.get("environment")
    if environment is None:
        errors.append(FieldError((*base, "environment"),
                                 "required: azureml:<name>:<version>, or {image: <container image>}"))
    elif isinstance(environment, dict) and set(environment) == {"image"} and isinstance(environment["image"], str):
        image = job.image.resolved or environment["image"]
    elif not isinstance(environment, str):
        errors.append(FieldError((*base, "environment"),
                                 "give azureml:<name>:<version> or {image: <container image>}; Train registers "
                                 "the image as an Environment"))
    command = config.get("command")
    if not isinstance(command, str) or not command.strip():
        errors.append(FieldError((*base, "command"), "required: the shell command the job runs"))
        command = ""
    if "compute" not in config:
        resources = config.get("resources")
        if compute is not None:
            config["compute"] = compute
        elif not (isinstance(resources, dict) and resources.get("instance_type")):
            errors.append(FieldError((*base, "resources", "instance_type"),
                                     "serverless jobs need a VM size (e.g. Standard_NC24ads_A100_v4), or set compute"))

    mounts = mounts_of(job.storage_mounts, links=False)
    errors += mounts.errors
    for kind, own in (("inputs", mounts.inputs), ("outputs", mounts.outputs)):
        given = config.get(kind, {}) or {}
        if not isinstance(given, dict):
            continue  # the schema names it
        for clash in sorted(set(given) & set(own)):
            errors.append(FieldError((*base, kind, clash),
                                     "Train names the inputs and outputs of storage_mounts mount_<n>; rename this one"))
        if own:
            config[kind] = {**given, **own}

    env = config.get("environment_variables", {}) or {}
    if isinstance(env, dict):
        for var in env:
            if isinstance(var, str) and RESERVED_ENV.match(var):
                errors.append(FieldError((*base, "environment_variables", var), "collides with a variable Train sets"))
        config["environment_variables"] = {**env, **identity_env(job, None)}
    exports = dict(mounts.exports)
    outputs = config.get("outputs")
    if isinstance(outputs, dict) and CHECKPOINT_OUTPUT in outputs:
        exports["TRAIN_CHECKPOINT_DIR"] = f"${{{{outputs.{CHECKPOINT_OUTPUT}}}}}"
    prefix_cmd = launcher(exports, [], None, nodes=None)
    config["command"] = f"{prefix_cmd}; {command}" if prefix_cmd else command
    existing = config.get("tags")
    config["tags"] = tags(job, existing if isinstance(existing, dict) else None)
    config["type"] = "command"
    config["name"] = name
    config.setdefault("display_name", job.name)
    config.setdefault("experiment_name", job.project)
    if image is not None:
        config["environment"] = environment_ref(prefix, image)
    return Built(config, errors, image)
