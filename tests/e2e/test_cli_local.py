"""The whole local stack through the CLI: ``train serve`` in a subprocess, the hello example
submitted and followed to COMPLETED, account isolation with a second key, then SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"

pytestmark = pytest.mark.slow


@dataclass
class Server:
    proc: subprocess.Popen[str]
    data_dir: Path
    url: str = ""
    output: list[str] = field(default_factory=list)


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAIN_", "STORAGE_MOUNT_"))}
    return env | {"TRAIN_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)} | extra


def train(*args: str, data_dir: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args], env=base_env(data_dir, **env), cwd=data_dir.parent,
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    data_dir = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
        env=base_env(data_dir), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    running = Server(proc, data_dir)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            running.output.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while not running.url:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or proc.poll() is not None:
                pytest.fail("train serve did not start:\n" + "".join(running.output))
            try:
                match = re.search(r"Train is listening on (http://\S+)", lines.get(timeout=min(remaining, 1)))
            except queue.Empty:
                continue
            if match:
                running.url = match.group(1)
        wait_healthy(running.url)
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def test_hello_runs_to_completed_and_accounts_stay_apart(server: Server, tmp_path: Path) -> None:
    creds = json.loads((server.data_dir / "credentials.json").read_text())
    assert creds["url"] == server.url and creds["account_id"] == "dev" and creds["api_key"].startswith("trn_")
    assert (server.data_dir / "credentials.json").stat().st_mode & 0o777 == 0o600

    run = train("submit", "-f", str(HELLO / "spec.yaml"), "--follow", "--poll", "0.2", data_dir=server.data_dir)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "COMPLETED" in run.stdout
    assert "epoch 5/5 loss=" in run.stdout and "done: y =" in run.stdout
    job_id = re.search(r"Submitted job (\w+)", run.stdout).group(1)  # type: ignore[union-attr]

    job = json.loads(train("get", job_id, "--json", data_dir=server.data_dir).stdout)
    assert (job["status"], job["backend"], job["account_id"]) == ("COMPLETED", "local", "dev")
    assert job["storage_mounts"][0]["source_uri"] == str(HELLO / "data")
    logs = json.loads(train("logs", job_id, "--json", data_dir=server.data_dir).stdout)
    assert sum("loss=" in line["message"] for line in logs["lines"]) == 5
    ckpts = json.loads(train("checkpoints", job_id, "--json", data_dir=server.data_dir).stdout)["checkpoints"]
    assert sum("epoch-" in c["name"] for c in ckpts) == 5
    events = json.loads(train("events", job_id, "--json", data_dir=server.data_dir).stdout)["events"]
    assert [e["status"] for e in events if e["kind"] == "transition"][-1] == "COMPLETED"

    created = train("keys", "create", "--account", "team-b", "--json", data_dir=server.data_dir)
    assert created.returncode == 0, created.stderr
    other_key = json.loads(created.stdout)["api_key"]
    hidden = train("get", job_id, data_dir=server.data_dir, TRAIN_API_KEY=other_key, TRAIN_ACCOUNT_ID="team-b")
    assert hidden.returncode == 2 and "(404)" in hidden.stderr
    refused = train("get", job_id, data_dir=server.data_dir, TRAIN_API_KEY=other_key, TRAIN_ACCOUNT_ID="dev")
    assert refused.returncode == 2 and "(403)" in refused.stderr
    assert json.loads(train("list", "--json", data_dir=server.data_dir, TRAIN_API_KEY=other_key,
                            TRAIN_ACCOUNT_ID="team-b").stdout)["jobs"] == []

    spec = (HELLO / "spec.yaml").read_text().replace('"--lr", "0.1"]', '"--lr", "0.1", "--fail-at-epoch", "2"]')
    failing = tmp_path / "fail" / "spec.yaml"
    failing.parent.mkdir()
    failing.write_text(spec.replace("./data", str(HELLO / "data")).replace("working_dir: .", f"working_dir: {HELLO}"))
    failed = train("submit", "-f", str(failing), "--follow", "--json", "--poll", "0.2", data_dir=server.data_dir)
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout)["status"] == "FAILED"
    assert "failing at epoch 2" in failed.stderr

    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=20) == 0
    assert api_key_absent(server.output, creds["api_key"], other_key)


def api_key_absent(output: list[str], *keys: str) -> bool:
    """The server prints the dev key once on first start; no other key, and nothing after."""
    text = "".join(output)
    return text.count(keys[0]) <= 1 and all(k not in text for k in keys[1:])
