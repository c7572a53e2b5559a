"""HTTP submit throughput of the local server (``core.server.LocalHTTPServer`` over
``core.api.create_app``), TrainService on SQLite (a file on disk) and the fake backend, against the
same submits called on the service in-process, in one run.

Three ways to submit the same spec, each bounded by ``REQUESTS`` and ``CAP_S``:
  - in-process: ``service.submit`` in a loop (the floor);
  - route table: the API Gateway event ``resolve``d in-process, no socket (auth, validation, JSON);
  - HTTP: ``THREADS`` client threads, each with its own keep-alive connection to 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.api import create_app
from core.auth import ACCOUNT_HEADER, API_KEY_HEADER, create_key
from core.model import JobSpec
from core.server import LocalHTTPServer, to_event
from core.service import TrainService
from core.stores.sqlite import SQLiteJobStore
from tests.fakes import FakeBackend

REQUESTS, CAP_S, THREADS = 2_000, 10.0, 8
LATENCY_SAMPLES = 50  # sequential requests on one connection, for the latency of one submit
IN_PROCESS = 500  # submits for each in-process rate
ACCOUNT = "acct"
BODY = {"name": "bench", "backend": "local", "command": ["python", "train.py"], "args": ["--epochs", "3"],
        "env": {"BATCH": "32"}, "labels": {"team": "bench"}}


def timed(count: int, one: Callable[[int], None]) -> tuple[int, float]:
    """Call ``one`` up to ``count`` times or until ``CAP_S`` has passed; (calls, seconds)."""
    start = time.perf_counter()
    done = 0
    while done < count and time.perf_counter() - start < CAP_S:
        one(done)
        done += 1
    return done, time.perf_counter() - start


def over_http(url_port: int, key: str) -> tuple[int, float, int]:
    """(answered, seconds, non-201 answers) with ``THREADS`` keep-alive clients."""
    body = json.dumps(BODY)
    headers = {"content-type": "application/json", API_KEY_HEADER: key, ACCOUNT_HEADER: ACCOUNT}
    lock = threading.Lock()
    counts = {"next": 0, "done": 0, "bad": 0}
    start = time.perf_counter()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=CAP_S)
        try:
            while True:
                with lock:
                    if counts["next"] >= REQUESTS or time.perf_counter() - start >= CAP_S:
                        return
                    counts["next"] += 1
                conn.request("POST", "/v1/jobs", body, headers)
                response = conn.getresponse()
                response.read()
                with lock:
                    counts["done"] += 1
                    counts["bad"] += response.status != 201
        finally:
            conn.close()

    workers = [threading.Thread(target=client) for _ in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return counts["done"], time.perf_counter() - start, counts["bad"]


def latency(port: int, key: str) -> float:
    """Median seconds of one submit over one keep-alive connection, one request at a time."""
    headers = {"content-type": "application/json", API_KEY_HEADER: key, ACCOUNT_HEADER: ACCOUNT}
    body = json.dumps(BODY)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=CAP_S)
    samples = []
    try:
        for _ in range(LATENCY_SAMPLES):
            start = time.perf_counter()
            conn.request("POST", "/v1/jobs", body, headers)
            conn.getresponse().read()
            samples.append(time.perf_counter() - start)
    finally:
        conn.close()
    return statistics.median(samples)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteJobStore(Path(tmp) / "train.db")
        service = TrainService(store, {"local": FakeBackend()})
        key, _ = create_key(store, [ACCOUNT])
        spec = JobSpec.model_validate(BODY)

        def submit(_: int) -> None:
            service.submit(ACCOUNT, spec)

        direct = timed(IN_PROCESS, submit)

        app = create_app(service, store)
        headers = [("content-type", "application/json"), (API_KEY_HEADER, key), (ACCOUNT_HEADER, ACCOUNT)]
        raw = json.dumps(BODY).encode()

        def resolve(_: int) -> None:
            answer = app.resolve(to_event("POST", "/v1/jobs", headers, raw, "127.0.0.1"), None)
            if answer["statusCode"] != 201:
                raise SystemExit(f"the route table answered {answer['statusCode']}: {answer.get('body')}")

        routed = timed(IN_PROCESS, resolve)
        with LocalHTTPServer(lambda: create_app(service, store)) as server:
            one = latency(server.port, key)
            answered, seconds, bad = over_http(server.port, key)
        store.close()
    if bad:
        raise SystemExit(f"{bad} of {answered} HTTP submits were not answered 201")
    rates = {"in-process": direct[0] / direct[1], "route table": routed[0] / routed[1], "HTTP": answered / seconds}
    print(f"submit in-process: {rates['in-process']:.0f}/s ({direct[0]} submits);"
          f" through the route table: {rates['route table']:.0f}/s ({routed[0]})")
    print(f"HTTP submit throughput, {THREADS} client threads on 127.0.0.1: {rates['HTTP']:.0f} requests/s"
          f" ({answered} requests in {seconds:.1f} s)")
    print(f"HTTP submit latency, one client: {one * 1000:.1f} ms median;"
          f" in-process: {direct[1] / direct[0] * 1000:.1f} ms per submit")
    print(f"HTTP / in-process submits per second: {rates['HTTP'] / rates['in-process']:.2f};"
          f" route table / in-process: {rates['route table'] / rates['in-process']:.2f}")


if __name__ == "__main__":
    main()
