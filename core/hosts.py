"""What every cloud function shares: its wiring, built once per container, and the rules for
turning a delivered event into an acknowledgement or a retry.

Nothing is built at import time. The first invocation of a warm container calls
``core.bootstrap.build()`` (which reads ``TRAIN_*``) and later invocations reuse the result, as do
the other functions of the same process (the tests run all three in one). A failed build is not
kept: the next invocation tries again.

Tests swap the wiring with ``set_wiring_for_tests`` (for instance a ``TrainService`` over a
DynamoDB table in moto and a fake backend) and pass ``None`` to return to ``build()``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from core.errors import TrainError
from core.lifecycle import NativeUpdate

if TYPE_CHECKING:
    from core.api import TrainResolver
    from core.bootstrap import Wiring
    from core.server import ResolverPool
    from core.service import SweepReport, TrainService

log = logging.getLogger("train.functions")

DROPPED = "DROPPED"  # a malformed, foreign or unappliable event: logged and acknowledged
UNKNOWN_JOB = "UNKNOWN_JOB"  # no job of ours runs as that native job

_lock = threading.Lock()
_wiring: Wiring | None = None
_app: TrainResolver | None = None
_pool: ResolverPool | None = None
_logging_ready = False


def wiring() -> Wiring:
    """This container's wiring, built on first use."""
    global _wiring
    with _lock:
        if _wiring is None:
            from core.bootstrap import build

            _setup_logging()
            _wiring = build()
        return _wiring


def http_app() -> TrainResolver:
    """The route table over this container's wiring. Lambda hands a container one request at a
    time, so one resolver (which keeps per-request state) serves them all."""
    global _app
    current = wiring()
    with _lock:
        if _app is None:
            _app = current.api()
        return _app


def resolvers() -> ResolverPool:
    """Route tables over this container's wiring, one lent to each request, for hosts that serve
    several requests at once on threads (functions-framework, the Azure Functions worker)."""
    global _pool
    current = wiring()
    with _lock:
        if _pool is None:
            from core.server import ResolverPool

            _pool = ResolverPool(current.api)
        return _pool


def set_wiring_for_tests(replacement: Wiring | None) -> None:
    """Use ``replacement`` instead of ``build()`` (None: build again on next use)."""
    global _wiring, _app, _pool
    with _lock:
        _wiring, _app, _pool = replacement, None, None


def _setup_logging() -> None:
    """Powertools' JSON logger on the ``train`` logger, which every ``train.*`` logger of core
    propagates to. It never logs events: request headers carry API keys."""
    global _logging_ready
    if _logging_ready:
        return
    from aws_lambda_powertools import Logger

    Logger(service="train")
    _logging_ready = True


def deliver(service: TrainService, backend: str, native_id: str, update: NativeUpdate, *, event_id: str) -> str:
    """Apply one native update from an event and say what became of it.

    Returns once the outcome is durable in the store (the platform may then drop the event).
    Raises only retryable errors (store throttling, 5xx, lost races), so the platform delivers
    the event again; any other ``TrainError`` is logged and the event dropped, as redelivering it
    would fail the same way.
    """
    try:
        outcome = service.apply_native_update(backend, native_id, update)
    except TrainError as exc:
        if exc.retryable:
            log.warning("event %s for %s %s not applied, to be retried: %s", event_id, backend, native_id, exc.detail)
            raise
        log.error("event %s for %s %s dropped: %s", event_id, backend, native_id, exc.detail)
        return DROPPED
    if outcome is None:
        return UNKNOWN_JOB
    log.info("event %s for %s %s: %s", event_id, backend, native_id, outcome.value)
    return outcome.value


def drop(event: object, why: str) -> str:
    """Log one line about an event that is not ours or cannot be read, and acknowledge it."""
    event_id = event.get("id") if isinstance(event, Mapping) else None
    source = event.get("source") if isinstance(event, Mapping) else None
    kind = event.get("detail-type") if isinstance(event, Mapping) else type(event).__name__
    log.warning("event %s (%s / %s) dropped: %s", event_id or "-", source or "-", kind or "-", why)
    return DROPPED


def event_id(event: Mapping[str, Any]) -> str:
    return str(event.get("id") or "-")


def sweep(service: TrainService, trigger: str) -> dict[str, Any]:
    """Run one sweep and return (and log) its report as counts."""
    report = service.sweep()
    counts = _counts(report)
    log.info("sweep (%s): %s", trigger, ", ".join(f"{name} {value}" for name, value in counts.items()))
    return {"trigger": trigger, **counts}


def _counts(report: SweepReport) -> dict[str, int]:
    counts = {name: value for name, value in asdict(report).items() if isinstance(value, int)}
    counts["changed"] = len(report.changed)  # the report lists the job ids; only their number leaves
    return counts
