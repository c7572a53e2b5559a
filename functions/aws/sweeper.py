"""The schedule → ``service.sweep()``: expire, reconcile and finish crashed submissions.

Two triggers are accepted and treated alike (a sweep is idempotent):

- an EventBridge rule schedule (``source: aws.events``, ``detail-type: Scheduled Event``), which
  ``serverless.yml`` deploys every 5 minutes;
- EventBridge Scheduler, which delivers the ``Input`` it is given. Configure it as
  ``{"source": "train.scheduler", "detail-type": "Train Sweep", "schedule": "<aws.scheduler.schedule-arn>",
  "scheduled_time": "<aws.scheduler.scheduled-time>", "attempt": "<aws.scheduler.attempt-number>"}``
  (Scheduler fills in the ``<aws.scheduler.*>`` placeholders).

A retryable error while reading the active jobs is raised, so the invocation counts as failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core import hosts


def trigger(event: object) -> str:
    if isinstance(event, Mapping):
        if event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event":
            return "eventbridge-rule"
        if event.get("source") == "train.scheduler":
            return "eventbridge-scheduler"
    return "direct"


def handler(event: Any, context: Any) -> dict[str, Any]:
    return hosts.sweep(hosts.wiring().service, trigger(event))
