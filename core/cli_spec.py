"""Reading a job spec file for ``train submit -f``: YAML or JSON, relative paths made absolute.

A spec is written next to its code and data, so relative plain paths in it (``./data``) mean
"next to the spec file", wherever the command is run from. The server only accepts absolute ones.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml

from core.errors import FieldError, InvalidRequestError
from core.model import BACKENDS


class SpecFileError(InvalidRequestError):
    title = "Cannot read the spec file"


class _SpecLoader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 would read ``notify: {on: [...]}`` as the key
    ``True``, and ``yes``/``no``/``off`` values as booleans where a string was meant."""


_SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_spec_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecFileError(f"{path}: {exc.strerror or exc}") from exc
    is_json = path.suffix.lower() == ".json"
    try:
        doc = json.loads(text) if is_json else yaml.load(text, Loader=_SpecLoader)  # noqa: S506 (a SafeLoader)
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecFileError(f"{path} is not valid {'JSON' if is_json else 'YAML'}: {exc}") from exc
    if not isinstance(doc, dict):
        raise SpecFileError(f"{path} must hold a mapping (a job spec), not {type(doc).__name__}")
    return doc


def _resolve(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or not value or "://" in value:
        return value
    path = Path(value).expanduser()
    return value if path.is_absolute() else str((base / path).resolve())


def resolve_relative_paths(doc: dict[str, Any], base: Path) -> dict[str, Any]:
    """A copy of ``doc`` whose plain-path ``storage_mounts[].source_uri`` and ``working_dir``
    (in ``backend_options`` or a native ``job_config``) are absolute, read relative to ``base``."""
    out = copy.deepcopy(doc)
    for mount in out.get("storage_mounts") or []:
        if isinstance(mount, dict) and "source_uri" in mount:
            mount["source_uri"] = _resolve(mount["source_uri"], base)
    for key in ("backend_options", "job_config"):  # job_config: the local backend's native shape
        options = out.get(key)
        if isinstance(options, dict) and "working_dir" in options:
            options["working_dir"] = _resolve(options["working_dir"], base)
    return out


def read_submission(path: Path, backend: str | None = None) -> tuple[str | None, dict[str, Any]]:
    """The spec file as a request body, and the backend to submit it to natively.

    A document with ``job_config`` is the native shape (``POST /v1/{backend}/jobs``); its backend
    comes from ``backend`` or a top-level ``backend`` key, which is taken off the body. Anything
    else is a portable spec, returned with ``None``.
    """
    doc = resolve_relative_paths(load_spec_file(path), path.resolve().parent)
    if "job_config" not in doc:
        if backend is not None:
            doc["backend"] = backend
        return None, doc
    native_backend = backend or doc.pop("backend", None)
    doc.pop("backend", None)
    if native_backend not in BACKENDS:
        raise SpecFileError(
            f"{path} is a native request (it has job_config): name its backend with --backend "
            f"({', '.join(BACKENDS)})",
            errors=[FieldError(("backend",), "required for a native request")],
        )
    return str(native_backend), doc
