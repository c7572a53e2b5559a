"""Schemathesis over Train's OpenAPI document: positive and negative cases, bounded.

The document is built at collection by the same route table the server answers ``/openapi.json``
from (schemathesis 4's ``from_fixture`` loader breaks under pytest 9, so the schema cannot come
from a fixture); ``test_served_document_is_the_one_fuzzed`` proves the running server serves
exactly this document. Every case is sent over TCP to a real ``LocalHTTPServer``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from core.api import create_app
from core.auth import hash_secret
from core.model import ApiKey
from core.server import to_event
from core.service import TrainService
from tests.fakes import FakeBackend, InMemoryJobStore, InMemoryKeyStore
from tests.hostile.conftest import ACCOUNT, Live, start_live

MAX_EXAMPLES = 60
SEED = 20260101


def _document() -> dict[str, Any]:
    app = create_app(TrainService(InMemoryJobStore(), {"local": FakeBackend()}), InMemoryKeyStore())
    answer = app.resolve(to_event("GET", "/openapi.json", [], b"", "127.0.0.1"), None)
    return json.loads(answer["body"])


# The fuzzing key is fixed so that schemathesis' own auth (the document's two apiKey schemes) can
# send it: negative cases that drop or mangle an auth header then stay what they were made as.
FUZZ_KEY_ID = "fuzzfuzzfuzz"
FUZZ_SECRET = "f" * 43
FUZZ_KEY = f"trn_{FUZZ_KEY_ID}_{FUZZ_SECRET}"
CONFIG = SchemathesisConfig.from_dict({
    "seed": SEED,
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
    "auth": {"openapi": {"ApiKey": {"api_key": FUZZ_KEY}, "Account": {"api_key": ACCOUNT}}},
    # Train checks more than JSON Schema says (env names, durations, image references, what a
    # backend can run, opaque cursors): a schema-valid request may still be 400 or 422.
    "checks": {"positive_data_acceptance": {"expected-statuses": ["2XX", 400, 401, 403, 404, 422]}},
})
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)


@pytest.fixture(scope="module")
def live_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    for live in start_live(tmp_path_factory.mktemp("hostile")):
        fuzz_key = ApiKey(key_id=FUZZ_KEY_ID, secret_hash=hash_secret(FUZZ_SECRET), account_ids=[ACCOUNT],
                          label="fuzz", created_at=datetime.now(UTC))
        live.store.put_key(fuzz_key)
        yield live


def test_served_document_is_the_one_fuzzed(live_module: Live) -> None:
    reply = live_module.send("GET", "/openapi.json")
    assert reply.status == 200
    assert reply.json == schema.raw_schema


@schema.parametrize()
def test_fuzz(case: Any, live_module: Live) -> None:
    response = case.call(base_url=live_module.url)
    case.validate_response(response)
    assert response.status_code < 500
    if response.status_code >= 400:
        assert response.headers["content-type"][0].split(";")[0] == "application/problem+json"
        doc = response.json()
        assert {"type", "title", "status", "detail"} <= doc.keys()


@pytest.mark.parametrize(
    ("path", "method"),
    [("/v1/jobs/{job_id}", "GET"), ("/v1/jobs/{job_id}/events", "GET"), ("/v1/jobs/{job_id}/logs", "GET"),
     ("/v1/jobs/{job_id}/checkpoints", "GET"), ("/v1/jobs/{job_id}/cancel", "POST")],
)
def test_answers_about_an_existing_job_conform(live_module: Live, path: str, method: str) -> None:
    """Fuzzed job ids never exist; here every job route answers about a real one, and schemathesis
    checks each answer against the document."""
    spec = {"name": "conform", "backend": "local", "command": ["python", "train.py"]}
    created = schema["/v1/jobs"]["POST"].Case(body=spec, media_type="application/json")
    response = created.call(base_url=live_module.url, headers=live_module.auth())
    created.validate_response(response)
    job_id = response.json()["id"]
    case = schema[path][method].Case(path_parameters={"job_id": job_id})
    answer = case.call(base_url=live_module.url, headers=live_module.auth())
    case.validate_response(answer)
    assert answer.status_code in (200, 202)
