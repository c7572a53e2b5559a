from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from core.cli import app
from tests.unit.fake_train_server import ACCOUNT, API_KEY, FakeTrain

Invoke = Callable[..., Result]

HELLO = """\
name: hello
backend: local
command: ["python3", "train.py"]
args: ["--epochs", "2"]
storage_mounts:
  - {source_uri: ./data, read_only: true}
  - {source_uri: "s3://bucket/data"}
  - {source_uri: /abs/path}
checkpointing: {enabled: true}
notify: {url: "https://hooks.example.com/x", on: [COMPLETED]}
backend_options: {working_dir: .}
"""


@pytest.fixture
def fake() -> Iterator[FakeTrain]:
    server = FakeTrain().start()
    yield server
    server.stop()


@pytest.fixture
def run(fake: FakeTrain, tmp_path: Path) -> Iterator[Invoke]:
    runner = CliRunner()
    env = {"TRAIN_URL": fake.url, "TRAIN_API_KEY": API_KEY, "TRAIN_ACCOUNT_ID": ACCOUNT,
           "TRAIN_DATA_DIR": str(tmp_path / "state")}

    def invoke(*args: str, **overrides: str | None) -> Result:
        return runner.invoke(app, list(args), env={**env, **overrides})

    yield invoke


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    path = folder / "spec.yaml"
    path.write_text(HELLO)
    return path


def test_submit_resolves_relative_paths_against_the_spec_file(run: Invoke, fake: FakeTrain, spec_file: Path) -> None:
    result = run("submit", "-f", str(spec_file), "--json", "--idempotency-key", "abc")

    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["name"] == "hello"
    sent = fake.requests[-1]
    assert sent.headers["idempotency-key"] == "abc"
    folder = spec_file.parent.resolve()
    assert [m["source_uri"] for m in sent.body["storage_mounts"]] == [str(folder / "data"), "s3://bucket/data",
                                                                      "/abs/path"]
    assert sent.body["backend_options"]["working_dir"] == str(folder)
    assert sent.body["notify"]["on"] == ["COMPLETED"]  # YAML 1.1 would have read `on` as true


def test_submit_json_spec_file(run: Invoke, fake: FakeTrain, tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"name": "j", "backend": "local", "command": ["true"]}))
    result = run("submit", "-f", str(path))
    assert result.exit_code == 0, result.output
    assert "Submitted job job0001" in result.stdout
    assert fake.requests[-1].body == {"name": "j", "backend": "local", "command": ["true"]}


def test_submit_native_needs_a_backend(run: Invoke, fake: FakeTrain, tmp_path: Path) -> None:
    path = tmp_path / "native.json"
    path.write_text(json.dumps({"name": "n", "job_config": {"command": ["true"], "working_dir": "sub"}}))

    refused = run("submit", "-f", str(path))
    assert refused.exit_code == 2
    assert "--backend" in refused.stderr

    result = run("submit", "-f", str(path), "--backend", "local", "--json")
    assert result.exit_code == 0, result.output
    assert fake.requests[-1].path == "/v1/local/jobs"
    assert fake.requests[-1].body["job_config"]["working_dir"] == str(tmp_path.resolve() / "sub")


def test_submit_follow_streams_and_exits_0_when_completed(run: Invoke, spec_file: Path) -> None:
    result = run("submit", "-f", str(spec_file), "--follow", "--poll", "0.05")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("IN_PROGRESS") < out.index("epoch 1 loss=0.1") < out.index("COMPLETED")
    assert out.count("epoch 2 loss=0.1") == 1 and "done" in out


def test_submit_follow_exits_1_when_the_job_fails(run: Invoke, spec_file: Path) -> None:
    spec_file.write_text(HELLO.replace('["--epochs", "2"]', '["--fail"]'))
    result = run("submit", "-f", str(spec_file), "--follow", "--poll", "0.05")
    assert result.exit_code == 1
    assert "FAILED" in result.stdout and "exit code 1" in result.stdout


def test_submit_follow_json_prints_only_the_final_job_on_stdout(run: Invoke, spec_file: Path) -> None:
    result = run("submit", "-f", str(spec_file), "--follow", "--json", "--poll", "0.05")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "COMPLETED"
    assert "epoch 1 loss=0.1" in result.stderr


