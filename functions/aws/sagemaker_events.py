"""EventBridge "SageMaker Training Job State Change" → the job's status.

Returns after the store write; raises only what a retry can fix (throttling, 5xx), so EventBridge
and Lambda deliver again. Foreign or malformed events and jobs that are not ours are logged and
acknowledged, never retried.
"""

from __future__ import annotations

from typing import Any

from core import hosts
from core.backends.sagemaker_map import from_sagemaker_event


def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    wiring = hosts.wiring()
    parsed = from_sagemaker_event(event, wiring.settings.job_prefix)
    if parsed is None:
        return {"outcome": hosts.drop(event, "not a SageMaker training job state change of this deployment")}
    native_id, update = parsed
    outcome = hosts.deliver(wiring.service, "sagemaker", native_id, update, event_id=hosts.event_id(event))
    return {"outcome": outcome}
