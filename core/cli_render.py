"""How the CLI shows things: rich tables for people, one JSON document for programs."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.client import TrainClientError, TrainConnectionError
from core.errors import TrainError

STATUS_STYLE = {
    "PENDING": "yellow",
    "IN_PROGRESS": "cyan",
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELED": "magenta",
    "EXPIRED": "red",
}

Json = dict[str, Any]


PIPE_WIDTH = 200  # piped output is read by tools: keep rows on one line rather than fold at 80


def out() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def styled_status(status: str | None) -> str:
    status = status or "?"
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def short_time(value: str | None) -> str:
    if not value:
        return "-"
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def clock(value: str | None) -> str:
    stamp = short_time(value)
    return stamp[11:] if len(stamp) == 19 else stamp


def exit_code_for(exc: TrainError) -> int:
    """2 for a request the server refused (4xx) or a local input problem, 3 when the server could
    not be reached or failed (5xx)."""
    if isinstance(exc, TrainConnectionError):
        return 3
    if isinstance(exc, TrainClientError):
        return 3 if exc.status >= 500 else 2
    return 3 if exc.status >= 500 else 2


def print_error(exc: TrainError) -> None:
    console = err()
    status = f" ({exc.status})" if isinstance(exc, TrainClientError) and exc.status else ""
    console.print(f"[bold red]Error:[/] {exc.title}{status}", markup=True)
    if exc.detail and exc.detail != exc.title:
        console.print(f"  {exc.detail}", markup=False)
    for item in exc.errors:
        console.print(f"  - {item.field or '(body)'}: {item.message}", markup=False)


def job_table(jobs: list[Json]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("NAME", overflow="fold", min_width=8)
    table.add_column("PROJECT", overflow="fold", min_width=7)
    table.add_column("BACKEND", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    for job in jobs:
        table.add_row(
            job.get("id", ""), _escape(job.get("name", "")), _escape(job.get("project", "")), job.get("backend", ""),
            styled_status(job.get("status")), short_time(job.get("created_at"))[:16],
        )
    return table


def job_detail(job: Json) -> Table:
    table = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    status = styled_status(job.get("status"))
    if job.get("status_reason"):
        status += f" ({_escape(job['status_reason'])})"
    image = job.get("image") or {}
    cloud = job.get("cloud_job_identifier") or {}
    rows: list[tuple[str, str]] = [
        ("id", job.get("id", "")),
        ("name", _escape(job.get("name", ""))),
        ("project", _escape(job.get("project", ""))),
        ("backend", job.get("backend", "")),
        ("status", status),
        ("native status", _escape(job.get("native_status") or "-")),
        ("attempt", str(job.get("attempt", 1))),
        ("cloud job", _escape(", ".join(f"{k}={v}" for k, v in cloud.items()) or "-")),
        ("image", _escape(image.get("resolved") or image.get("requested") or "-")),
        ("created", short_time(job.get("created_at"))),
        ("started", short_time(job.get("started_at"))),
        ("ended", short_time(job.get("ended_at"))),
    ]
    for i, mount in enumerate(job.get("storage_mounts") or []):
        mode = "ro" if mount.get("read_only") else "rw"
        target = mount.get("mount_path") or f"$STORAGE_MOUNT_{i}_PATH"
        rows.append((f"mount {i}", _escape(f"{mount.get('source_uri')} → {target} ({mode})")))
    labels = job.get("labels") or {}
    if labels:
        rows.append(("labels", _escape(", ".join(f"{k}={v}" for k, v in labels.items()))))
    for key, value in rows:
        table.add_row(key, value)
    return table


def events_table(events: list[Json]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for name in ("TIME", "KIND", "STATUS", "NATIVE", "ATTEMPT", "REASON"):
        table.add_column(name, overflow="fold", no_wrap=name in {"TIME", "STATUS"})
    for event in events:
        table.add_row(
            short_time(event.get("at")), event.get("kind", ""), styled_status(event.get("status")),
            _escape(event.get("native_status") or "-"), str(event.get("attempt", 1)),
            _escape(event.get("reason") or ""),
        )
    return table


def checkpoints_table(checkpoints: list[Json]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("NAME", overflow="fold")
    table.add_column("SIZE", justify="right", no_wrap=True)
    table.add_column("MODIFIED", no_wrap=True)
    table.add_column("URI", overflow="fold")
    for ckpt in checkpoints:
        table.add_row(
            _escape(ckpt.get("name", "")), human_size(int(ckpt.get("size_bytes") or 0)),
            short_time(ckpt.get("modified_at")), _escape(ckpt.get("uri", "")),
        )
    return table


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def print_log_line(line: Json, *, to_stderr: bool = False) -> None:
    message = str(line.get("message", "")).rstrip("\n")
    source = line.get("source")
    text = f"[{source}] {message}" if source else message
    stream = sys.stderr if to_stderr else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def status_line(job: Json, console: Console) -> None:
    reason = job.get("status_reason")
    suffix = f" ({_escape(reason)})" if reason else ""
    stamp = clock(job.get("updated_at"))
    console.print(f"[dim]{stamp}[/] {styled_status(job.get('status'))}{suffix}")


def _escape(text: str) -> str:
    return escape(str(text))
