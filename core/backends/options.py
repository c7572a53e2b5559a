"""``backend_options``: native fields a portable spec adds to the request Train builds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.errors import FieldError

Path = tuple[str | int, ...]
OWNED = "Train sets this from the job spec; change the spec field instead"


def merge_options(
    own: dict[str, Any],
    extra: dict[str, Any],
    *,
    field: Callable[[Path], Path] = lambda here: ("backend_options", *here),
    sealed: Callable[[Path], bool] = lambda here: False,
) -> list[FieldError]:
    """Merge ``extra`` into ``own`` in place: new keys are added and nested objects merged; a value
    Train already set is refused, named by ``field(path)``. An object for which ``sealed(path)``
    holds is Train's whole and is not merged into."""
    errors: list[FieldError] = []

    def merge(into: dict[str, Any], values: dict[str, Any], path: Path) -> None:
        for key, value in values.items():
            here = (*path, key)
            if key not in into:
                into[key] = value
            elif isinstance(into[key], dict) and isinstance(value, dict) and not sealed(here):
                merge(into[key], value, here)
            else:
                errors.append(FieldError(field(here), OWNED))

    merge(own, extra, ())
    return errors
