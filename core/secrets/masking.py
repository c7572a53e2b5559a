"""Keeping secret values out of log lines and error details while Train handles them.

Inside ``secret_scope(values)`` (entered around a native submit, a read of a native job, and a
secret fetch), every log record made in that context, by any logger, is cleaned as it is created:

- SDK records at DEBUG are withheld. boto3, google-auth and azure-core log whole request and
  response bodies at DEBUG, and a read's answer (a secret, a described job with its environment)
  carries values Train does not know until the call returns, so they cannot be masked by value.
- The known ``values`` (and their JSON-escaped forms, as they appear in request bodies) are
  replaced by ``***`` in the message and in a logged traceback.

A ``TrainError`` leaving the scope has the values masked in its detail and field messages, and an
SDK cause that quotes one is cut from its chain, so neither the stored ``status_reason`` nor a later
traceback can carry it. The log-record factory is installed on first use, never at import.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from core.errors import FieldError, TrainError

MASK = "***"
OWN_LOGGERS = "train"  # Train's loggers are "train" and "train.<part>"; their records are never withheld
WITHHELD = "(debug record withheld: it may carry secret values)"

_values: ContextVar[tuple[str, ...]] = ContextVar("train_secret_values", default=())
_depth: ContextVar[int] = ContextVar("train_secret_scope_depth", default=0)
_install_lock = threading.Lock()
_installed = False


@contextmanager
def secret_scope(values: Iterable[str] = ()) -> Iterator[None]:
    """Clean log records made in this context and ``TrainError``s leaving it (see the module doc)."""
    _install()
    known = tuple(sorted({v for v in values if v}, key=len, reverse=True))
    outer_values, outer_depth = _values.get(), _depth.get()
    values_token = _values.set(tuple(dict.fromkeys(outer_values + known)))
    depth_token = _depth.set(outer_depth + 1)
    try:
        yield
    except TrainError as exc:
        scrub_error(exc, known)
        raise
    finally:
        _depth.reset(depth_token)
        _values.reset(values_token)


def mask(text: str, values: Iterable[str]) -> str:
    for value in values:
        for form in _forms(value):
            text = text.replace(form, MASK)
    return text


def scrub_error(exc: TrainError, values: tuple[str, ...]) -> None:
    if not values:
        return
    exc.detail = mask(exc.detail, values)
    exc.args = (exc.detail,)
    exc.errors = [FieldError(e.path, mask(e.message, values)) for e in exc.errors]
    cause: BaseException | None = exc.__cause__ or exc.__context__
    while cause is not None:
        if _holds(str(cause), values) or _holds(repr(getattr(cause, "response", "")), values):
            exc.__cause__ = None
            exc.__suppress_context__ = True
            return
        cause = cause.__cause__ or cause.__context__


def _forms(value: str) -> list[str]:
    forms = [value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]]
    return list(dict.fromkeys(f for f in forms if f))


def _holds(text: str, values: Iterable[str]) -> bool:
    return any(form in text for value in values for form in _forms(value))


def _clean(record: logging.LogRecord) -> None:
    own = record.name == OWN_LOGGERS or record.name.startswith(OWN_LOGGERS + ".")
    if record.levelno <= logging.DEBUG and not own:
        record.msg, record.args = WITHHELD, None
        record.exc_info = record.exc_text = record.stack_info = None
        return
    values = _values.get()
    if not values:
        return
    try:
        text = record.getMessage()
    except Exception:  # a malformed record: keep nothing of it rather than risk a value
        text = f"{record.msg!s}"
    masked = mask(text, values)
    if masked != text:
        record.msg, record.args = masked, None
    if record.exc_info:
        record.exc_text = mask(logging.Formatter().formatException(record.exc_info), values)
    if record.stack_info:
        record.stack_info = mask(record.stack_info, values)


def _install() -> None:
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if _depth.get():
                _clean(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
