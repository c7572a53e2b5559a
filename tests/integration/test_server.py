"""The real local HTTP server on 127.0.0.1, driven with urllib over TCP."""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from core.api import MAX_BODY_BYTES, create_app
from core.auth import create_key
from core.server import LocalHTTPServer
from core.service import TrainService
from tests.fakes import FakeBackend, InMemoryJobStore, InMemoryKeyStore


class Api:
    def __init__(self, server: LocalHTTPServer, key: str, account: str) -> None:
        self.server, self.key, self.account = server, key, account

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        sent = {"x-api-key": self.key, "x-selected-account-id": self.account, "Content-Type": "application/json"}
        request = urllib.request.Request(self.server.url + path, data=data, method=method,
                                         headers=sent | (headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, out_headers, text = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, out_headers, text = error.code, dict(error.headers), error.read()
        return status, {k.lower(): v for k, v in out_headers.items()}, json.loads(text) if text else None


@pytest.fixture
def store() -> InMemoryJobStore:
    return InMemoryJobStore()


@pytest.fixture
def server(store: InMemoryJobStore) -> Iterator[tuple[LocalHTTPServer, str]]:
    keys = InMemoryKeyStore()
    plaintext, _ = create_key(keys, ["acct-1"])
    service = TrainService(store, {"local": FakeBackend("local")})
    server = LocalHTTPServer(lambda: create_app(service, keys), host="127.0.0.1", port=0).start()
    try:
        yield server, plaintext
    finally:
        server.stop()


@pytest.fixture
def api(server: tuple[LocalHTTPServer, str]) -> Api:
    return Api(server[0], server[1], "acct-1")


def test_binds_the_given_host_and_a_free_port(server: tuple[LocalHTTPServer, str]) -> None:
    local = server[0]
    assert local.host == "127.0.0.1" and local.port > 0
    assert local.url == f"http://127.0.0.1:{local.port}"


def test_submit_get_list_from_8_threads(api: Api, store: InMemoryJobStore) -> None:
    def one(i: int) -> tuple[str, str]:
        spec = {"name": f"job-{i}", "backend": "local", "command": ["python", "train.py"], "args": [str(i)]}
        status, _, job = api.call("POST", "/v1/jobs", spec)
        assert status == 201, job
        status, _, got = api.call("GET", f"/v1/jobs/{job['id']}")
        assert status == 200 and got["id"] == job["id"]
        status, _, page = api.call("GET", "/v1/jobs?limit=5")
        assert status == 200 and 1 <= len(page["jobs"]) <= 5
        return job["id"], got["name"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(40)))
    ids = [job_id for job_id, _ in results]
    assert len(set(ids)) == 40
    # every response answered its own request, though requests overlapped
    assert [name for _, name in results] == [f"job-{i}" for i in range(40)]
    seen: list[str] = []
    cursor = ""
    while True:
        status, _, page = api.call("GET", "/v1/jobs?limit=100" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200
        seen += [j["id"] for j in page["jobs"]]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(ids) and len(store._jobs) == 40
    assert api.server.pool.built <= 8 + 1


def test_body_of_2_mib_is_413(api: Api, store: InMemoryJobStore) -> None:
    body = json.dumps({"name": "big", "backend": "local", "command": ["x"], "backend_options": {"pad": "x" * 2**21}})
    status, headers, problem = api.call("POST", "/v1/jobs", raw=body.encode())
    assert status == 413 and headers["content-type"] == "application/problem+json"
    assert problem["status"] == 413 and problem["errors"][0]["field"] == "body"
    assert store.writes == 0
    assert api.call("GET", "/health")[0] == 200  # the server is still serving


def test_413_answers_before_the_body_with_expect_continue(api: Api) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", api.server.port, timeout=10)
    try:
        connection.putrequest("POST", "/v1/jobs")
        for name, value in {"Content-Type": "application/json", "Content-Length": str(2 * MAX_BODY_BYTES),
                            "Expect": "100-continue", "x-api-key": api.key, "x-selected-account-id": "acct-1"}.items():
            connection.putheader(name, value)
        connection.endheaders()  # no body sent
        response = connection.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["status"] == 413
    finally:
        connection.close()


def test_unknown_path_is_404_problem(api: Api) -> None:
    status, headers, problem = api.call("GET", "/no/such/path")
    assert status == 404 and headers["content-type"] == "application/problem+json"
    assert problem["type"] == "https://train.dev/problems/not-found"


def test_auth_and_validation_errors_cross_the_wire(api: Api, store: InMemoryJobStore) -> None:
    status, _, problem = api.call("GET", "/v1/jobs", headers={"x-api-key": "nope"})
    assert status == 401 and problem["status"] == 401
    status, _, problem = api.call("POST", "/v1/jobs", {"name": "x", "backend": "local", "command": ["x"], "no": 1})
    assert status == 422 and problem["errors"][0]["field"] == "no"
    status, _, problem = api.call("POST", "/v1/jobs", raw=b"name=x", headers={"Content-Type": "text/plain"})
    assert status == 415
    assert store.writes == 0


def test_repeated_query_keys_reach_the_api_comma_joined(api: Api) -> None:
    status, _, page = api.call("GET", "/v1/jobs?status=PENDING&status=FAILED&limit=3")
    assert status == 200 and page["jobs"] == []
    status, _, problem = api.call("GET", "/v1/jobs?status=PENDING&status=NOPE")
    assert status == 422 and problem["errors"][0]["field"] == "status[1]"


def test_stop_closes_the_port(store: InMemoryJobStore) -> None:
    keys = InMemoryKeyStore()
    server = LocalHTTPServer(lambda: create_app(TrainService(store, {}), keys)).start()
    url = server.url
    with urllib.request.urlopen(url + "/health", timeout=5) as response:
        assert response.status == 200
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/health", timeout=2)


def test_access_log_has_method_path_status_and_no_secrets(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="train.server")
    assert api.call("GET", "/v1/jobs?name=private-name")[0] == 200
    deadline = time.monotonic() + 5  # the server logs after it has written the response
    while True:
        lines = [r.getMessage() for r in caplog.records if r.name == "train.server"]
        if any(line.startswith("GET /v1/jobs 200 ") and line.endswith("ms") for line in lines):
            break
        assert time.monotonic() < deadline, lines
        time.sleep(0.01)
    assert api.key not in caplog.text and "private-name" not in caplog.text


def test_binary_body_reaches_the_api_base64_encoded(api: Api, store: InMemoryJobStore) -> None:
    status, _, problem = api.call("POST", "/v1/jobs", raw=b"\xff\xfe\x00{}")
    assert status == 400 and problem["errors"][0]["field"] == "body"
    assert store.writes == 0
