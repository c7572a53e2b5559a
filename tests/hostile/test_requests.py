"""Hand-made hostile requests against the real server: each is refused as problem+json and
leaves nothing behind (no job record, no native job)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.api import MAX_BODY_BYTES, MAX_JSON_DEPTH
from tests.hostile.conftest import Live, Reply, assert_problem, parse_raw, send_raw

JSON = [("Content-Type", "application/json")]
SPEC = {"name": "mnist", "backend": "local", "command": ["python", "train.py"]}


def _post(live: Live, body: bytes, path: str = "/v1/jobs", headers: list[tuple[str, str]] | None = None) -> Reply:
    sent = list(live.auth().items()) + (JSON if headers is None else headers)
    return live.send("POST", path, body, sent)


def _nothing_stored(live: Live) -> None:
    assert live.stored_jobs() == 0
    assert live.backend.creates == 0 and live.backend.submit_calls == 0


def test_a_clean_submission_is_stored(live: Live) -> None:
    """The baseline the refusals below are measured against."""
    reply = _post(live, json.dumps(SPEC).encode())
    assert reply.status == 201, reply.body
    assert live.stored_jobs() == 1 and live.backend.creates == 1


def test_oversized_body_is_413(live: Live) -> None:
    body = b'{"name": "' + b"a" * MAX_BODY_BYTES + b'"}'
    doc = assert_problem(_post(live, body), 413)
    assert doc["errors"][0]["field"] == "body"
    _nothing_stored(live)


def test_oversized_body_announced_with_expect_100_is_413_before_it_is_sent(live: Live) -> None:
    key, account = live.key.encode(), b"acct-a"
    head = (b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nx-api-key: " + key
            + b"\r\nx-selected-account-id: " + account + b"\r\nExpect: 100-continue\r\n"
            + b"Content-Length: " + str(MAX_BODY_BYTES + 1).encode() + b"\r\n\r\n")
    assert_problem(parse_raw(send_raw(live, head)), 413)
    _nothing_stored(live)


def test_chunked_body_is_411(live: Live) -> None:
    head = (b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nx-api-key: " + live.key.encode()
            + b"\r\nx-selected-account-id: acct-a\r\nTransfer-Encoding: chunked\r\n\r\n")
    body = json.dumps(SPEC).encode()
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    assert_problem(parse_raw(send_raw(live, head + chunked)), 411)
    _nothing_stored(live)


def _nested(levels: int, leaf: str = "1") -> str:
    return '{"a":' * levels + leaf + "}" * levels


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/jobs", "[" * 10_000 + "]" * 10_000),
        ("/v1/jobs", "{" + '"a":{' * 10_000 + "}" * 10_001),
        ("/v1/jobs", json.dumps(SPEC)[:-1] + ', "backend_options": ' + _nested(10_000) + "}"),
        ("/v1/jobs", json.dumps(SPEC)[:-1] + ', "backend_options": ' + "[" * 900 + "]" * 900 + "}"),
        ("/v1/jobs", json.dumps(SPEC)[:-1] + ', "backend_options": ' + _nested(MAX_JSON_DEPTH) + "}"),
        ("/v1/local/jobs", '{"name": "mnist", "job_config": ' + _nested(10_000) + "}"),
    ],
    ids=["list-10000", "object-10000", "options-10000", "options-900", "one-past-the-limit", "native-10000"],
)
def test_deep_json_is_400(live: Live, path: str, body: str) -> None:
    doc = assert_problem(_post(live, body.encode(), path), 400)
    assert f"deeper than {MAX_JSON_DEPTH}" in doc["detail"]
    assert [e["field"] for e in doc["errors"]] == ["body"]
    _nothing_stored(live)


def test_depth_at_the_limit_passes_the_gate(live: Live) -> None:
    body = json.dumps(SPEC)[:-1] + ', "backend_options": ' + _nested(MAX_JSON_DEPTH - 1) + "}"
    reply = _post(live, body.encode())
    assert reply.status == 201, reply.body


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "mnist", "backend": "local", "command": ["x"], "backend_options": {"a": NaN}}',
        b'{"name": "mnist", "backend": "local", "command": ["x"], "backend_options": {"a": -Infinity}}',
        b'{"name": "mnist", "backend": "local", "command": ["x"], "backend_options": {"a": ' + b"9" * 5000 + b"}}",
        b'\xef\xbb\xbf{"name": "mnist", "backend": "local", "command": ["x"]}',
        b'{"name": "mn\x00ist", "backend": "local", "command": ["x"]}',
        b'{"name": "mnist", "backend": "local", "command": ["x"]',
        b"null",
    ],
    ids=["nan", "infinity", "5000-digit-int", "bom", "raw-nul", "truncated", "null"],
)
def test_bodies_that_are_not_strict_json_are_refused(live: Live, body: bytes) -> None:
    reply = _post(live, body)
    assert 400 <= reply.status < 500
    assert_problem(reply)
    _nothing_stored(live)


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "mn\xffist", "backend": "local", "command": ["x"]}',
        b'{"name": "\xc3\x28", "backend": "local", "command": ["x"]}',
        b'{"name": "\xed\xa0\x80", "backend": "local", "command": ["x"]}',
        '{"name": "mnist", "backend": "local", "command": ["x"]}'.encode("utf-16"),
    ],
    ids=["xff", "bad-continuation", "encoded-surrogate", "utf-16"],
)
def test_invalid_utf8_is_400(live: Live, body: bytes) -> None:
    doc = assert_problem(_post(live, body), 400)
    assert doc["errors"][0]["field"] == "body"
    _nothing_stored(live)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/jsonx", "application/xml", "application/json\x7f"],
)
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/local/jobs"])
def test_wrong_content_types_are_415(live: Live, content_type: str | None, path: str) -> None:
    headers = [] if content_type is None else [("Content-Type", content_type)]
    body = json.dumps({"name": "mnist", "job_config": {"command": ["x"]}} if "local" in path else SPEC).encode()
    reply = _post(live, body, path, headers)
    if content_type == "application/json\x7f":  # a control character: refused as a malformed header first
        assert_problem(reply, 400)
    else:
        doc = assert_problem(reply, 415)
        assert doc["errors"][0]["field"] == "content-type"
    _nothing_stored(live)


NAMES = ["mnïst", "\uff4dnist", "mnist\u200b", "mn\u202eist", "mnist🚀", "a\u0000b", "MNIST", "mn ist", "mn_ist",
         "-mnist", "mnist-", "", "a" * 64, "mnist\n", "ǅ"]


@pytest.mark.parametrize("name", NAMES, ids=[repr(n)[:20] for n in NAMES])
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/local/jobs"])
def test_names_outside_a_z_0_9_dash_are_422_naming_name(live: Live, name: str, path: str) -> None:
    native = {"name": name, "job_config": {"command": ["x"]}}
    spec: dict[str, Any] = native if "local" in path else {**SPEC, "name": name}
    doc = assert_problem(_post(live, json.dumps(spec).encode(), path), 422)
    assert [e["field"] for e in doc["errors"]] == ["name"], doc
    _nothing_stored(live)


def _raw_request(live: Live, *header_lines: bytes, body: bytes | None = None) -> Reply:
    head = b"POST /v1/jobs HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\n"
    head += b"".join(header_lines)
    payload = json.dumps(SPEC).encode() if body is None else body
    head += b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n"
    return parse_raw(send_raw(live, head + payload))


@pytest.mark.parametrize(
    "lines",
    [
        [b"x-api-key: {key}\rx-selected-account-id: acct-a\r\n"],
        [b"x-api-key: {key}\nx-selected-account-id: acct-a\r\n"],
        [b"x-api-key: {key}\r\n", b"x-selected-account-id: acct-a\rx-injected: 1\r\n"],
        [b"x-api-key: {key}\r\n", b" x-selected-account-id: acct-a\r\n", b"x-selected-account-id: acct-a\r\n"],
        [b"x-api-key: {key}\x00\r\n", b"x-selected-account-id: acct-a\r\n"],
        [b"x-api-key : {key}\r\n", b"x-selected-account-id: acct-a\r\n"],
        [b"x-api-key: {key}\r\n", b"x-selected-account-id: acct-a\r\n", b"no colon here\r\n"],
        [b"x-api-key: {key}\r\n", b"x-selected-account-id: acct-a\x1b[31m\r\n"],
    ],
    ids=["bare-cr", "bare-lf", "cr-injected-header", "obs-fold", "nul", "space-before-colon", "no-colon", "escape"],
)
def test_header_injection_is_400(live: Live, lines: list[bytes]) -> None:
    reply = _raw_request(live, *(line.replace(b"{key}", live.key.encode()) for line in lines))
    assert_problem(reply, 400)
    assert "x-injected" not in reply.headers
    _nothing_stored(live)


def test_the_same_headers_well_formed_are_accepted(live: Live) -> None:
    reply = _raw_request(live, b"x-api-key: " + live.key.encode() + b"\r\n", b"x-selected-account-id: acct-a\r\n")
    assert reply.status == 201, reply.body
    assert live.stored_jobs() == 1


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        ([b"x-api-key: {key}\r\n", b"x-api-key: {key}\r\n", b"x-selected-account-id: acct-a\r\n"], 401),
        ([b"x-api-key: {key}\r\n", b"x-api-key: trn_aaaaaaaaaaaa_" + b"b" * 43 + b"\r\n",
          b"x-selected-account-id: acct-a\r\n"], 401),
        ([b"x-api-key: {key}\r\n", b"x-selected-account-id: acct-a\r\n", b"x-selected-account-id: acct-b\r\n"], 403),
        ([b"x-api-key: {key}\r\n", b"x-selected-account-id: acct-a\r\n", b"x-selected-account-id: acct-a\r\n"], 403),
    ],
    ids=["same-key-twice", "two-keys", "two-accounts", "same-account-twice"],
)
def test_duplicate_auth_headers_are_refused(live: Live, lines: list[bytes], status: int) -> None:
    reply = _raw_request(live, *(line.replace(b"{key}", live.key.encode()) for line in lines))
    assert_problem(reply, status)
    _nothing_stored(live)


@pytest.mark.parametrize(("length", "status"), [(300, 401), (10_000, 401), (70_000, 431)])
def test_over_long_api_keys_are_refused(live: Live, length: int, status: int) -> None:
    key = (live.key + "x" * length)[:length]
    reply = live.send("POST", "/v1/jobs", json.dumps(SPEC).encode(),
                      [("x-api-key", key), ("x-selected-account-id", "acct-a"), *JSON])
    doc = assert_problem(reply, status)
    assert key not in json.dumps(doc)
    _nothing_stored(live)


@pytest.mark.parametrize(
    "path",
    ["/v1/jobs/%00", "/v1/jobs/%FF", "/v1/jobs/%C3%A9", "/v1/jobs/..%2F..%2Fetc%2Fpasswd", "/v1/jobs/a%0D%0Ab",
     "/v1/jobs/" + "a" * 5000, "/v1/jobs/x/cancel%00", "/v1/%00/jobs"],
)
def test_hostile_paths_are_404(live: Live, path: str) -> None:
    method = "POST" if path == "/v1/%00/jobs" else "GET"
    reply = live.send(method, path, b"{}" if method == "POST" else None, [*live.auth().items(), *JSON])
    assert_problem(reply, 404)


@pytest.mark.parametrize("query", ["name=%00", "name=a%0D%0Ab", "project=%FF", "status=%00", "cursor=%00",
                                   "limit=1e3", "limit=%00", "backend=..%2F"])
def test_hostile_query_values_are_answered_cleanly(live: Live, query: str) -> None:
    reply = live.send("GET", "/v1/jobs?" + query, None, list(live.auth().items()))
    if reply.status == 200:
        assert reply.json["jobs"] == []
    else:
        assert 400 <= reply.status < 500
        assert_problem(reply)


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PURGE", "BREW", "PUT", "DELETE", "PATCH"])
def test_unknown_methods_are_405_or_404_problems(live: Live, method: str) -> None:
    reply = live.send(method, "/v1/jobs", None, list(live.auth().items()))
    assert reply.status in (404, 405)
    assert_problem(reply)
    if reply.status == 405:
        assert reply.headers["allow"] == "GET, POST"
