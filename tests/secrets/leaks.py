"""Helpers for looking for a secret value everywhere Train could have put it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def debug_everywhere(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture every logger at DEBUG: the root and each named logger set to DEBUG, and caplog's
    handler also on loggers that do not propagate (Powertools' ``train`` logger)."""
    manager = logging.root.manager
    touched: list[tuple[logging.Logger, int]] = []
    caplog.set_level(logging.DEBUG)
    for name in list(manager.loggerDict):
        logger = logging.getLogger(name)
        touched.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
        if not logger.propagate:
            logger.addHandler(caplog.handler)
    try:
        yield
    finally:
        for logger, level in touched:
            logger.setLevel(level)
            if caplog.handler in logger.handlers:
                logger.removeHandler(caplog.handler)


def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured record as its message and as formatted (tracebacks included)."""
    return [r.getMessage() for r in caplog.records] + caplog.text.splitlines()


def files_under(root: Path, *, skip: Path | None = None) -> dict[str, bytes]:
    return {
        str(path): path.read_bytes() for path in sorted(root.rglob("*"))
        if path.is_file() and (skip is None or skip not in path.parents)
    }


def places_holding(value: str, places: dict[str, str | bytes]) -> list[str]:
    """The names of the places whose content holds ``value`` in plain or JSON-escaped form."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    found = []
    for where, content in places.items():
        text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
        if any(form in text for form in forms):
            found.append(where)
    return found
