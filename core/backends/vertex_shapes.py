"""Checking snake_case dicts against the Vertex AI API's own message types, without calling out.

``google.cloud.aiplatform_v1`` carries the protobuf descriptors of ``CustomJob`` and
``CustomJobSpec``; a ``job_config`` or ``backend_options`` dict is walked field by field so each
unknown or mistyped field is named by its path, then the whole is parsed with ``json_format``
(which also takes RFC 3339 durations such as ``"3600s"`` and enum names). The import of
``aiplatform_v1`` happens on first use.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from core.errors import FieldError

Path = tuple[str | int, ...]
MAX_LISTED_FIELDS = 12


@cache
def message_class(name: str) -> Any:
    """The protobuf class of an ``aiplatform_v1`` type, e.g. ``"CustomJobSpec"``."""
    from google.cloud import aiplatform_v1

    return getattr(aiplatform_v1, name).pb()


def shape_errors(value: object, type_name: str, path: Path) -> list[FieldError]:
    """Every problem of ``value`` as a ``type_name`` message (snake_case field names), by path."""
    return _message_errors(value, message_class(type_name).DESCRIPTOR, path)


def _message_errors(value: object, descriptor: Any, path: Path) -> list[FieldError]:
    if not isinstance(value, dict):
        return [FieldError(path, f"expected an object ({descriptor.name})")]
    errors: list[FieldError] = []
    for key, item in value.items():
        here = (*path, key)
        field = descriptor.fields_by_name.get(key) if isinstance(key, str) else None
        if field is None:
            errors.append(FieldError(here, _unknown(str(key), descriptor)))
        elif _is_map(field):
            errors += _map_errors(item, field, here)
        elif field.is_repeated:
            if not isinstance(item, list):
                errors.append(FieldError(here, "expected a list"))
                continue
            for n, element in enumerate(item):
                errors += _value_errors(element, field, (*here, n), descriptor)
        else:
            errors += _value_errors(item, field, here, descriptor)
    return errors


def _value_errors(item: object, field: Any, path: Path, parent: Any) -> list[FieldError]:
    if field.message_type is not None and not field.message_type.full_name.startswith("google.protobuf."):
        return _message_errors(item, field.message_type, path)
    return _scalar_errors(item, field, path, parent)


def _scalar_errors(item: object, field: Any, path: Path, parent: Any) -> list[FieldError]:
    """One scalar, enum or well-known type (Duration, Timestamp...), checked by parsing it alone."""
    from google.protobuf import json_format, message_factory

    probe = message_factory.GetMessageClass(parent)()
    wrapped = [item] if field.is_repeated else item
    try:
        json_format.ParseDict({field.name: wrapped}, probe)
    except json_format.ParseError as exc:
        return [FieldError(path, _parse_message(exc, field))]
    return []


def _map_errors(item: object, field: Any, path: Path) -> list[FieldError]:
    from google.protobuf import json_format, message_factory

    if not isinstance(item, dict):
        return [FieldError(path, "expected an object of key: value")]
    value_field = field.message_type.fields_by_name["value"]
    errors: list[FieldError] = []
    for key, element in item.items():
        here = (*path, str(key))
        if value_field.message_type is not None and not value_field.message_type.full_name.startswith("google."):
            errors += _message_errors(element, value_field.message_type, here)
            continue
        probe = message_factory.GetMessageClass(field.containing_type)()
        try:
            json_format.ParseDict({field.name: {key: element}}, probe)
        except json_format.ParseError as exc:
            errors.append(FieldError(here, _parse_message(exc, value_field)))
    return errors


def _is_map(field: Any) -> bool:
    return bool(
        field.is_repeated
        and field.message_type is not None
        and field.message_type.GetOptions().map_entry
    )


def _unknown(key: str, descriptor: Any) -> str:
    by_json = {f.json_name: f.name for f in descriptor.fields}
    if key in by_json:
        return f"write field names in snake_case: '{by_json[key]}'"
    names = sorted(f.name for f in descriptor.fields)
    listed = ", ".join(names[:MAX_LISTED_FIELDS]) + (", ..." if len(names) > MAX_LISTED_FIELDS else "")
    return f"unknown field of {descriptor.name} (fields: {listed})"


def _parse_message(exc: Exception, field: Any) -> str:
    if field.message_type is not None and field.message_type.full_name == "google.protobuf.Duration":
        return "expected a duration in seconds such as \"3600s\""
    if field.enum_type is not None:
        values = ", ".join(v.name for v in field.enum_type.values if not v.name.endswith("_UNSPECIFIED"))
        return f"expected one of {values}"
    if field.message_type is None:
        for types, message in _EXPECTED:
            if field.type in {getattr(field, t) for t in types}:
                return message
    text = str(exc)
    return text.split(": ", 1)[-1] if ": " in text else text


_EXPECTED = (
    (("TYPE_STRING",), "expected a string"),
    (("TYPE_BOOL",), "expected true or false"),
    (("TYPE_DOUBLE", "TYPE_FLOAT"), "expected a number"),
    (("TYPE_INT32", "TYPE_INT64", "TYPE_UINT32", "TYPE_UINT64", "TYPE_SINT32", "TYPE_SINT64"), "expected an integer"),
)
