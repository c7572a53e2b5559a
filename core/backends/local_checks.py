"""What the local backend refuses at submission, before any process starts (SPEC §4: a feature
the backend lacks is a 422 naming the field). Reads the file system only to see that paths exist;
``{secret: name}`` entries are checked against the secret store by the backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core.backends.local_state import mount_local_path
from core.durations import parse_duration
from core.errors import FieldError
from core.model import ENV_NAME, RESERVED_ENV, JobSpec, NativeJobRequest, StorageMount

MAX_STOP_GRACE = 3600
BACKEND_OPTIONS = ("working_dir", "stop_grace_seconds")
JOB_CONFIG_KEYS = ("command", "args", "env", "working_dir", "max_runtime")


def spec_errors(spec: JobSpec, *, gpus_available: Callable[[], int]) -> list[FieldError]:
    errors: list[FieldError] = []
    compute = spec.compute
    if compute.nodes > 1:
        errors.append(FieldError(("compute", "nodes"), "the local backend runs one node"))
    wanted = compute.gpus_per_node
    if wanted:
        have = gpus_available()
        if wanted > have:
            where = "accelerators_per_node" if compute.accelerators_per_node is not None else "accelerator"
            errors.append(FieldError(
                ("compute", where), f"{wanted} {compute.accelerator} GPU(s) requested; this machine has {have}"
            ))
    if spec.spot.enabled:
        errors.append(FieldError(("spot", "enabled"), "spot capacity is not available on the local backend"))
    errors += mount_errors(spec.storage_mounts)
    errors += _option_errors(spec.backend_options)
    return errors


def _option_errors(options: Mapping[str, Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    for key, value in options.items():
        path = ("backend_options", key)
        if key == "working_dir":
            errors += _dir_errors(path, value)
        elif key == "stop_grace_seconds":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_STOP_GRACE:
                errors.append(FieldError(path, f"must be a number of seconds from 0 to {MAX_STOP_GRACE}"))
        else:
            allowed = ", ".join(BACKEND_OPTIONS)
            errors.append(FieldError(path, f"unknown option for the local backend (allowed: {allowed})"))
    return errors


def _dir_errors(path: tuple[str | int, ...], value: object) -> list[FieldError]:
    if not isinstance(value, str) or not value.startswith("/"):
        return [FieldError(path, "must be an absolute path")]
    if not Path(value).is_dir():
        return [FieldError(path, f"directory {value} does not exist")]
    return []


def mount_errors(mounts: list[StorageMount]) -> list[FieldError]:
    errors: list[FieldError] = []
    for n, mount in enumerate(mounts):
        path = ("storage_mounts", n, "source_uri")
        local = mount_local_path(mount.source_uri)
        if local is None:
            errors.append(FieldError(
                path, f"the local backend mounts only file:// URIs and absolute paths, not {mount.scheme}://"
            ))
        elif not Path(local).exists():
            errors.append(FieldError(path, f"{local} does not exist on this machine"))
    return errors


def native_errors(request: NativeJobRequest) -> list[FieldError]:
    """``job_config`` for local: ``{command, args, env, working_dir, max_runtime}``."""
    config = request.job_config
    errors: list[FieldError] = []
    for key in config:
        if key not in JOB_CONFIG_KEYS:
            allowed = ", ".join(JOB_CONFIG_KEYS)
            errors.append(FieldError(("job_config", key), f"unknown field for the local backend (allowed: {allowed})"))
    if "command" not in config:
        errors.append(FieldError(("job_config", "command"), 'required: the argv to run, e.g. ["python", "train.py"]'))
    elif not _str_list(config["command"]) or not config["command"]:
        errors.append(FieldError(("job_config", "command"), "must be a non-empty list of strings"))
    if "args" in config and not _str_list(config["args"]):
        errors.append(FieldError(("job_config", "args"), "must be a list of strings"))
    if "env" in config:
        errors += _env_errors(config["env"])
    if "working_dir" in config:
        errors += _dir_errors(("job_config", "working_dir"), config["working_dir"])
    if "max_runtime" in config:
        value = config["max_runtime"]
        try:
            if not isinstance(value, str):
                raise ValueError("must be a duration string like '24h' or '90m'")
            parse_duration(value)
        except ValueError as exc:
            errors.append(FieldError(("job_config", "max_runtime"), str(exc)))
    return errors + mount_errors(request.storage_mounts)


def _env_errors(env: object) -> list[FieldError]:
    if not isinstance(env, dict):
        return [FieldError(("job_config", "env"), "must be an object of string values")]
    errors: list[FieldError] = []
    for key, value in env.items():
        if not ENV_NAME.match(key):
            errors.append(FieldError(("job_config", "env", key), f"'{key}' is not a valid variable name"))
        elif RESERVED_ENV.match(key):
            errors.append(FieldError(("job_config", "env", key), "collides with a variable Train sets"))
        elif not isinstance(value, str):
            errors.append(FieldError(("job_config", "env", key), "must be a string"))
    return errors


def _str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
