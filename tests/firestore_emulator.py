"""The npm ``@firestore-emulator/server`` for the tests, on 127.0.0.1 only.

``tests/firestore_emulator.mjs`` binds the package's gRPC service to the loopback address (the
package's own ``start()`` binds every interface). The package is looked up in the directory named
by ``TRAIN_NODE_MODULES`` when set, else in the repository's ``node_modules`` (``npm ci`` at the
root installs it from ``package.json``). Without ``node`` or the package the emulator raises
``ServerStartError``: the tests that need it fail, never skip.

``FIRESTORE`` is the emulator shared by a whole test session: started by its first user, stopped by
``pytest_sessionfinish`` (and, as a fallback, when the interpreter exits; the script also exits
when its stdin closes, so it never outlives the test process). ``new_firestore_store()`` gives
each test a fresh collection prefix on it.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any

from core.stores.firestore import FirestoreJobStore
from tests.servers import ServerStartError, free_port

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("firestore_emulator.mjs")
MODULES_ENV = "TRAIN_NODE_MODULES"
PACKAGE = "@firestore-emulator/server"
PROJECT = "train-test"
EMULATOR_HOST_ENV = "FIRESTORE_EMULATOR_HOST"

_env_lock = threading.Lock()


def node_modules() -> Path:
    """The node_modules directory holding the emulator package, or ``ServerStartError``."""
    configured = os.environ.get(MODULES_ENV)
    modules = Path(configured) if configured else ROOT / "node_modules"
    if not (modules / PACKAGE / "package.json").is_file():
        how = f"{MODULES_ENV}={configured}" if configured else f"{modules} (set {MODULES_ENV} to use another)"
        raise ServerStartError(f"{PACKAGE} is not installed in {how}; run `npm ci` at the repository root")
    return modules


class FirestoreEmulator:
    """One emulator process. ``trace=True`` records every RPC it serves (see ``calls``)."""

    def __init__(self, *, trace: bool = False, timeout: float = 20.0) -> None:
        self.trace = trace
        self._timeout = timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._host: str | None = None
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, starting the emulator on first use."""
        with self._lock:
            if self._host is None:
                self._host = self._start()
            return self._host

    @property
    def env(self) -> dict[str, str]:
        """The environment a subprocess needs to talk to this emulator."""
        return {EMULATOR_HOST_ENV: self.host}

    def _start(self, attempts: int = 3) -> str:
        node = shutil.which("node")
        if node is None:
            raise ServerStartError("node is not on PATH; the Firestore emulator needs Node.js 20 or later")
        modules = node_modules()
        for _ in range(attempts - 1):
            try:
                return self._launch(node, modules)
            except ServerStartError:
                continue  # most likely another process took the port between probe and bind
        return self._launch(node, modules)

    def _launch(self, node: str, modules: Path) -> str:
        port = free_port()
        log = tempfile.TemporaryFile()
        command = [node, str(SCRIPT), str(port), str(modules), *(["--trace"] if self.trace else [])]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_port(port, process, log, self._timeout)
        except ServerStartError:
            _terminate(process)
            log.close()
            raise
        self._process, self._log = process, log
        return f"127.0.0.1:{port}"

    def stop(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._process is not None:
                _terminate(self._process)
                self._process = None
            if self._log is not None:
                self._log.close()
                self._log = None
            self._host = None

    def client(self, project: str = PROJECT) -> Any:
        """A new real ``google.cloud.firestore.Client`` for this emulator."""
        return emulator_client(self.host, project)

    def shared_client(self) -> Any:
        """One client (one gRPC channel) reused by every store on this emulator."""
        host = self.host
        with self._lock:
            if self._client is None:
                self._client = emulator_client(host, PROJECT)
            return self._client

    def new_store(self, **options: Any) -> FirestoreJobStore:
        """A store under a collection prefix no other test uses."""
        prefix = f"t{uuid.uuid4().hex[:12]}_"
        return FirestoreJobStore(prefix, client=options.pop("client", None) or self.shared_client(), **options)

    def calls(self) -> list[dict[str, Any]]:
        """Every RPC served so far, oldest first: ``{"method": "RunQuery", "request": {...}}``."""
        if not self.trace or self._log is None:
            raise ServerStartError("calls() needs a started emulator made with trace=True")
        time.sleep(0.05)  # the emulator writes its trace line before serving; let it reach the file
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


def emulator_client(host: str, project: str) -> Any:
    """The SDK reads ``FIRESTORE_EMULATOR_HOST`` when a client is built, so it is set only then."""
    from google.cloud import firestore

    with _env_lock:
        saved = os.environ.get(EMULATOR_HOST_ENV)
        os.environ[EMULATOR_HOST_ENV] = host
        try:
            return firestore.Client(project=project)
        finally:
            if saved is None:
                del os.environ[EMULATOR_HOST_ENV]
            else:
                os.environ[EMULATOR_HOST_ENV] = saved


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            tail = log.read()[-2000:].decode(errors="replace")
            raise ServerStartError(f"{process.args!r} exited with {process.returncode}:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServerStartError(f"{process.args!r} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _terminate(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdin is not None:
        process.stdin.close()


FIRESTORE = FirestoreEmulator()
atexit.register(FIRESTORE.stop)


def new_firestore_store() -> FirestoreJobStore:
    """A store over fresh collections on the session's emulator."""
    return FIRESTORE.new_store()
