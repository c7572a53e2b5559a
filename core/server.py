"""The local HTTP host: stdlib ``ThreadingHTTPServer`` in front of the one route table.

Each request becomes an API Gateway HTTP API payload 2.0 event, exactly as Lambda would receive
it, and the resolver's answer is written back. The Powertools resolver keeps per-request state on
itself, so one resolver serves one request at a time: the server keeps a pool of resolvers built
by an app factory and lends one to each request thread (the server starts a thread per
connection, so a thread-local would build a fresh resolver for nearly every request).
"""

from __future__ import annotations

import base64
import logging
import queue
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from core.api import MAX_BODY_BYTES
from core.errors import FieldError
from core.problems import PROBLEM_JSON, problem_document

log = logging.getLogger("train.server")

IDLE_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.05  # how soon stop() takes effect
DISCARD_LIMIT_BYTES = 16 * MAX_BODY_BYTES
DISCARD_TIMEOUT_S = 2.0


class Resolver(Protocol):
    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]: ...


class ResolverPool:
    """Resolvers lent to one request at a time; a new one is built when all are busy."""

    def __init__(self, factory: Callable[[], Resolver]) -> None:
        self._factory = factory
        self._idle: queue.SimpleQueue[Resolver] = queue.SimpleQueue()
        self.built = 0

    @contextmanager
    def lend(self) -> Iterator[Resolver]:
        try:
            resolver = self._idle.get_nowait()
        except queue.Empty:
            resolver = self._factory()
            self.built += 1
        try:
            yield resolver
        finally:
            self._idle.put(resolver)


