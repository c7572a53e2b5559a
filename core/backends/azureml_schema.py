"""Azure ML's own command-job schema, used offline: a job in the command-job YAML field names is
loaded through ``azure.ai.ml``'s ``CommandJobSchema`` (the schema ``az ml job create`` and
``load_job`` use) and becomes the SDK's ``CommandJob``. Each problem comes back as a
``FieldError`` at its path. ``azure.ai.ml`` is imported on first use (about 0.9 s).
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Any

from core.errors import FieldError

Path = tuple[str | int, ...]
_UNION_HOLDERS = ("inputs", "outputs")  # their entries are unions whose errors sit under "value"


def schema_errors(job: dict[str, Any]) -> list[FieldError]:
    """Every problem the SDK's schema finds in ``job``, at its path in ``job``."""
    from marshmallow import ValidationError

    try:
        _load(job)
    except ValidationError as exc:
        return _flatten(exc.messages, ())
    return []


def to_command_job(job: dict[str, Any]) -> Any:
    """The SDK's ``Command`` for ``job`` (already checked by ``schema_errors``), built the way
    ``load_job`` builds it: ``resources`` and ``limits`` are set after the ``command()`` builder."""
    from azure.ai.ml import command

    loaded = _load(job)
    resources, limits = loaded.pop("resources", None), loaded.pop("limits", None)
    built = command(base_path=FsPath.cwd(), **loaded)
    built.resources = resources
    built.limits = limits
    return built


def _load(job: dict[str, Any]) -> dict[str, Any]:
    from azure.ai.ml._schema.job.command_job import CommandJobSchema
    from azure.ai.ml.constants._common import BASE_PATH_CONTEXT_KEY

    schema = CommandJobSchema(context={BASE_PATH_CONTEXT_KEY: FsPath.cwd()})  # type: ignore[no-untyped-call]
    return dict(schema.load(job))


def _flatten(messages: Any, path: Path) -> list[FieldError]:
    """marshmallow's nested messages → FieldErrors. A list of dicts is a union's alternatives: the
    first one (the most common form) is reported, unless every alternative faults the same
    fields, which are then reported with each alternative's reason."""
    if isinstance(messages, str):
        return [FieldError(path, messages)]
    if isinstance(messages, dict):
        out: list[FieldError] = []
        for key, inner in messages.items():
            here = path
            if key is not None and key != "_schema" and not (key == "value" and _under_union(path)):
                here = (*path, key)
            out += _flatten(inner, here)
        return out
    if isinstance(messages, list):
        if all(isinstance(m, str) for m in messages):
            return [FieldError(path, "; ".join(messages))] if messages else []
        alternatives = [_flatten(m, path) for m in messages]
        fields = [{e.path for e in alt} for alt in alternatives]
        if len(alternatives) > 1 and all(f == fields[0] for f in fields):
            merged: dict[Path, list[str]] = {}
            for alt in alternatives:
                for error in alt:
                    if error.message not in merged.setdefault(error.path, []):
                        merged[error.path].append(error.message)
            return [FieldError(p, " or ".join(ms)) for p, ms in merged.items()]
        return alternatives[0] if alternatives else []
    return [FieldError(path, str(messages))]


def _under_union(path: Path) -> bool:
    return len(path) == 2 and path[0] in _UNION_HOLDERS
