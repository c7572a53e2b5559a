"""The local backend: each job attempt runs as a process on this machine (SPEC §10).

Layout under ``data_dir``: ``jobs/<job_id>/attempt-<n>/`` holds ``plan.json``, ``launcher.pid``,
``logs.jsonl``, ``exit.json``, ``stop``, ``preempt`` and the default working dir ``work/``;
``jobs/<job_id>/checkpoints/`` is shared by the job's attempts. ``{secret: name}`` env entries are
read from the secret store (by default ``FileSecretStore(<data_dir>/secrets)``) at each start and
reach the process through the launcher's environment, never ``plan.json``; the launcher masks them
in ``logs.jsonl``. The job runs directly, not inside its image.

Process exits reach the service through the listener, the same path cloud events take.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import core
from core.backends.local_checks import native_errors, spec_errors
from core.backends.local_files import alive, kill_session, list_checkpoints, read_exit, read_logs, read_pid
from core.backends.local_state import (
    CANCELED,
    from_local_exit,
    from_local_state,
    identity_env,
    inherited_env,
    mount_local_path,
)
from core.durations import parse_duration
from core.errors import BackendError, FieldError, InvalidRequestError, InvalidSpecError, TrainError
from core.lifecycle import NativeUpdate
from core.model import Checkpoint, JobRecord, JobSpec, LogPage, NativeJobRequest, Submission
from core.ports import SecretStore
from core.secrets.env import resolve_env
from core.secrets.file import FileSecretStore

log = logging.getLogger("train.backends.local")

Listener = Callable[[str, NativeUpdate], None]
POLL_SECONDS = 0.2
PREEMPT = "preempt"  # the marker preempt() writes before killing the attempt
KILL_MARGIN = 2.0  # the launcher kills its child at the grace; the whole session goes this much later


class LocalBackend:
    name = "local"

    def __init__(
        self, data_dir: Path, *, stop_grace: float = 10.0, gpus: int | None = None, secrets: SecretStore | None = None
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.secrets = secrets if secrets is not None else FileSecretStore(self.data_dir / "secrets")
        self.stop_grace = stop_grace
        self._gpus = gpus
        self._listener: Listener | None = None
        self._lock = threading.RLock()
        self._watchers: dict[str, threading.Thread] = {}
        self._timers: dict[str, threading.Timer] = {}
        self._closed = threading.Event()

    def set_listener(self, fn: Listener) -> None:
        self._listener = fn

    def close(self) -> None:
        """Stop watching; running jobs keep running and are re-attached by the next backend."""
        self._closed.set()
        for timer in list(self._timers.values()):
            timer.cancel()
        for thread in list(self._watchers.values()):
            thread.join(timeout=2)

    # ---- checks -------------------------------------------------------------------------------

    def check_spec(self, spec: JobSpec) -> None:
        _raise(spec_errors(spec, gpus_available=self._gpu_count) + resolve_env(spec.env, self.secrets).problems)

    def check_native(self, request: NativeJobRequest) -> None:
        _raise(native_errors(request))

    def _gpu_count(self) -> int:
        if self._gpus is None:
            exe = shutil.which("nvidia-smi")
            count = 0
            if exe is not None:
                try:
                    out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False)
                    count = sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
                except (OSError, subprocess.SubprocessError):
                    count = 0
            self._gpus = count
        return self._gpus

    # ---- submit -------------------------------------------------------------------------------

    def native_id_for(self, job: JobRecord) -> str:
        return f"local-{job.id}-{job.attempt}"

    def submit(self, job: JobRecord) -> Submission:
        native_id = self.native_id_for(job)
        attempt_dir = self._attempt_dir(job)
        with self._lock:
            pid = read_pid(attempt_dir)
            if pid is not None or read_exit(attempt_dir) is not None:
                return self._submission(native_id, attempt_dir, pid)
            attempt_dir.mkdir(parents=True, exist_ok=True)
            plan, secrets = self._plan(job, attempt_dir)
            plan_path = attempt_dir / "plan.json"
            _write_atomic(plan_path, json.dumps(plan, indent=2))
            started = datetime.now(UTC)
            try:
                with open(attempt_dir / "launcher.out", "ab") as out:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "core.backends.launcher", str(plan_path)],
                        cwd=attempt_dir, env=self._launcher_env(secrets), stdin=subprocess.DEVNULL,
                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                    )
            except OSError as exc:
                raise BackendError(f"could not start the local launcher: {exc}", retryable=True) from exc
            _write_atomic(attempt_dir / "launcher.pid", f"{proc.pid}\n")
            self._watch(native_id, attempt_dir, job.attempt, proc.pid, proc, started)
        return self._submission(native_id, attempt_dir, proc.pid)

    def _submission(self, native_id: str, attempt_dir: Path, pid: int | None) -> Submission:
        ident = {"job_name": native_id, "pid": "" if pid is None else str(pid), "log_dir": str(attempt_dir)}
        return Submission(native_id=native_id, cloud_job_identifier=ident, native_status="Running")

    def _plan(self, job: JobRecord, attempt_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
        """The launcher's plan, and the secret env values that must not be written into it."""
        spec = job.portable_spec
        if spec is not None:
            argv = spec.entrypoint()
            env_in: dict[str, Any] = dict(spec.env)
            runtime = spec.max_runtime.total_seconds() if spec.max_runtime else None
            options = spec.backend_options
            working_dir = options.get("working_dir")
            grace = float(options.get("stop_grace_seconds", self.stop_grace))
            gpus, checkpointing = spec.compute.gpus_per_node, spec.checkpointing.enabled
        else:
            config = (job.native_request or {}).get("job_config", {})
            argv = [*config["command"], *config.get("args", [])]
            env_in = dict(config.get("env", {}))
            runtime = parse_duration(config["max_runtime"]).total_seconds() if config.get("max_runtime") else None
            working_dir, grace, gpus, checkpointing = config.get("working_dir"), self.stop_grace, 0, False
        mounts = [mount_local_path(m.source_uri) or "" for m in job.storage_mounts]
        env = {k: v for k, v in env_in.items() if isinstance(v, str)}
        resolved = resolve_env(env_in, self.secrets)
        _raise(resolved.problems)
        secrets = resolved.values
        env.update(identity_env(
            job_id=job.id, name=job.name, project=job.project, attempt=job.attempt, gpus_per_node=gpus,
            mount_paths=mounts,
        ))
        env.update(self._checkpoint_env(job, spec, attempt_dir, checkpointing))
        if working_dir is None:
            working_dir = str(attempt_dir / "work")
            Path(working_dir).mkdir(exist_ok=True)
        plan = {
            "argv": argv, "env": env, "secret_env": sorted(secrets), "working_dir": working_dir,
            "max_runtime": runtime, "stop_grace": grace, "pythonpath": os.environ.get("PYTHONPATH"),
            "read_only": [path for m, path in zip(job.storage_mounts, mounts, strict=True) if m.read_only],
        }
        return plan, secrets

    def _checkpoint_env(
        self, job: JobRecord, spec: JobSpec | None, attempt_dir: Path, checkpointing: bool
    ) -> dict[str, str]:
        env: dict[str, str] = {}
        own = self._job_dir(job.id) / "checkpoints"
        if checkpointing:
            own.mkdir(parents=True, exist_ok=True)
            env["TRAIN_CHECKPOINT_DIR"] = str(own)
            if job.attempt > 1:
                env["TRAIN_LOAD_CHECKPOINT_DIR"] = str(own)
                return env
        if job.load_checkpoint_job_id:
            source = self._job_dir(job.load_checkpoint_job_id) / "checkpoints"
            name = spec.load_checkpoint.name if spec is not None and spec.load_checkpoint else "latest"
            if name == "latest":
                source.mkdir(parents=True, exist_ok=True)
                env["TRAIN_LOAD_CHECKPOINT_DIR"] = str(source)
                return env
            entry = source / name
            if not entry.exists():
                raise InvalidSpecError.at(
                    ("load_checkpoint", "name"), f"job {job.load_checkpoint_job_id} has no checkpoint '{name}'"
                )
            chosen = attempt_dir / "load-checkpoint"
            chosen.mkdir(exist_ok=True)
            if not (chosen / name).is_symlink():
                (chosen / name).symlink_to(entry)
            env["TRAIN_LOAD_CHECKPOINT_DIR"] = str(chosen)
        return env

    def _launcher_env(self, secrets: dict[str, str]) -> dict[str, str]:
        env = inherited_env(os.environ)
        env.update(secrets)
        root = str(Path(core.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        return env

    # ---- watch --------------------------------------------------------------------------------

    def _watch(
        self, native_id: str, attempt_dir: Path, attempt: int, pid: int,
        proc: subprocess.Popen[bytes] | None, started: datetime | None,
    ) -> None:
        with self._lock:
            existing = self._watchers.get(native_id)
            if existing is not None and existing.is_alive():
                return
            thread = threading.Thread(
                target=self._follow, args=(native_id, attempt_dir, attempt, pid, proc, started),
                name=f"watch-{native_id}", daemon=True,
            )
            self._watchers[native_id] = thread
            thread.start()

    def _follow(
        self, native_id: str, attempt_dir: Path, attempt: int, pid: int,
        proc: subprocess.Popen[bytes] | None, started: datetime | None,
    ) -> None:
        if started is not None:
            self._emit(native_id, from_local_state("Running", started, attempt=attempt))
        while not self._closed.is_set():
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=POLL_SECONDS)
                    break
            elif alive(pid, attempt_dir / "plan.json"):
                self._closed.wait(POLL_SECONDS)
            else:
                break
        if self._closed.is_set():
            return
        self._emit(native_id, self._final(attempt_dir.parent.name, attempt_dir, attempt, pid))

    def _final(self, job_id: str, attempt_dir: Path, attempt: int, pid: int | None) -> NativeUpdate:
        """The update of an attempt whose launcher is gone. A launcher that died without writing
        its exit (killed after a stop request, or lost) gets one written here, so every later read
        gives the same answer, and whatever it left running is killed."""
        info = _exit_info(attempt_dir)
        if info is None and not attempt_dir.is_dir():
            return from_local_state("Lost", datetime.now(UTC), attempt=attempt, reason="no record of the process")
        if info is None:
            try:
                cause = (attempt_dir / "stop").read_text().strip() or CANCELED
            except OSError:
                cause = None
            if pid is not None:
                kill_session(pid, attempt_dir / "plan.json", job_id)
            preempted = (attempt_dir / PREEMPT).exists()
            info = {"exit_code": None, "signal": None, "stop_cause": None if preempted else cause,
                    "lost": cause is None and not preempted, "preempted": preempted,
                    "ended_at": datetime.now(UTC).isoformat()}
            _write_atomic(attempt_dir / "exit.json", json.dumps(info))
        return from_local_exit(info, attempt=attempt)

    def _emit(self, native_id: str, update: NativeUpdate) -> None:
        listener = self._listener
        if listener is None:
            return
        for attempt in range(3):
            try:
                listener(native_id, update)
                return
            except TrainError as exc:
                if not exc.retryable:
                    log.warning("update %s of %s dropped: %s", update.native_status, native_id, exc.detail)
                    return
                time.sleep(0.2 * (attempt + 1))
            except Exception:
                log.exception("update %s of %s failed", update.native_status, native_id)
                return
        log.warning("update %s of %s left to the sweeper", update.native_status, native_id)

    # ---- read and stop ------------------------------------------------------------------------

    def describe(self, job: JobRecord) -> NativeUpdate:
        attempt_dir = self._attempt_dir(job)
        info = _exit_info(attempt_dir)
        if info is not None:
            return from_local_exit(info, attempt=job.attempt)
        pid = read_pid(attempt_dir)
        if pid is not None and alive(pid, attempt_dir / "plan.json"):
            self._watch(self.native_id_for(job), attempt_dir, job.attempt, pid, None, None)
            return from_local_state("Running", datetime.now(UTC), attempt=job.attempt)
        return self._final(job.id, attempt_dir, job.attempt, pid)

    def preempt(self, job: JobRecord) -> None:
        """Stand in for a spot interruption (tests, demos): mark the current attempt preempted and
        SIGKILL its whole session at once, with no SIGTERM and no grace, as a reclaimed machine would.
        The exit then reaches the service as a preemption (native state ``Preempted``)."""
        attempt_dir = self._attempt_dir(job)
        pid = read_pid(attempt_dir)
        if pid is None or read_exit(attempt_dir) is not None or not alive(pid, attempt_dir / "plan.json"):
            raise InvalidRequestError(f"attempt {job.attempt} of job {job.id} is not running")
        _write_atomic(attempt_dir / PREEMPT, datetime.now(UTC).isoformat())
        kill_session(pid, attempt_dir / "plan.json", job.id)

    def cancel(self, job: JobRecord) -> None:
        attempt_dir = self._attempt_dir(job)
        if read_exit(attempt_dir) is not None or not attempt_dir.is_dir():
            return
        stop = attempt_dir / "stop"
        if not stop.exists():
            _write_atomic(stop, CANCELED)
        pid = read_pid(attempt_dir)
        if pid is None or not alive(pid, attempt_dir / "plan.json"):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        native_id = self.native_id_for(job)
        with self._lock:
            if native_id in self._timers:
                return
            spec = job.portable_spec
            grace = float(spec.backend_options.get("stop_grace_seconds", self.stop_grace)) if spec else self.stop_grace
            timer = threading.Timer(grace + KILL_MARGIN, self._kill_if_alive, args=(pid, attempt_dir, job.id))
            timer.daemon = True
            self._timers[native_id] = timer
        timer.start()

    def _kill_if_alive(self, pid: int, attempt_dir: Path, job_id: str) -> None:
        if alive(pid, attempt_dir / "plan.json"):
            log.warning("launcher %s did not stop within its grace period; killing its session", pid)
            kill_session(pid, attempt_dir / "plan.json", job_id)

    def logs(self, job: JobRecord, *, cursor: str | None, limit: int, since: datetime | None) -> LogPage:
        return read_logs(self._attempt_dir(job) / "logs.jsonl", job.attempt, cursor=cursor, limit=limit, since=since)

    def checkpoints(self, job: JobRecord) -> list[Checkpoint]:
        return list_checkpoints(self._job_dir(job.id) / "checkpoints")

    def _job_dir(self, job_id: str) -> Path:
        return self.data_dir / "jobs" / job_id

    def _attempt_dir(self, job: JobRecord) -> Path:
        return self._job_dir(job.id) / f"attempt-{job.attempt}"


def _exit_info(attempt_dir: Path) -> dict[str, Any] | None:
    """``exit.json``, marked preempted when the launcher lived to record a child killed under a
    ``preempt`` marker (a clean exit or a stop Train asked for stays what it was)."""
    info = read_exit(attempt_dir)
    if info is None or not (attempt_dir / PREEMPT).exists() or info.get("stop_cause") or info.get("exit_code") == 0:
        return info
    return {**info, "preempted": True}


def _raise(errors: list[FieldError]) -> None:
    if errors:
        raise InvalidSpecError.of(errors)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
