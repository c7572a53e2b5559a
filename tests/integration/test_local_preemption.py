"""Preemption recovery end to end in local mode (SPEC §6): examples/hello/train.py checkpoints every
epoch; the attempt is killed as a spot interruption would kill it; attempt 2 starts with
TRAIN_ATTEMPT=2 and TRAIN_LOAD_CHECKPOINT_DIR, resumes from the checkpoint and COMPLETES; late
events of attempt 1 change nothing; the webhook reports COMPLETED once, for attempt 2."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.backends.local import LocalBackend
from core.backends.local_state import from_local_state
from core.errors import InvalidRequestError
from core.lifecycle import Outcome, Status
from core.model import JobRecord, JobSpec
from core.notifiers.webhook import WebhookNotifier
from core.service import TrainService
from core.stores.sqlite import SQLiteJobStore
from tests.webhook_receiver import WebhookReceiver

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
ACCOUNT = "acct-1"
SECRET = b"local-preemption-test-secret"


@dataclass
class Local:
    store: SQLiteJobStore
    backend: LocalBackend
    service: TrainService
    receiver: WebhookReceiver

    def get(self, job_id: str) -> JobRecord:
        return self.service.get(ACCOUNT, job_id)

    def logs(self, job: JobRecord) -> list[str]:
        return [line.message for line in self.backend.logs(job, cursor=None, limit=1000, since=None).lines]


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    store = SQLiteJobStore(tmp_path / "train.db")
    backend = LocalBackend(tmp_path / "data", stop_grace=1.0, gpus=0)
    with WebhookReceiver(SECRET) as receiver:
        service = TrainService(store, {"local": backend},
                               notifier=WebhookNotifier(SECRET, timeout=2.0, allow_private=True))
        backend.set_listener(lambda native_id, update: service.apply_native_update("local", native_id, update))
        yield Local(store, backend, service, receiver)
        backend.close()
    store.close()


def wait_for(probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_preempted_local_job_resumes_from_its_checkpoint_and_completes(local: Local) -> None:
    spec = JobSpec.model_validate({
        "name": "hello", "backend": "local", "command": [sys.executable, "train.py"],
        "args": ["--epochs", "8", "--sleep", "0.4"],
        "storage_mounts": [{"source_uri": str(HELLO / "data"), "read_only": True}],
        "checkpointing": {"enabled": True}, "retries": {"on_preemption": 1},
        "notify": {"url": local.receiver.url, "on": ["COMPLETED"]},
        "backend_options": {"working_dir": str(HELLO)},
    })
    job = local.service.submit(ACCOUNT, spec)[0]
    checkpoints = local.backend.data_dir / "jobs" / job.id / "checkpoints"
    wait_for(lambda: (checkpoints / "epoch-0002.json").exists(), "epoch 2's checkpoint")
    first = local.get(job.id)
    assert first.status == Status.IN_PROGRESS and first.attempt == 1

    local.backend.preempt(first)
    second = wait_for(lambda: _if(local.get(job.id), lambda j: j.attempt == 2 and j.cloud_job_identifier),
                      "attempt 2 to be submitted")
    assert second.status == Status.IN_PROGRESS  # never back to PENDING, never FAILED
    done = wait_for(lambda: _if(local.get(job.id), lambda j: j.status == Status.COMPLETED), "COMPLETED")

    assert done.attempt == 2 and done.native_id == f"local-{job.id}-2"
    [previous] = done.previous_attempts
    assert (previous.attempt, previous.native_id, previous.native_status) == (1, f"local-{job.id}-1", "Preempted")
    assert [e.reason for e in done.events if e.kind == "note" and "preempted" in (e.reason or "")] == [
        "preempted: resubmitting attempt 2"
    ]
    assert [e.status for e in done.events if e.kind == "transition"] == [
        Status.PENDING, Status.IN_PROGRESS, Status.COMPLETED
    ]

    first_logs, second_logs = local.logs(first), local.logs(done)
    assert any("attempt 1" in line for line in first_logs) and not any("done:" in line for line in first_logs)
    resumed = [line for line in second_logs if line.startswith("resumed from epoch")]
    assert any("attempt 2" in line for line in second_logs) and resumed
    epoch = int(resumed[0].split()[3])
    assert epoch >= 2  # the work before the preemption is not done again
    assert f"epoch {epoch + 1}/8" in " ".join(second_logs) and f"epoch {epoch}/8" not in " ".join(second_logs)
    assert any(line.startswith("done:") for line in second_logs)
    plan = (local.backend.data_dir / "jobs" / job.id / "attempt-2" / "plan.json").read_text()
    assert '"TRAIN_ATTEMPT": "2"' in plan and f'"TRAIN_LOAD_CHECKPOINT_DIR": "{checkpoints}"' in plan

    wait_for(lambda: local.receiver.unique and not local.get(job.id).outbox, "the COMPLETED webhook")
    [payload] = local.receiver.unique.values()
    assert (payload["status"], payload["attempt"], payload["job_id"]) == ("COMPLETED", 2, job.id)
    assert local.receiver.bad_signatures == 0

    # attempt 1's events arriving late: its native id leads nowhere, and read back they are old
    late = from_local_state("Succeeded", done.updated_at, attempt=1)
    assert local.service.apply_native_update("local", f"local-{job.id}-1", late) is None
    assert local.service.apply_update(local.get(job.id), late) == Outcome.OLD_ATTEMPT
    after = local.get(job.id)
    assert after.status == Status.COMPLETED and after.attempt == 2
    assert [(e.kind, e.attempt) for e in after.events if e.reason == "old_attempt"] == [("ignored", 1)]


def test_preempting_a_job_that_is_not_running_is_refused(local: Local, tmp_path: Path) -> None:
    script = tmp_path / "quick.py"
    script.write_text("print('bye')\n")
    spec = JobSpec.model_validate({"name": "quick", "backend": "local", "command": [sys.executable, str(script)]})
    job = local.service.submit(ACCOUNT, spec)[0]
    done = wait_for(lambda: _if(local.get(job.id), lambda j: j.status == Status.COMPLETED), "COMPLETED")
    with pytest.raises(InvalidRequestError) as caught:
        local.backend.preempt(done)
    assert "not running" in caught.value.detail


def _if(value: Any, test: Callable[[Any], bool]) -> Any:
    return value if test(value) else None
