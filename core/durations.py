"""Durations written the way people write them: ``24h``, ``90m``, ``1h30m``, ``2d``, ``45s``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PATTERN = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_PATTERN = r"^(?=\d)(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"
MAX_SECONDS = 366 * 86400


def parse_duration(value: Any) -> timedelta:
    """Accept ``1h30m``-style strings, whole seconds as int, or a timedelta; refuse zero and > 366d."""
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
    elif isinstance(value, bool):
        raise ValueError("a duration is a string like '24h', '90m' or '1h30m'")
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        text = value.strip().lower()
        match = _PATTERN.match(text)
        if not text or not match or not any(match.groups()):
            raise ValueError(f"'{value}' is not a duration; write it like '24h', '90m', '1h30m' or '45s'")
        seconds = sum(int(n) * _UNITS[u] for n, u in zip(match.groups(), "dhms", strict=True) if n)
    else:
        raise ValueError("a duration is a string like '24h', '90m' or '1h30m'")
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
    if seconds > MAX_SECONDS:
        raise ValueError("a duration may not exceed 366d")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest canonical spelling: 86400 s → ``1d``, 5400 s → ``1h30m``."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["24h", "1h30m"]}),
]
