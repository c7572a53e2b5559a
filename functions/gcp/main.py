"""Cloud Functions (gen2, functions-framework) entry points, one deployed function each:

- ``http``: the route table (``core.api``) behind the function's URL.
- ``vertex_events``: CloudEvents from the Pub/Sub topic the Vertex AI log sink writes to. Returns
  after the store write; raises only what a retry can fix, so Pub/Sub (retry on) delivers again.
- ``sweeper``: Cloud Scheduler's HTTP POST (the deployed trigger, with an OIDC token). It also
  runs for a Pub/Sub push or Eventarc request sent to it.
- ``sweeper_pubsub``: the same sweep for a schedule that publishes to Pub/Sub, deployed with an
  event trigger on that topic instead of ``sweeper``.

The envelopes are parsed in ``core.gcp_events``; the wiring is built on first use by ``core.hosts``.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from core import gcp_events, hosts


@functions_framework.http
def http(request: Any) -> gcp_events.FlaskResult:
    return gcp_events.serve_http(request)


@functions_framework.cloud_event
def vertex_events(event: Any) -> None:
    gcp_events.vertex_log_event(hosts.wiring(), event.get_attributes(), event.data)


@functions_framework.http
def sweeper(request: Any) -> gcp_events.FlaskResult:
    return gcp_events.sweep_http(request)


@functions_framework.cloud_event
def sweeper_pubsub(event: Any) -> None:
    hosts.sweep(hosts.wiring().service, gcp_events.cloud_event_trigger(event.get_attributes()))
