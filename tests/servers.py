"""Local servers the tests start as subprocesses on 127.0.0.1 and stop when done.

``moto_server()`` is a context manager for one server; ``MOTO`` is the one shared by a whole test
session, started by its first user and stopped by ``pytest_sessionfinish`` in ``tests/conftest.py``.
A server that cannot start raises ``ServerStartError``: the tests that need it fail, never skip.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import IO, Any

from core.stores.dynamodb import DynamoDBJobStore, create_table

# Fake credentials for the test clients and servers only; nothing here reaches real AWS.
FAKE_AWS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class ServerStartError(Exception):
    """A local test server did not start or did not answer."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answers(url: str, process: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> None:
    """Poll ``url`` until it answers with any HTTP status; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            tail = log.read()[-2000:].decode(errors="replace")
            raise ServerStartError(f"{process.args!r} exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.05)
    raise ServerStartError(f"{process.args!r} did not answer {url} within {timeout:.0f} s")


@contextmanager
def serve(command: list[str], port: int, *, health_path: str = "/", timeout: float = 30.0) -> Iterator[str]:
    """Run ``command`` (which must listen on 127.0.0.1:``port``), yield its URL, then stop it."""
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **FAKE_AWS_ENV})
        try:
            wait_until_answers(url + health_path, process, log, timeout)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# moto.server's own main, with one lock around the request handler. moto checks a
# ConditionExpression and then writes, with no lock between the two, so two concurrent
# conditional writes can both succeed; DynamoDB makes each item write atomic. Serving one
# request at a time gives the tests DynamoDB's guarantee (and keeps the connection threads).
_SERIAL_MOTO = """
import sys, threading
from moto.moto_server.werkzeug_app import DomainDispatcherApplication as App
import moto.server
lock, call = threading.Lock(), App.__call__
def serial(self, environ, start_response):
    with lock:
        return call(self, environ, start_response)
App.__call__ = serial
moto.server.main(sys.argv[1:])
"""


@contextmanager
def moto_server(*, attempts: int = 3) -> Iterator[str]:
    """moto in server mode (DynamoDB, S3, CloudWatch Logs, ...) on a free port of 127.0.0.1."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        command = [sys.executable, "-c", _SERIAL_MOTO, "-H", "127.0.0.1", "-p", str(port)]
        stack = ExitStack()
        try:
            url = stack.enter_context(serve(command, port, health_path="/moto-api/data.json"))
        except ServerStartError:
            if attempt == attempts:
                raise
            continue  # most likely another process took the port between probe and bind
        with stack:
            yield url
        return


class SharedServer:
    """One server for the whole session, started on first use."""

    def __init__(self, start: Callable[[], AbstractContextManager[str]]) -> None:
        self._start = start
        self._stack = ExitStack()
        self._url: str | None = None
        self._lock = threading.Lock()

    def url(self) -> str:
        with self._lock:
            if self._url is None:
                self._url = self._stack.enter_context(self._start())
            return self._url

    def stop(self) -> None:
        with self._lock:
            self._stack.close()
            self._url = None


MOTO = SharedServer(moto_server)

_clients: dict[str, Any] = {}


def dynamodb_client(endpoint_url: str, **config: Any) -> Any:
    """A real boto3 DynamoDB client for a local endpoint, with fake credentials."""
    import boto3
    from botocore.config import Config

    options = {
        "retries": {"mode": "standard", "total_max_attempts": 3},
        "connect_timeout": 5,
        "read_timeout": 10,
        **config,
    }
    return boto3.client("dynamodb", endpoint_url=endpoint_url, config=Config(**options), **FAKE_AWS)


def new_dynamodb_store() -> DynamoDBJobStore:
    """A store over a fresh table on the session's moto server."""
    endpoint = MOTO.url()
    if endpoint not in _clients:
        _clients[endpoint] = dynamodb_client(endpoint, max_pool_connections=32)
    client = _clients[endpoint]
    name = f"train-{uuid.uuid4().hex[:12]}"
    create_table(client, name)
    return DynamoDBJobStore(name, client=client)
