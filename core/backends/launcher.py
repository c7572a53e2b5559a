"""The local job launcher: ``python -m core.backends.launcher <plan.json>``.

Runs the user's command as a child in its own process group (same session), appends its
stdout/stderr to ``logs.jsonl`` as JSON lines, forwards SIGTERM/SIGINT, enforces ``max_runtime``
and writes ``exit.json`` atomically when the child ends. Standard library only, so it starts fast.

Plan keys: ``argv``, ``env`` (without secret values, which arrive in the launcher's own
environment, named by ``secret_env``), ``working_dir``, ``max_runtime`` (seconds or null),
``stop_grace`` (seconds), ``read_only`` (paths), ``pythonpath`` (the job's own PYTHONPATH, or null).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MIN_REDACTED = 4


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class JobLog:
    """``logs.jsonl``: one JSON object per line, flushed as written; secret values are masked."""

    def __init__(self, path: Path, secrets: list[str]) -> None:
        self._file = open(path, "ab", buffering=0)  # open for the launcher's lifetime
        self._lock = threading.Lock()
        self._secrets = sorted((s for s in secrets if len(s) >= MIN_REDACTED), key=len, reverse=True)

    def write(self, stream: str, message: str) -> None:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        line = json.dumps({"t": now_iso(), "s": stream, "m": message}, ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line.encode("utf-8", errors="replace"))

    def pump(self, pipe: IO[bytes], stream: str) -> None:
        with pipe:
            for raw in iter(lambda: pipe.readline(65536), b""):
                self.write(stream, raw.decode("utf-8", errors="replace").rstrip("\r\n"))


def protect_read_only(paths: list[str], keep_writable: Path, log: JobLog) -> None:
    """Make each path read-only for the child, where the OS allows: a private mount namespace in
    which the path is bind-mounted onto itself read-only, so the path the job sees is unchanged.
    Must run while this process is single-threaded (unshare refuses otherwise)."""
    if not paths:
        return
    if not sys.platform.startswith("linux"):
        for path in paths:
            log.write("stderr", f"read_only not enforced for {path}: only supported on Linux")
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _enter_namespace(libc)
    except OSError as exc:
        for path in paths:
            log.write("stderr", f"read_only not enforced for {path}: {exc}")
        return
    for path in paths:
        target = Path(path).resolve()
        if keep_writable == target or target in keep_writable.parents:
            log.write("stderr", f"read_only not enforced for {path}: it holds Train's data directory")
            continue
        try:
            _call(libc.mount(str(target).encode(), str(target).encode(), None, MS_BIND | MS_REC, None), "bind")
            _call(libc.mount(b"none", str(target).encode(), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None), "remount")
        except OSError as exc:
            log.write("stderr", f"read_only not enforced for {path}: {exc}")


def _enter_namespace(libc: ctypes.CDLL) -> None:
    if os.geteuid() == 0:
        _call(libc.unshare(CLONE_NEWNS), "unshare")
    else:
        uid, gid = os.geteuid(), os.getegid()
        _call(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    _call(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")


def _call(result: int, step: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{step} failed: {os.strerror(errno)}")


class Launcher:
    def __init__(self, plan_path: Path) -> None:
        self.dir = plan_path.parent
        self.plan: dict[str, Any] = json.loads(plan_path.read_text())
        secrets = [os.environ.get(name, "") for name in self.plan.get("secret_env", [])]
        self.log = JobLog(self.dir / "logs.jsonl", secrets)
        self.child: subprocess.Popen[bytes] | None = None
        self.stop_cause: str | None = None
        self.kill_at: float | None = None
        self.pending = 0  # a signal that came before the child existed

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        if self.plan.get("pythonpath") is not None:
            env["PYTHONPATH"] = self.plan["pythonpath"]
        env.update(self.plan.get("env", {}))
        return env

    def on_signal(self, signum: int, _frame: object) -> None:
        running = self.child is None or self.child.poll() is None
        if signum == signal.SIGTERM and self.stop_cause is None and running:
            with contextlib.suppress(OSError):
                self.stop_cause = (self.dir / "stop").read_text().strip() or None
        if self.child is None:
            self.pending = self.pending or signum
        self.terminate(signum)

    def terminate(self, signum: int) -> None:
        if self.child is None or self.child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.child.pid, signum)
        if signum == signal.SIGTERM and self.kill_at is None:
            self.kill_at = time.monotonic() + float(self.plan.get("stop_grace", 10))

    def run(self) -> dict[str, Any]:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        protect_read_only(list(self.plan.get("read_only", [])), self.dir.resolve(), self.log)
        argv = list(self.plan["argv"])
        if self.pending:
            return {"exit_code": None, "signal": self.pending, "stop_cause": self.stop_cause}
        try:
            self.child = subprocess.Popen(
                argv, cwd=self.plan.get("working_dir") or None, env=self.child_env(),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, process_group=0,
            )
        except OSError as exc:
            error = f"could not start {argv[0]!r}: {exc.strerror or exc}"
            self.log.write("stderr", error)
            return {"exit_code": 127 if isinstance(exc, FileNotFoundError) else 126, "signal": None,
                    "stop_cause": None, "error": error}
        if self.pending:
            self.terminate(self.pending)
        readers = [
            threading.Thread(target=self.log.pump, args=(pipe, name), daemon=True)
            for pipe, name in ((self.child.stdout, "stdout"), (self.child.stderr, "stderr"))
        ]
        for reader in readers:
            reader.start()
        max_runtime = self.plan.get("max_runtime")
        deadline = time.monotonic() + float(max_runtime) if max_runtime else None
        while self.child.poll() is None:
            now = time.monotonic()
            if deadline is not None and now >= deadline and self.stop_cause is None:
                self.stop_cause = "MaxRuntimeExceeded"
                self.log.write("stderr", f"max_runtime of {max_runtime:g}s exceeded; stopping the job")
                self.terminate(signal.SIGTERM)
            if self.kill_at is not None and now >= self.kill_at:
                self.log.write("stderr", "the job did not stop within its grace period; killing it")
                self.terminate(signal.SIGKILL)
                self.kill_at = None
            time.sleep(0.05)
        code = self.child.returncode
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child.pid, signal.SIGKILL)  # what the job left behind in its group
        for reader in readers:
            reader.join(timeout=2)
        return {"exit_code": code if code >= 0 else None, "signal": -code if code < 0 else None,
                "stop_cause": self.stop_cause}


def write_exit(directory: Path, info: dict[str, Any]) -> None:
    info = {**info, "ended_at": now_iso()}
    tmp = directory / "exit.json.tmp"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, directory / "exit.json")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m core.backends.launcher <plan.json>", file=sys.stderr)
        return 2
    plan_path = Path(argv[0]).resolve()
    launcher = Launcher(plan_path)
    write_exit(launcher.dir, launcher.run())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
