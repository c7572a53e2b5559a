"""Small fake secret endpoints on 127.0.0.1 that the real clients talk to.

``FakeGCPSecretManager`` answers ``GET /v1/projects/<p>/secrets/<name>/versions/latest:access`` over
plain HTTP as Secret Manager does (base64 payload with its CRC32C). ``FakeKeyVault`` answers
``GET /secrets/<name>?api-version=...`` over HTTPS with a self-signed certificate (point
``REQUESTS_CA_BUNDLE`` at ``ca_file``: azure-core sends bearer tokens over https only) and wants a
bearer token. Both record every request and can be told to fail the next one.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import google_crc32c

from tests.loopback import Loopback

Answer = tuple[int, dict[str, Any]]


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class _FakeServer:
    tls = False

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.requests: list[Seen] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._http = Loopback(type(self).__name__, tls=self.tls)

    def start(self) -> str:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body = owner._handle(Seen(parts.path, parse_qs(parts.query), headers))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http.start(Handler)
        return self.url

    def stop(self) -> None:
        self._http.close()

    @property
    def url(self) -> str:
        return self._http.url

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures += [status] * times

    def _handle(self, seen: Seen) -> Answer:
        with self._lock:
            self.requests.append(seen)
            if self._failures:
                status = self._failures.pop(0)
                return status, {"error": {"code": status, "message": "failing as the test asked"}}
            return self.answer(seen)

    def answer(self, seen: Seen) -> Answer:
        raise NotImplementedError

    def __enter__(self) -> _FakeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FakeGCPSecretManager(_FakeServer):
    ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/latest:access$")

    def __init__(self, project: str = "train-test") -> None:
        super().__init__()
        self.project = project

    def answer(self, seen: Seen) -> Answer:
        match = self.ACCESS.match(seen.path)
        if match is None or match.group(1) != self.project:
            return 404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "no such resource"}}
        name = match.group(2)
        if name not in self.secrets:
            message = f"Secret [projects/{self.project}/secrets/{name}] not found or has no versions."
            return 404, {"error": {"code": 404, "status": "NOT_FOUND", "message": message}}
        data = self.secrets[name].encode()
        payload = {"data": base64.b64encode(data).decode(), "dataCrc32c": str(google_crc32c.value(data))}
        return 200, {"name": f"projects/{self.project}/secrets/{name}/versions/1", "payload": payload}


class FakeKeyVault(_FakeServer):
    tls = True
    SECRET = re.compile(r"^/secrets/([^/]+)/?$")

    def __init__(self) -> None:
        super().__init__()
        self.ca_file = str(self._http.ca_file)

    def answer(self, seen: Seen) -> Answer:
        if not seen.headers.get("authorization", "").startswith("Bearer "):
            return 401, {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer token."}}
        match = self.SECRET.match(seen.path)
        if match is None or not seen.query.get("api-version"):
            return 400, {"error": {"code": "BadParameter", "message": "bad request"}}
        name = match.group(1)
        if name not in self.secrets:
            message = f"A secret with (name/id) {name} was not found in this key vault."
            return 404, {"error": {"code": "SecretNotFound", "message": message}}
        return 200, {"value": self.secrets[name], "id": f"{self.url}/secrets/{name}/0123456789abcdef",
                     "attributes": {"enabled": True}}
