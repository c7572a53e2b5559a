"""API Gateway → the route table. HTTP APIs send payload 2.0, which the route table takes as it
is; REST APIs (and HTTP APIs set to payload 1.0) send 1.0, converted on the way in and out."""

from __future__ import annotations

from typing import Any

from core import hosts
from core.apigw import is_payload_v1, v1_to_v2, v2_response_to_v1


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    app = hosts.http_app()
    if is_payload_v1(event):
        return v2_response_to_v1(app.resolve(v1_to_v2(event), context))
    return app.resolve(event, context)
