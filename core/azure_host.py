"""Azure Functions HTTP glue: a request as the Python worker hands it over (method, URL, headers,
body) → the API Gateway payload 2.0 event the route table resolves (``core.server.to_event``, the
local server's converter) → a plain reply the function turns into ``func.HttpResponse``; and the
Event Grid webhook, handshakes first.

The Python worker runs synchronous functions on a thread pool, so one process serves several
requests at once; the route table keeps per-request state, so each request borrows its own
resolver from a pool (``core.server.ResolverPool``) over the container's wiring.

Routes are served at the root (``host.json`` sets ``extensions.http.routePrefix`` to ``""``), so
the request path is the route table's path.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from core import eventgrid, hosts
from core.errors import TrainError

if TYPE_CHECKING:
    pass

log = logging.getLogger("train.functions")



@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def mimetype(self) -> str | None:
        kind = self.headers.get("Content-Type") or self.headers.get("content-type")
        return kind.split(";", 1)[0].strip() if kind else None


def api(method: str, url: str, headers: Mapping[str, str], body: bytes) -> Reply:
    """Resolve one API request through the route table."""
    from core.server import to_event

    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    event = to_event(method, target, list(headers.items()), body, client_ip(headers))
    event["requestContext"].update(accountId="azure", apiId="azure-functions")
    with hosts.resolvers().lend() as app:
        result = app.resolve(event, None)
    return from_result(result)


def client_ip(headers: Mapping[str, str]) -> str:
    """The caller's address from ``X-Forwarded-For`` (the Functions front end writes
    ``ip:port``); empty when there is none."""
    forwarded = {k.lower(): v for k, v in headers.items()}.get("x-forwarded-for", "")
    first = forwarded.split(",", 1)[0].strip()
    if first.startswith("["):  # [IPv6]:port
        return first[1:].split("]", 1)[0]
    if first.count(":") == 1:  # IPv4:port
        return first.split(":", 1)[0]
    return first


def from_result(result: Mapping[str, Any]) -> Reply:
    """A reply for the resolver's payload 2.0 response."""
    text = result.get("body") or ""
    data = base64.b64decode(text) if result.get("isBase64Encoded") else str(text).encode("utf-8")
    headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}  # the API sets no cookies
    return Reply(int(result.get("statusCode", 500)), headers, data)


# ---- Event Grid webhook --------------------------------------------------------------------


def webhook(method: str, headers: Mapping[str, str], body: bytes) -> Reply:
    """An Event Grid webhook delivery. The two handshakes are answered before anything else is
    looked at (and before the wiring is built): the CloudEvents abuse-protection ``OPTIONS``
    request and the Event Grid ``SubscriptionValidationEvent``. Events are then applied one by one;
    if any failed in a way a retry can fix, the answer is 503 and Event Grid delivers the whole
    batch again (events already applied come back as duplicates)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if method.upper() == "OPTIONS":
        origin = lowered.get("webhook-request-origin", "").strip()
        if not origin:
            return _json(400, {"error": "an OPTIONS handshake names its WebHook-Request-Origin"})
        return Reply(200, {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*", "Allow": "POST, OPTIONS"})
    try:
        events = eventgrid.parse_body(body)
    except TrainError as exc:
        log.warning("webhook delivery (%s) refused: %s", lowered.get("aeg-event-type", "-"), exc.detail)
        return _json(400, {"error": exc.detail})
    code = eventgrid.validation_code(events)
    if code is not None:
        log.info("Event Grid subscription validation answered")
        return _json(200, {"validationResponse": code})
    if lowered.get("aeg-event-type", "").lower() == "subscriptionvalidation":
        return _json(400, {"error": "a SubscriptionValidation delivery carries data.validationCode"})
    outcomes: list[str] = []
    retry = False
    for event in events:
        try:
            outcomes.append(eventgrid.handle(event))
        except TrainError as exc:
            if not exc.retryable:
                raise
            outcomes.append("RETRY")
            retry = True
    if retry:
        return _json(503, {"outcomes": outcomes}, {"Retry-After": "10"})
    return _json(200, {"outcomes": outcomes})


def _json(status: int, document: object, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(document).encode())
