"""Resolving a job's ``{secret: name}`` env entries for a backend.

Backends call ``resolve_env`` twice: in ``check_spec`` (so a missing secret is a 422 naming
``env.<VAR>`` before anything is stored, and SageMaker's value limits count the real values) and in
``submit``, right before the native create, so every attempt and every resubmit by the sweeper
reads the store again. The values go into that one native request and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from core.errors import FieldError, InvalidSpecError
from core.model import JobRecord, SecretRef
from core.ports import SecretStore
from core.secrets.masking import secret_scope

T = TypeVar("T")
NO_STORE = "this deployment has no secret store (set TRAIN_SECRETS)"


@dataclass
class Resolved:
    """Secret values by env variable, and a ``FieldError`` for each secret that could not be read."""

    values: dict[str, str] = field(default_factory=dict)
    problems: list[FieldError] = field(default_factory=list)


def secret_refs(env: Mapping[str, object]) -> dict[str, str]:
    """``{VAR: secret name}`` of the ``{secret: name}`` entries."""
    return {var: value.secret for var, value in env.items() if isinstance(value, SecretRef)}


def job_env(job: JobRecord) -> Mapping[str, object]:
    """The env of a portable job; a native ``job_config`` carries plain strings only."""
    spec = job.portable_spec
    return spec.env if spec is not None else {}


def resolve_env(env: Mapping[str, object], store: SecretStore | None) -> Resolved:
    """Read every secret ``env`` names.

    Raises:
        UnavailableError: the store cannot be reached (retryable); nothing is half-resolved.
    """
    resolved = Resolved()
    refs = secret_refs(env)
    if not refs:
        return resolved
    with secret_scope():
        for var, name in refs.items():
            if store is None:
                resolved.problems.append(FieldError(("env", var), NO_STORE))
                continue
            try:
                resolved.values[var] = store.resolve(name)
            except InvalidSpecError as exc:
                resolved.problems.append(FieldError(("env", var), exc.detail))
    return resolved


def build_with(resolved: Resolved, build: Callable[[Mapping[str, str]], T]) -> T:
    """Run a request builder on the resolved values. Secrets that could not be read and the
    builder's own problems are named together in one 422."""
    try:
        result = build(resolved.values)
    except InvalidSpecError as exc:
        if not resolved.problems:
            raise
        named = {p.path for p in resolved.problems}
        raise InvalidSpecError.of(resolved.problems + [e for e in exc.errors if e.path not in named]) from None
    if resolved.problems:
        raise InvalidSpecError.of(resolved.problems)
    return result


def merge_env(
    env: Mapping[str, str | SecretRef], secrets: Mapping[str, str]
) -> tuple[dict[str, str], list[FieldError]]:
    """The spec's env with each ``{secret: name}`` entry replaced by its value from ``secrets``
    (keyed by variable), and an error for each secret a builder was given no value for."""
    out: dict[str, str] = {}
    errors: list[FieldError] = []
    for var, value in env.items():
        if not isinstance(value, SecretRef):
            out[var] = value
        elif var in secrets:
            out[var] = secrets[var]
        else:
            errors.append(unresolved(var, value))
    return out, errors


def unresolved(var: str, ref: SecretRef) -> FieldError:
    """What a pure builder reports for a secret it was given no value for."""
    return FieldError(("env", var), f"secret '{ref.secret}' was not read from the secret store")
