"""A webhook receiver for tests, on 127.0.0.1: verifies each delivery's signature the way
docs/webhooks.md tells users to, keeps one copy per delivery id (de-duplication), and can be
scripted to fail: answer an error status, be too slow, or redirect.

    with WebhookReceiver(secret) as receiver:
        receiver.script("500", "slow")       # the next two requests fail, the rest succeed
        ...
        receiver.unique                      # {delivery id: body} of the accepted ones
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from core.notifiers.webhook import DELIVERY_HEADER, SIGNATURE_HEADER, verify
from tests.loopback import Loopback


class WebhookReceiver:
    def __init__(self, secret: bytes, *, slow_seconds: float = 2.0) -> None:
        self.secret = secret
        self.slow_seconds = slow_seconds
        self.requests: list[dict[str, Any]] = []  # every request: headers, body, verdict
        self.unique: dict[str, dict[str, Any]] = {}
        self.bad_signatures = 0
        self._plan: list[str] = []
        self._lock = threading.Lock()
        self._http = Loopback("webhook-receiver")

    def script(self, *answers: str) -> None:
        """What the next requests get: "500" (or any status), "slow", "redirect"; then 204s."""
        with self._lock:
            self._plan.extend(answers)

    @property
    def url(self) -> str:
        return f"{self._http.url}/hooks/train"

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(_Handler):
            owner = receiver

        self._http.start(Handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.stop()

    def take(self, headers: dict[str, str], body: bytes, path: str) -> tuple[int, str | None]:
        """``headers`` with lower-case names."""
        with self._lock:
            answer = self._plan.pop(0) if self._plan else "204"
            signed = verify(self.secret, headers.get(SIGNATURE_HEADER.lower(), ""), body)
            self.requests.append({"headers": headers, "body": body, "signed": signed, "answer": answer, "path": path})
            if not signed:
                self.bad_signatures += 1
                return 400, None
        if answer == "slow":
            time.sleep(self.slow_seconds)
            return 204, None
        if answer == "redirect":
            return 307, "/elsewhere"
        status = int(answer)
        if 200 <= status < 300:
            payload = json.loads(body)
            with self._lock:  # one copy per delivery id, whatever the number of tries
                self.unique.setdefault(headers.get(DELIVERY_HEADER.lower(), ""), payload)
        return status, None


class _Handler(BaseHTTPRequestHandler):
    owner: WebhookReceiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}  # names are case-insensitive
        status, location = self.owner.take(headers, body, self.path)
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return
