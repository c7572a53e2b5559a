"""The local backend running real processes, driven through the real service (SPEC §5, §10)."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.backends.local import LocalBackend
from core.lifecycle import Status
from core.model import JobRecord, JobSpec, NativeJobRequest
from core.service import TrainService
from tests.fakes import InMemoryJobStore

ACCOUNT = "acct-1"
DEADLINE = 20.0


@dataclass
class Harness:
    tmp: Path
    data: Path
    store: InMemoryJobStore
    backend: LocalBackend
    service: TrainService

    def script(self, name: str, body: str) -> Path:
        path = self.tmp / "scripts" / f"{name}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(body))
        return path

    def submit(self, script: Path, **fields: Any) -> JobRecord:
        spec = JobSpec.model_validate(
            {"name": "job", "backend": "local", "command": [sys.executable, str(script)], **fields}
        )
        job, created = self.service.submit(ACCOUNT, spec)
        assert created
        return job

    def wait_status(self, job_id: str, *statuses: Status) -> JobRecord:
        return wait_for(lambda: _if(self.service.get(ACCOUNT, job_id), lambda j: j.status in statuses),
                        f"job {job_id} to reach {statuses}")

    def log_text(self, job_id: str) -> list[str]:
        return [line.message for line in self.service.logs(ACCOUNT, job_id, limit=1000).lines]


def wait_for(probe: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _if(value: Any, test: Callable[[Any], bool]) -> Any:
    return value if test(value) else None


def connect(data: Path, store: InMemoryJobStore) -> tuple[LocalBackend, TrainService]:
    backend = LocalBackend(data, stop_grace=1.0, gpus=0)
    service = TrainService(store, {"local": backend})
    backend.set_listener(lambda native_id, update: service.apply_native_update("local", native_id, update))
    return backend, service


def pid_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    store = InMemoryJobStore()
    backend, service = connect(tmp_path / "data", store)
    harness = Harness(tmp_path, tmp_path / "data", store, backend, service)
    yield harness
    harness.backend.close()


WAIT_FOR_RELEASE = """
    import os, pathlib, sys, time
    pathlib.Path(sys.argv[1]).open("a").write(f"{os.getpid()}\\n")
    print("waiting", flush=True)
    while not pathlib.Path(sys.argv[2]).exists():
        time.sleep(0.05)
