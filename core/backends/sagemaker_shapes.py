"""SageMaker's CreateTrainingJob request shape, read offline from botocore's bundled service model.

Converts snake_case ``job_config`` / ``backend_options`` to the API's PascalCase member names and
validates a request the way botocore would before sending it (required members, types, minimums),
plus the maximums and enums botocore leaves to the server. Each problem comes back as a
``FieldError`` whose path is in snake_case. botocore is imported on first use only.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from core.errors import FieldError

Path = tuple[str | int, ...]
_MEMBER = re.compile(r"[A-Za-z0-9]+")
_INDEX = re.compile(r"\[(\d+)\]")
_MAP_KEY = re.compile(r" \(key: (.*)\)$")


@lru_cache(maxsize=1)
def create_training_job_shape() -> Any:
    """The CreateTrainingJob input shape (about 0.1 s to load, once per process)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model("CreateTrainingJob").input_shape


def snake(member: str) -> str:
    from botocore import xform_name

    return str(xform_name(member))


@lru_cache(maxsize=512)
def _members_by_snake(shape: Any) -> dict[str, str]:
    return {snake(name): name for name in shape.members}


def member_shape(*pascal: str) -> Any:
    """The shape at a PascalCase member path of CreateTrainingJob, e.g. ``("ResourceConfig", "InstanceType")``."""
    shape = create_training_job_shape()
    for name in pascal:
        shape = shape.members[name]
    return shape


def to_pascal(value: Any, shape: Any, path: Path) -> tuple[Any, list[FieldError]]:
    """``value`` with every structure member renamed from snake_case to the API's own name.
    Map keys (environment names, hyperparameters) are the caller's data and are kept as given."""
    errors: list[FieldError] = []
    kind = shape.type_name
    if kind == "structure" and not getattr(shape, "is_document_type", False) and isinstance(value, dict):
        by_snake = _members_by_snake(shape)
        out: dict[str, Any] = {}
        for key, item in value.items():
            member = by_snake.get(key) if isinstance(key, str) else None
            if member is None:
                errors.append(FieldError((*path, key), _unknown(str(key), by_snake)))
                continue
            out[member], inner = to_pascal(item, shape.members[member], (*path, key))
            errors += inner
        return out, errors
    if kind == "list" and isinstance(value, list):
        items = []
        for n, item in enumerate(value):
            converted, inner = to_pascal(item, shape.member, (*path, n))
            items.append(converted)
            errors += inner
        return items, errors
    if kind == "map" and isinstance(value, dict):
        mapped = {}
        for key, item in value.items():
            mapped[key], inner = to_pascal(item, shape.value, (*path, key))
            errors += inner
        return mapped, errors
    return value, errors


def _unknown(key: str, by_snake: dict[str, str]) -> str:
    hint = f" (write it as '{snake(key)}')" if snake(key) in by_snake else ""
    known = ", ".join(sorted(by_snake))
    return f"unknown field{hint}; known here: {known}"


def snake_path(pascal: Path, shape: Any | None = None) -> Path:
    """A path through the request in snake_case: structure members renamed, indexes and map keys kept."""
    shape = shape if shape is not None else create_training_job_shape()
    out: list[str | int] = []
    for part in pascal:
        kind = shape.type_name if shape is not None else None
        if shape is None:
            out.append(part)
        elif kind == "structure" and isinstance(part, str) and part in shape.members:
            out.append(snake(part))
            shape = shape.members[part]
        elif kind == "list":
            out.append(part)
            shape = shape.member
        elif kind == "map":
            out.append(part)
            shape = shape.value
        else:
            out.append(part)
            shape = None
    return tuple(out)


def request_errors(request: dict[str, Any], prefix: Path) -> list[FieldError]:
    """Everything botocore's own validator finds in ``request`` (PascalCase), and the maximums and
    enums it leaves to the server, each under ``prefix`` + the snake_case path."""
    from botocore.validate import ParamValidator

    shape = create_training_job_shape()
    report = ParamValidator().validate(request, shape)
    errors: list[FieldError] = []
    for kind, name, details in getattr(report, "_errors", []):
        path = _parse_name(name, shape)
        if kind == "missing required field":
            path = (*path, snake(str(details["required_name"])))
        elif kind == "unknown field":
            path = (*path, str(details["unknown_param"]))
        errors.append(FieldError((*prefix, *path), _describe(kind, details)))
    if report.has_errors() and not errors:
        errors.append(FieldError(prefix, report.generate_report()))
    errors += [FieldError((*prefix, *snake_path(p)), m) for p, m in _limit_errors(request, shape, ())]
    return errors


