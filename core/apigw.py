"""API Gateway payload shapes: REST API (and HTTP API) payload 1.0 in and out of the 2.0 shape
that the route table in ``core.api`` resolves.

Payload 1.0 gives headers and query parameters twice, single-valued (last value wins) and in
``multiValue*`` lists; 2.0 has one map with repeats comma-joined, lower-cased header names, and
cookies split out of the ``Cookie`` header. REST APIs keep the stage out of ``path`` (it is only
in ``requestContext.path``), which is what the route table needs. A 1.0 response may carry
``multiValueHeaders``; API Gateway merges it with ``headers``, preferring the lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode


def is_payload_v1(event: Mapping[str, Any]) -> bool:
    """True for a REST API proxy event or an HTTP API event in payload format 1.0."""
    return event.get("version") != "2.0" and "httpMethod" in event


def _multi(event: Mapping[str, Any], single: str, multi: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of a 1.0 map, from the multi-value form when it is there."""
    pairs: list[tuple[str, str]] = []
    lists = event.get(multi)
    if isinstance(lists, Mapping) and lists:
        for name, values in lists.items():
            for value in values if isinstance(values, list) else [values]:
                if value is not None:
                    pairs.append((str(name), str(value)))
        return pairs
    values = event.get(single)
    if isinstance(values, Mapping):
        pairs = [(str(name), str(value)) for name, value in values.items() if value is not None]
    return pairs


def _joined(pairs: list[tuple[str, str]], *, lower: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower() if lower else name
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def v1_to_v2(event: Mapping[str, Any]) -> dict[str, Any]:
    """The payload 2.0 event for a payload 1.0 event: the same request, shaped as an HTTP API
    would have delivered it."""
    context: Mapping[str, Any] = event.get("requestContext") or {}
    identity: Mapping[str, Any] = context.get("identity") or {}
    method = str(event.get("httpMethod") or context.get("httpMethod") or "GET").upper()
    path = str(event.get("path") or "/")
    headers = _joined(_multi(event, "headers", "multiValueHeaders"), lower=True)
    cookies = [c.strip() for c in headers.pop("cookie", "").replace(",", ";").split(";") if c.strip()]
    query_pairs = _multi(event, "queryStringParameters", "multiValueQueryStringParameters")
    out: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(query_pairs, quote_via=quote),
        "headers": headers,
        "requestContext": {
            "accountId": context.get("accountId"),
            "apiId": context.get("apiId"),
            "domainName": context.get("domainName") or headers.get("host"),
            "domainPrefix": context.get("domainPrefix"),
            "http": {
                "method": method,
                "path": path,
                "protocol": context.get("protocol") or "HTTP/1.1",
                "sourceIp": identity.get("sourceIp") or "",
                "userAgent": identity.get("userAgent") or headers.get("user-agent", ""),
            },
            "requestId": context.get("requestId") or "-",
            "routeKey": "$default",
            # 2.0 puts a named stage in front of rawPath and readers strip it again; 1.0's ``path``
            # never holds the stage, so the converted event says it was served at ``$default``.
            "stage": "$default",
            "time": context.get("requestTime"),
            "timeEpoch": context.get("requestTimeEpoch"),
        },
        "isBase64Encoded": bool(event.get("isBase64Encoded")),
    }
    if cookies:
        out["cookies"] = cookies
    if query_pairs:
        out["queryStringParameters"] = _joined(query_pairs, lower=False)
    if event.get("pathParameters"):
        out["pathParameters"] = dict(event["pathParameters"])
    if event.get("stageVariables"):
        out["stageVariables"] = dict(event["stageVariables"])
    if event.get("body") is not None:
        out["body"] = event["body"]
    return out


def v2_response_to_v1(response: Mapping[str, Any]) -> dict[str, Any]:
    """A payload 1.0 proxy response for the resolver's 2.0 response. Each header value is kept
    whole (a comma inside one, as in ``Allow: GET, POST``, is not a list separator here), and
    cookies become ``Set-Cookie`` entries."""
    headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
    multi: dict[str, list[str]] = {name: [value] for name, value in headers.items()}
    cookies = [str(c) for c in response.get("cookies") or []]
    if cookies:
        multi["Set-Cookie"] = cookies
    return {
        "statusCode": int(response.get("statusCode", 500)),
        "headers": headers,
        "multiValueHeaders": multi,
        "body": response.get("body") or "",
        "isBase64Encoded": bool(response.get("isBase64Encoded")),
    }