def to_event(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str, protocol: str = "HTTP/1.1"
) -> dict[str, Any]:
    """An API Gateway HTTP API payload 2.0 event for one request, shaped as API Gateway shapes it:
    lower-cased headers with repeats comma-joined, cookies split out, repeated query keys
    comma-joined, binary bodies base64-encoded."""
    parts = urlsplit(target)
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": merged,
        "requestContext": {
            "accountId": "local",
            "apiId": "local",
            "domainName": merged.get("host", "localhost"),
            "http": {
                "method": method.upper(),
                "path": unquote(parts.path or "/"),
                "protocol": protocol,
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


# A header line as RFC 9110/9112 allow it: a token, a colon, a value without control characters
# (HTAB aside), CRLF. http.server's parser also takes a bare CR or LF as a line end and folds
# continuation lines, so a value smuggling "\r" + another header would be read as two headers.
_HEADER_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\x00-\x08\x0a-\x1f\x7f]*\r\n")


class _HeaderRecorder:
    """The connection's reader, keeping the raw header lines of the request being parsed."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.lines: list[bytes] | None = None

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self._raw.readline(limit)
        if self.lines is not None:
            self.lines.append(line)
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S  # closes idle keep-alive connections
    # Headers and body leave in two writes; with Nagle on, the body waits ~40 ms for the client's
    # delayed ACK on every response.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self._reader = _HeaderRecorder(self.rfile)
        self.rfile = self._reader  # type: ignore[assignment]

    def parse_request(self) -> bool:
        self._reader.lines = []
        return super().parse_request() and not self._refuse_headers()

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, CONNECT, made-up ones) goes to the route table too, which answers
        405 or 404 as problem+json; http.server would answer 501 with an HTML page."""
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (malformed request line, over-long line or headers) as
        problem+json instead of its HTML page."""
        try:
            title = HTTPStatus(code).phrase
        except ValueError:
            title = "Error"
        slug = title.lower().replace(" ", "-")
        self._problem(code, slug, title, message or explain or title)

    def handle_expect_100(self) -> bool:
        if self._refuse_headers() or self._refuse_body():
            return False
        return super().handle_expect_100()

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the one access log line is written by ``_handle`` (no headers, no bodies)."""

    def _refuse_headers(self) -> bool:
        """Answer 400 to a malformed header line; True if answered. Checks each request once."""
        lines, self._reader.lines = self._reader.lines, None
        for line in lines or ():
            if line == b"\r\n":
                break
            if not _HEADER_LINE.fullmatch(line):
                self.send_error(400, "a header line is malformed (control character, bare CR or LF, or folding)")
                return True
        return False

    def _refuse_body(self) -> bool:
        """Answer 413/400/411 before reading a body that cannot be accepted; True if answered."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._problem(411, "length-required", "Length required", "send the body with a Content-Length")
            return True
        length = self.headers.get("Content-Length")
        if length is None:
            return False
        if not length.strip().isdigit():
            self._problem(400, "bad-request", "Bad request", "Content-Length is not a number")
            return True
        if int(length) > MAX_BODY_BYTES:
            detail = f"the request body is {int(length)} bytes; the limit is {MAX_BODY_BYTES}"
            self._problem(413, "payload-too-large", "Payload too large", detail, FieldError(("body",), detail))
            if self.headers.get("Expect", "").lower() != "100-continue":
                self._discard(int(length))
            return True
        return False

    def _discard(self, length: int) -> None:
        """Read and drop a refused body after answering, so closing the socket does not reset the
        connection under a client that is still sending (it would lose the 413)."""
        remaining = min(length, DISCARD_LIMIT_BYTES)
        try:
            self.connection.settimeout(DISCARD_TIMEOUT_S)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def _handle(self) -> None:
        started = time.perf_counter()
        path = urlsplit(self.path).path
        self._status = 0
        try:
            if not self._refuse_body():
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = to_event(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
                with self.server.pool.lend() as app:
                    result = app.resolve(event, None)
                self._write(result)
        except (ConnectionError, TimeoutError):
            log.info("%s %s: the client went away", self.command, path)
            self.close_connection = True
        except Exception as exc:  # a bug in the host must still answer; its message may quote the request
            where = "".join(traceback.format_tb(exc.__traceback__))
            log.error("local server failed on %s %s with %s\n%s", self.command, path, type(exc).__name__, where)
            if not self._status:
                self._problem(500, "internal", "Internal error", "an unexpected error occurred")
        finally:
            ms = (time.perf_counter() - started) * 1000
            log.info("%s %s %s %.1fms", self.command, path, self._status, ms)

    def _write(self, result: Mapping[str, Any]) -> None:
        body_text = result.get("body") or ""
        body = base64.b64decode(body_text) if result.get("isBase64Encoded") else str(body_text).encode("utf-8")
        self._status = int(result.get("statusCode", 200))
        self.send_response(self._status)
        for name, value in (result.get("headers") or {}).items():
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, str(value))
        for cookie in result.get("cookies") or []:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _problem(self, status: int, slug: str, title: str, detail: str, *errors: FieldError) -> None:
        body = problem_document(status, slug, title, detail, errors).encode()
        self._status = status
        self.close_connection = True  # the unread body would be taken for the next request
        self.send_response(status)
        self.send_header("Content-Type", PROBLEM_JSON)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], pool: ResolverPool) -> None:
        self.pool = pool
        super().__init__(address, _Handler)


class LocalHTTPServer:
    """``train serve``'s HTTP server. Binds only ``host``; ``port=0`` picks a free port, which
    ``port`` then reports.

    Example:
        server = LocalHTTPServer(lambda: create_app(service, keys)); server.start(); ...; server.stop()
    """

    def __init__(self, app_factory: Callable[[], Resolver], host: str = "127.0.0.1", port: int = 0) -> None:
        self.pool = ResolverPool(app_factory)
        self._server = _Server((host, port), self.pool)
        self._thread: threading.Thread | None = None
        self._serving = False

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> LocalHTTPServer:
        if self._thread is None:
            self._serving = True
            self._thread = threading.Thread(target=self.serve_forever, name="train-http", daemon=True)
            self._thread.start()
            log.info("serving the Train API on %s", self.url)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``stop()`` is called from another."""
        self._serving = True
        self._server.serve_forever(poll_interval=POLL_INTERVAL_S)

    def stop(self) -> None:
        if self._serving:
            self._server.shutdown()
            self._serving = False
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