"""


def test_exit_zero_completes(h: Harness) -> None:
    job = h.submit(h.script("ok", "print('hello')"))
    assert job.native_id == f"local-{job.id}-1"
    assert job.cloud_job_identifier["job_name"] == job.native_id
    assert int(job.cloud_job_identifier["pid"]) > 0
    done = h.wait_status(job.id, Status.COMPLETED)
    assert done.native_status == "Succeeded"
    assert done.started_at is not None and done.ended_at is not None and done.started_at <= done.ended_at
    assert [e.status for e in done.events if e.kind == "transition"] == [
        Status.PENDING, Status.IN_PROGRESS, Status.COMPLETED,
    ]
    assert h.log_text(job.id) == ["hello"]


def test_non_zero_exit_fails_with_the_code(h: Harness) -> None:
    job = h.submit(h.script("bad", "import sys; sys.exit(3)"))
    done = h.wait_status(job.id, Status.FAILED, Status.COMPLETED)
    assert (done.status, done.status_reason, done.native_status) == (Status.FAILED, "exit code 3", "Failed")


def test_a_command_that_cannot_start_fails_with_the_reason(h: Harness) -> None:
    spec = JobSpec(name="nope", backend="local", command=[str(h.tmp / "no-such-binary")])
    job, _ = h.service.submit(ACCOUNT, spec)
    done = h.wait_status(job.id, Status.FAILED)
    assert done.status_reason is not None and "could not start" in done.status_reason


def test_stdout_and_stderr_reach_the_logs_with_cursor_paging(h: Harness) -> None:
    body = """
        import sys
        for i in range(5):
            print(f"out {i}", flush=True)
            print(f"err {i}", file=sys.stderr, flush=True)
    """
    job = h.submit(h.script("chatty", body))
    h.wait_status(job.id, Status.COMPLETED)
    seen: list[tuple[str, str]] = []
    cursor = None
    pages = 0
    while True:
        page = h.service.logs(ACCOUNT, job.id, cursor=cursor, limit=3)
        assert page.next_cursor is not None
        if not page.lines:
            break
        pages += 1
        seen += [(line.stream, line.message) for line in page.lines]
        cursor = page.next_cursor
    assert pages == 4
    assert sorted(m for s, m in seen if s == "stdout") == [f"out {i}" for i in range(5)]
    assert sorted(m for s, m in seen if s == "stderr") == [f"err {i}" for i in range(5)]
    # a follower polling at the end gets nothing new and keeps its place
    again = h.service.logs(ACCOUNT, job.id, cursor=cursor, limit=3)
    assert again.lines == [] and again.next_cursor == cursor
    late = h.service.logs(ACCOUNT, job.id, limit=100, since=page_time_after(h, job.id))
    assert late.lines == []


def page_time_after(h: Harness, job_id: str) -> Any:
    lines = h.service.logs(ACCOUNT, job_id, limit=100).lines
    return max(line.time for line in lines).replace(microsecond=999999)


def test_cancel_kills_a_job_that_ignores_sigterm_after_the_grace(h: Harness) -> None:
    body = """
        import os, pathlib, signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: print("ignoring SIGTERM", flush=True))
        pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
        print("ready", flush=True)
        time.sleep(60)
    """
    pid_file = h.tmp / "child.pid"
    job = h.submit(h.script("stubborn", body), args=[str(pid_file)], backend_options={"stop_grace_seconds": 0.5})
    wait_for(lambda: "ready" in h.log_text(job.id), "the job to start")
    started = time.monotonic()
    h.service.cancel(ACCOUNT, job.id)
    h.service.cancel(ACCOUNT, job.id)  # idempotent
    done = h.wait_status(job.id, Status.CANCELED, Status.FAILED, Status.COMPLETED)
    assert done.status == Status.CANCELED
    assert done.native_status == "Stopped"
    assert time.monotonic() - started < 10
    assert "ignoring SIGTERM" in h.log_text(job.id)
    assert wait_for(lambda: pid_gone(int(pid_file.read_text())), "the child to be gone", timeout=5)
    h.backend.cancel(h.service.get(ACCOUNT, job.id))  # a finished job: no-op


def test_cancel_of_a_well_behaved_job_is_quick(h: Harness) -> None:
    job = h.submit(h.script("sleeper", "import time; print('ready', flush=True); time.sleep(60)"))
    wait_for(lambda: "ready" in h.log_text(job.id), "the job to start")
    h.service.cancel(ACCOUNT, job.id)
    done = h.wait_status(job.id, Status.CANCELED, Status.FAILED)
    assert done.status == Status.CANCELED


def test_max_runtime_expires_the_job(h: Harness) -> None:
    job = h.submit(h.script("forever", "import time; time.sleep(60)"), max_runtime="2s")
    done = h.wait_status(job.id, Status.EXPIRED, Status.FAILED, Status.COMPLETED)
    assert (done.status, done.status_reason, done.native_status) == (Status.EXPIRED, "max_runtime exceeded", "Stopped")
    assert any("max_runtime" in m for m in h.log_text(job.id))


def test_the_job_gets_the_container_environment(h: Harness) -> None:
    data_a = h.tmp / "dataset-a"
    data_b = h.tmp / "dataset-b"
    data_a.mkdir()
    data_b.mkdir()
    out = h.tmp / "env.json"
    body = """
        import json, os, pathlib, sys
        pathlib.Path(sys.argv[1]).write_text(json.dumps({"env": dict(os.environ), "cwd": os.getcwd()}))
    """
    job = h.submit(
        h.script("env", body), name="envjob", project="vision", args=[str(out)],
        env={"BATCH_SIZE": "32"}, checkpointing={"enabled": True},
        storage_mounts=[{"source_uri": f"file://{data_a}"}, {"source_uri": str(data_b), "read_only": True}],
    )
    h.wait_status(job.id, Status.COMPLETED)
    seen = json.loads(out.read_text())
    env = seen["env"]
    assert env["BATCH_SIZE"] == "32"
    assert env["STORAGE_MOUNT_0_PATH"] == str(data_a)
    assert env["STORAGE_MOUNT_1_PATH"] == str(data_b)
    assert (env["TRAIN_JOB_ID"], env["TRAIN_JOB_NAME"], env["TRAIN_PROJECT"]) == (job.id, "envjob", "vision")
    assert env["TRAIN_ATTEMPT"] == "1"
    assert env["TRAIN_CHECKPOINT_DIR"] == str(h.data.resolve() / "jobs" / job.id / "checkpoints")
    assert Path(env["TRAIN_CHECKPOINT_DIR"]).is_dir()
    assert "TRAIN_LOAD_CHECKPOINT_DIR" not in env
    assert (env["TRAIN_NUM_NODES"], env["TRAIN_NODE_RANK"], env["TRAIN_LEADER_ADDR"], env["TRAIN_GPUS_PER_NODE"]) == (
        "1", "0", "127.0.0.1", "0",
    )
    assert env["PATH"] == os.environ["PATH"]
    assert env.get("PYTHONPATH") == os.environ.get("PYTHONPATH")
    assert seen["cwd"] == str(h.data.resolve() / "jobs" / job.id / "attempt-1" / "work")


def test_read_only_mounts_refuse_writes(h: Harness) -> None:
    ro = h.tmp / "ro"
    rw = h.tmp / "rw"
    ro.mkdir()
    rw.mkdir()
    body = """
        import os
        for n in (0, 1):
            path = os.path.join(os.environ[f"STORAGE_MOUNT_{n}_PATH"], "written")
            try:
                open(path, "w").write("x")
                print(f"mount {n}: ok", flush=True)
            except OSError as exc:
                print(f"mount {n}: errno {exc.errno}", flush=True)
    """
    job = h.submit(
        h.script("writer", body),
        storage_mounts=[{"source_uri": str(ro), "read_only": True}, {"source_uri": str(rw)}],
    )
    h.wait_status(job.id, Status.COMPLETED)
    logs = h.log_text(job.id)
    assert logs == ["mount 0: errno 30", "mount 1: ok"], logs
    assert not (ro / "written").exists()
    assert (rw / "written").read_text() == "x"
    (ro / "still-writable-outside").write_text("y")  # only the job's view is read-only


CHECKPOINTER = """
    import os, pathlib
    root = pathlib.Path(os.environ["TRAIN_CHECKPOINT_DIR"])
    (root / "step-1").mkdir()
    (root / "step-1" / "model.bin").write_bytes(b"0123456789")
    (root / "step-1" / "opt.bin").write_bytes(b"01234")
    os.utime(root / "step-1", (1_700_000_000, 1_700_000_000))
    os.utime(root / "step-1" / "model.bin", (1_700_000_000, 1_700_000_000))
    os.utime(root / "step-1" / "opt.bin", (1_700_000_000, 1_700_000_000))
    (root / "step-2.bin").write_bytes(b"abc")
