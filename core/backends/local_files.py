"""Reading a local job's files and processes: pid and exit records, logs, checkpoints, and
finding a launcher by pid without being fooled by pid reuse."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.backends.local_state import parse_time
from core.model import Checkpoint, LogLine, LogPage
from core.stores.cursor import decode_cursor, encode_cursor

PROC = Path("/proc")


def read_pid(attempt_dir: Path) -> int | None:
    try:
        return int((attempt_dir / "launcher.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def read_exit(attempt_dir: Path) -> dict[str, Any] | None:
    try:
        info = json.loads((attempt_dir / "exit.json").read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def alive(pid: int, plan_path: Path) -> bool:
    """Whether ``pid`` is still the launcher of ``plan_path``: its command line must name the plan,
    so a reused pid is not mistaken for it (a zombie has an empty command line)."""
    if not PROC.is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return str(plan_path).encode() in cmdline.split(b"\0")


def kill_session(sid: int, plan_path: Path, job_id: str) -> None:
    """SIGKILL what is left of a job: the processes of the session its launcher ``sid`` led that
    are the launcher itself or carry the job's ``TRAIN_JOB_ID``, whatever process group they moved
    to. Both marks are checked because a dead launcher's pid may since lead someone else's session."""
    if not PROC.is_dir():
        if alive(sid, plan_path):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(sid, signal.SIGKILL)
        return
    marker = f"TRAIN_JOB_ID={job_id}".encode()
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            session = int(stat[stat.rindex(")") + 2:].split()[3])
            if session != sid:
                continue
            ours = alive(int(entry.name), plan_path) or marker in (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ours:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def read_logs(path: Path, attempt: int, *, cursor: str | None, limit: int, since: datetime | None) -> LogPage:
    """A page of ``logs.jsonl``. The cursor is the byte offset after the last line read, so a
    follower polls with it and gets only what was appended; a line still being written waits."""
    offset = 0
    if cursor:
        position = decode_cursor(cursor, keys=("attempt", "offset"))
        if position["attempt"] == attempt:
            offset = int(position["offset"])
    lines: list[LogLine] = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            while len(lines) < max(limit, 1):
                raw = f.readline()
                if not raw.endswith(b"\n"):
                    break
                offset += len(raw)
                line = _log_line(raw)
                if line is not None and (since is None or line.time >= since):
                    lines.append(line)
    except FileNotFoundError:
        pass
    return LogPage(lines=lines, next_cursor=encode_cursor({"attempt": attempt, "offset": offset}))


def _log_line(raw: bytes) -> LogLine | None:
    try:
        item = json.loads(raw)
        return LogLine(time=parse_time(item["t"]), stream=str(item.get("s", "stdout")), message=str(item["m"]))
    except (ValueError, KeyError, TypeError):
        return None


def list_checkpoints(root: Path) -> list[Checkpoint]:
    """Entries under the job's checkpoint dir, oldest first; a directory's size and time cover
    everything inside it."""
    out: list[Checkpoint] = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return out
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            size, mtime = _measure(entry)
        except OSError:
            continue
        out.append(Checkpoint(
            name=entry.name, uri=entry.resolve().as_uri(), size_bytes=size,
            modified_at=datetime.fromtimestamp(mtime, UTC),
        ))
    return sorted(out, key=lambda c: (c.modified_at, c.name))


def _measure(entry: Path) -> tuple[int, float]:
    stat = entry.stat()
    if not entry.is_dir():
        return stat.st_size, stat.st_mtime
    size, mtime = 0, stat.st_mtime
    for dirpath, _dirs, files in os.walk(entry):
        for name in files:
            with contextlib.suppress(OSError):
                inner = os.stat(os.path.join(dirpath, name))
                size += inner.st_size
                mtime = max(mtime, inner.st_mtime)
    return size, mtime