def _parse_name(name: str, shape: Any) -> Path:
    """botocore names a place like ``.InputDataConfig[0].DataSource`` or ``.Environment (key: X)``."""
    rest = name[1:] if name.startswith(".") else name
    key_note = _MAP_KEY.search(rest)
    if key_note:
        rest = rest[: key_note.start()]
    path: list[str | int] = []
    while rest and shape is not None:
        if shape.type_name == "structure":
            match = _MEMBER.match(rest)
            if match is None or match.group() not in shape.members:
                break
            path.append(snake(match.group()))
            shape, rest = shape.members[match.group()], rest[match.end():]
        elif shape.type_name == "list":
            match = _INDEX.match(rest)
            if match is None:
                break
            path.append(int(match.group(1)))
            shape, rest = shape.member, rest[match.end():]
        elif shape.type_name == "map":
            scalar = shape.value.type_name not in ("structure", "list", "map")
            key = rest if scalar else re.split(r"[.\[]", rest, maxsplit=1)[0]
            path.append(key)
            shape, rest = shape.value, rest[len(key):]
        else:
            break
        rest = rest[1:] if rest.startswith(".") else rest
    if key_note:
        path.append(key_note.group(1))
    return tuple(path)


def _describe(kind: str, details: dict[str, Any]) -> str:
    if kind == "missing required field":
        return "required"
    if kind == "unknown field":
        return "unknown field; known here: " + ", ".join(snake(n) for n in details.get("valid_names", []))
    if kind == "invalid type":
        wanted = ", ".join(re.sub(r"<class '(\w+)'>", r"\1", t) for t in details.get("valid_types", []))
        return f"must be {wanted}, not {type(details.get('param')).__name__}"
    if kind == "invalid range":
        return f"must be at least {details.get('min_allowed')}"
    if kind == "invalid length":
        return f"too short: at least {details.get('min_allowed')}"
    return kind


def _limit_errors(value: Any, shape: Any, path: Path) -> list[tuple[Path, str]]:
    """The ``max``, ``enum`` and some ``required`` constraints of the model, which botocore leaves to the server."""
    kind, meta = shape.type_name, shape.metadata
    top = meta.get("max")
    errors: list[tuple[Path, str]] = []
    if kind == "structure" and isinstance(value, dict) and not getattr(shape, "is_document_type", False):
        checked = set(meta.get("required", []))  # botocore reports these itself
        for member in shape.required_members:
            if member not in value and member not in checked:
                errors.append(((*path, member), "required"))
        for key, item in value.items():
            if key in shape.members:
                errors += _limit_errors(item, shape.members[key], (*path, key))
    elif kind == "list" and isinstance(value, list):
        if top is not None and len(value) > top:
            errors.append((path, f"at most {top} items (SageMaker's limit); got {len(value)}"))
        for n, item in enumerate(value):
            errors += _limit_errors(item, shape.member, (*path, n))
    elif kind == "map" and isinstance(value, dict):
        if top is not None and len(value) > top:
            errors.append((path, f"at most {top} entries (SageMaker's limit); got {len(value)}"))
        for key, item in value.items():
            errors += [((*path, key), m) for _, m in _limit_errors(key, shape.key, ())]
            errors += _limit_errors(item, shape.value, (*path, key))
    elif kind == "string" and isinstance(value, str):
        if top is not None and len(value) > top:
            errors.append((path, f"at most {top} characters (SageMaker's limit); got {len(value)}"))
        enum = meta.get("enum")
        if enum and value not in enum:
            shown = ", ".join(enum) if len(enum) <= 12 else f"one of SageMaker's {len(enum)} values"
            errors.append((path, f"'{value}' is not valid here; use {shown}"))
    elif kind in ("integer", "long") and isinstance(value, int) and top is not None and value > top:
        errors.append((path, f"at most {top}"))
    return errors