"""


def test_checkpoints_are_listed_newest_last(h: Harness) -> None:
    job = h.submit(h.script("ckpt", CHECKPOINTER), checkpointing={"enabled": True})
    h.wait_status(job.id, Status.COMPLETED)
    checkpoints = h.service.checkpoints(ACCOUNT, job.id)
    assert [(c.name, c.size_bytes) for c in checkpoints] == [("step-1", 15), ("step-2.bin", 3)]
    root = h.data.resolve() / "jobs" / job.id / "checkpoints"
    assert checkpoints[0].uri == (root / "step-1").as_uri()
    assert checkpoints[0].modified_at < checkpoints[1].modified_at


def test_load_checkpoint_from_an_earlier_job(h: Harness) -> None:
    first = h.submit(h.script("ckpt", CHECKPOINTER), checkpointing={"enabled": True})
    h.wait_status(first.id, Status.COMPLETED)
    reader = h.script("reader", """
        import os
        root = os.environ["TRAIN_LOAD_CHECKPOINT_DIR"]
        print(" ".join(sorted(os.listdir(root))), flush=True)
        print(open(os.path.join(root, "step-1", "model.bin")).read(), flush=True)
    """)
    latest = h.submit(reader, load_checkpoint={"job_id": first.id})
    named = h.submit(reader, load_checkpoint={"job_id": first.id, "name": "step-1"})
    h.wait_status(latest.id, Status.COMPLETED)
    h.wait_status(named.id, Status.COMPLETED)
    assert h.log_text(latest.id) == ["step-1 step-2.bin", "0123456789"]
    assert h.log_text(named.id) == ["step-1", "0123456789"]
    missing = h.submit(reader, load_checkpoint={"job_id": first.id, "name": "step-9"})
    failed = h.wait_status(missing.id, Status.FAILED)
    assert failed.status_reason is not None and "step-9" in failed.status_reason


def test_a_secret_reaches_the_process_and_nothing_else(h: Harness) -> None:
    secret = "s3cr3t-value-9f8e7d"
    (h.data / "secrets").mkdir(parents=True)
    (h.data / "secrets" / "hf_token").write_text(secret + "\n")
    seen = h.tmp / "seen"
    body = """
        import os, pathlib, sys
        pathlib.Path(sys.argv[1]).write_text(os.environ["HF_TOKEN"])
        print("token is " + os.environ["HF_TOKEN"], flush=True)
    """
    job = h.submit(h.script("secret", body), args=[str(seen)], env={"HF_TOKEN": {"secret": "hf_token"}})
    done = h.wait_status(job.id, Status.COMPLETED)
    assert seen.read_text() == secret
    assert h.log_text(job.id) == ["token is ***"]
    assert secret not in done.model_dump_json()
    for path in h.data.rglob("*"):
        if path.is_file() and path.parent.name != "secrets":
            assert secret.encode() not in path.read_bytes(), path


def test_submit_is_idempotent_per_attempt(h: Harness) -> None:
    runs = h.tmp / "runs"
    release = h.tmp / "release"
    job = h.submit(h.script("once", WAIT_FOR_RELEASE), args=[str(runs), str(release)])
    wait_for(lambda: runs.exists(), "the job to start")
    again = h.backend.submit(h.service.get(ACCOUNT, job.id))
    assert again.native_id == job.native_id
    assert again.cloud_job_identifier == job.cloud_job_identifier
    release.touch()
    h.wait_status(job.id, Status.COMPLETED)
    assert len(runs.read_text().splitlines()) == 1


def test_native_request_runs_its_job_config(h: Harness) -> None:
    script = h.script("native", "import os, sys; print(' '.join(sys.argv[1:]), os.environ['GREETING'], flush=True)")
    request = NativeJobRequest(
        name="native", job_config={"command": [sys.executable, str(script)], "args": ["a", "b"],
                                   "env": {"GREETING": "hi"}, "max_runtime": "1h"},
    )
    job, _ = h.service.submit_native(ACCOUNT, "local", request)
    h.wait_status(job.id, Status.COMPLETED)
    assert h.log_text(job.id) == ["a b hi"]


def test_a_restarted_server_reattaches_running_jobs(h: Harness) -> None:
    runs = h.tmp / "runs"
    release = h.tmp / "release"
    job = h.submit(h.script("long", WAIT_FOR_RELEASE), args=[str(runs), str(release)])
    h.wait_status(job.id, Status.IN_PROGRESS)
    wait_for(lambda: runs.exists(), "the job to start")
    h.backend.close()  # the server stops; the job keeps running

    backend, service = connect(h.data, h.store)
    h.backend = backend
    try:
        report = service.sweep(reconcile_all=True)
        assert report.scanned == 1 and report.errors == 0
        assert service.get(ACCOUNT, job.id).status == Status.IN_PROGRESS
        release.touch()
        done = wait_for(lambda: _if(service.get(ACCOUNT, job.id), lambda j: j.status == Status.COMPLETED),
                        "the re-attached job to complete")
        assert done.native_status == "Succeeded"
        assert len(runs.read_text().splitlines()) == 1
    finally:
        backend.close()


def test_a_job_lost_while_the_server_was_down_fails(h: Harness) -> None:
    pids = h.tmp / "pids"
    job = h.submit(h.script("orphan", WAIT_FOR_RELEASE), args=[str(pids), str(h.tmp / "never")])
    h.wait_status(job.id, Status.IN_PROGRESS)
    wait_for(lambda: pids.exists(), "the job to start")
    h.backend.close()
    launcher = int(job.cloud_job_identifier["pid"])
    os.kill(launcher, signal.SIGKILL)  # dies with the server, leaving no exit record
    wait_for(lambda: pid_gone(launcher), "the launcher to die")

    backend, service = connect(h.data, h.store)
    h.backend = backend
    service.sweep(reconcile_all=True)
    done = service.get(ACCOUNT, job.id)
    assert (done.status, done.native_status) == (Status.FAILED, "Lost")
    assert done.status_reason == "the process was lost while the server was down"
    child = int(pids.read_text().split()[0])
    assert wait_for(lambda: pid_gone(child), "the orphaned child to be killed", timeout=5)
    assert backend.describe(done).native_status == "Lost"  # the verdict is kept