def test_refused_submission_prints_the_problem_and_exits_2(run: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: Bad Name\nbackend: local\ncommand: [x]\n")
    result = run("submit", "-f", str(path))
    assert result.exit_code == 2
    assert "Invalid job request (422)" in result.stderr
    assert "- name: must match [a-z0-9-]" in result.stderr
    assert "- storage_mounts[0].source_uri: plain paths must be absolute" in result.stderr
    assert result.stdout == ""


def test_unreadable_spec_files_exit_2(run: Invoke, tmp_path: Path) -> None:
    assert run("submit", "-f", str(tmp_path / "missing.yaml")).exit_code == 2
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    result = run("submit", "-f", str(tmp_path / "list.yaml"))
    assert result.exit_code == 2 and "must hold a mapping" in result.stderr


def test_get_list_cancel_events_logs_checkpoints_as_json(run: Invoke, fake: FakeTrain, spec_file: Path) -> None:
    ids = [json.loads(run("submit", "-f", str(spec_file), "--json").stdout)["id"] for _ in range(3)]

    assert json.loads(run("get", ids[0], "--json").stdout)["id"] == ids[0]
    page = json.loads(run("list", "--limit", "2", "--json").stdout)
    assert [j["id"] for j in page["jobs"]] == [ids[2], ids[1]] and page["next_cursor"] == "2"
    everything = json.loads(run("list", "--limit", "2", "--all", "--json").stdout)
    assert [j["id"] for j in everything["jobs"]] == list(reversed(ids))
    run("list", "--status", "pending", "--status", "FAILED", "--json")
    assert fake.requests[-1].query["status"] == ["PENDING", "FAILED"]
    assert json.loads(run("cancel", ids[1], "--json").stdout)["status"] == "CANCELED"
    assert json.loads(run("events", ids[1], "--json").stdout)["events"][0]["status"] == "PENDING"
    assert json.loads(run("checkpoints", ids[1], "--json").stdout)["checkpoints"][0]["size_bytes"] == 2048
    run("get", ids[0])  # each read moves the fake job one step and adds a line
    logs = json.loads(run("logs", ids[0], "--json").stdout)
    assert [line["message"] for line in logs["lines"]] == ["epoch 1 loss=0.1", "epoch 2 loss=0.1"]


def test_human_output(run: Invoke, spec_file: Path) -> None:
    job_id = json.loads(run("submit", "-f", str(spec_file), "--json").stdout)["id"]
    shown = run("get", job_id)
    assert shown.exit_code == 0 and job_id in shown.stdout and "hello" in shown.stdout
    listed = run("list")
    assert job_id in listed.stdout and "local" in listed.stdout
    assert "epoch-0001.json" in run("checkpoints", job_id).stdout
    assert "transition" in run("events", job_id).stdout
    followed = run("logs", job_id, "-f", "--poll", "0.05")
    assert followed.exit_code == 0 and "done" in followed.stdout and "COMPLETED" in followed.stderr


def test_logs_since_accepts_a_duration_and_refuses_nonsense(run: Invoke, fake: FakeTrain, spec_file: Path) -> None:
    job_id = json.loads(run("submit", "-f", str(spec_file), "--json").stdout)["id"]
    assert run("logs", job_id, "--since", "10m").exit_code == 0
    assert fake.requests[-1].query["since"][0].endswith("+00:00")
    bad = run("logs", job_id, "--since", "yesterday-ish")
    assert bad.exit_code == 2 and "since" in bad.stderr


def test_exit_codes_for_404_500_and_no_server(run: Invoke) -> None:
    missing = run("get", "nope")
    assert missing.exit_code == 2 and "Not found (404)" in missing.stderr
    assert run("get", "boom").exit_code == 3
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = run("get", "x", TRAIN_URL=f"http://127.0.0.1:{port}")
    assert down.exit_code == 3 and "Cannot reach Train" in down.stderr


def test_credentials_come_from_the_data_dir_file(run: Invoke, fake: FakeTrain, tmp_path: Path) -> None:
    state = tmp_path / "creds"
    missing = run("list", TRAIN_URL=None, TRAIN_API_KEY=None, TRAIN_ACCOUNT_ID=None, TRAIN_DATA_DIR=str(state))
    assert missing.exit_code == 2 and "TRAIN_API_KEY" in missing.stderr
    state.mkdir()
    (state / "credentials.json").write_text(json.dumps({"url": fake.url, "api_key": API_KEY, "account_id": ACCOUNT}))
    result = run("list", "--json", TRAIN_URL=None, TRAIN_API_KEY=None, TRAIN_ACCOUNT_ID=None,
                 TRAIN_DATA_DIR=str(state))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"jobs": [], "next_cursor": None}
    wrong = run("--account", "other", "list", TRAIN_ACCOUNT_ID=None, TRAIN_DATA_DIR=str(state))
    assert wrong.exit_code == 2 and "Forbidden (403)" in wrong.stderr


def test_keys_create_list_revoke_never_show_a_secret_twice(run: Invoke, tmp_path: Path) -> None:
    state = tmp_path / "keys"
    created = run("keys", "create", "--account", "team-a", "--label", "ci", "--data-dir", str(state), "--json")
    assert created.exit_code == 0, created.output
    key = json.loads(created.stdout)
    assert key["api_key"].startswith(f"trn_{key['key_id']}_") and key["account_ids"] == ["team-a"]
    secret = key["api_key"].split("_", 2)[2]

    listed = run("keys", "list", "--data-dir", str(state), "--json")
    keys = json.loads(listed.stdout)["keys"]
    assert [(k["key_id"], k["label"], k["revoked_at"]) for k in keys] == [(key["key_id"], "ci", None)]
    human = run("keys", "list", "--data-dir", str(state))
    assert key["key_id"] in human.stdout
    assert secret not in listed.stdout + human.stdout
    assert json.loads(run("keys", "list", "--account", "team-b", "--data-dir", str(state), "--json").stdout) == {
        "keys": []
    }

    assert run("keys", "revoke", key["api_key"], "--data-dir", str(state)).exit_code == 0
    after = json.loads(run("keys", "list", "--data-dir", str(state), "--json").stdout)["keys"]
    assert after[0]["revoked_at"] is not None
    unknown = run("keys", "revoke", "zzzzzzzzzzzz", "--data-dir", str(state))
    assert unknown.exit_code == 2 and "Not found" in unknown.stderr
    bad = run("keys", "create", "--account", "no spaces!", "--data-dir", str(state))
    assert bad.exit_code == 2
