"""``train``: the command line, built on ``core.client``.

Exit codes: 0 success; 1 a followed job ended other than COMPLETED; 2 the request was refused
(4xx) or the input is wrong; 3 the server could not be reached or failed (5xx).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from core import cli_common as common
from core.cli_common import Connection, DataDirOpt, JsonOpt, handled
from core.cli_keys import keys_app
from core.cli_render import (
    checkpoints_table,
    err,
    events_table,
    job_detail,
    job_table,
    out,
    print_json,
    print_log_line,
    status_line,
)
from core.client import TERMINAL_STATUSES, LogTail, TrainClient
from core.durations import parse_duration
from core.errors import FieldError, InvalidRequestError

app = typer.Typer(
    name="train",
    help="Submit and follow training jobs on SageMaker, Vertex AI, Azure ML or this machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(keys_app, name="keys")

JobId = Annotated[str, typer.Argument(help="The job id.")]


@app.callback()
def _global(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option("--url", envvar="TRAIN_URL", help="The Train API.")] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="TRAIN_API_KEY", help="API key.", show_envvar=True)
    ] = None,
    account: Annotated[
        str | None, typer.Option("--account", envvar="TRAIN_ACCOUNT_ID", help="Account to act in.")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Connection settings; anything not given is read from <data-dir>/credentials.json."""
    ctx.obj = Connection(url, api_key, account, data_dir)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    data_dir: DataDirOpt = None,
) -> None:
    """Run the Train API with SQLite and the local backend until Ctrl-C."""
    from core.bootstrap import serve_local

    try:
        handled(serve_local)(host, port, common.data_dir(ctx, data_dir))
    except OSError as exc:  # the port is taken, the address is not ours, the directory is not writable
        err().print(f"[bold red]Error:[/] cannot serve on {host}:{port}: {escape(str(exc))}")
        raise typer.Exit(3) from exc


@app.command()
@handled
def submit(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("-f", "--file", help="Job spec, YAML or JSON.")],
    follow: Annotated[bool, typer.Option("--follow", help="Stream status and logs until the job ends.")] = False,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Submit at most once per key.")
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="Submit to this backend (required for a native job_config file).")
    ] = None,
    poll: Annotated[float, typer.Option(help="Seconds between polls with --follow.", min=0.05)] = 1.0,
    json_out: JsonOpt = False,
) -> None:
    """Submit a job from a spec file; with --follow, exit 0 only when it COMPLETES."""
    from core.cli_spec import read_submission

    native_backend, body = read_submission(file, backend)
    client = common.client(ctx)
    if native_backend is None:
        job = client.submit(body, idempotency_key=idempotency_key)
    else:
        job = client.submit_native(native_backend, body, idempotency_key=idempotency_key)
    if not follow:
        if json_out:
            print_json(job)
        else:
            out().print(f"Submitted job [bold]{job['id']}[/] ({escape(str(job.get('name')))}) to "
                        f"{job.get('backend')}: {job.get('status')}")
            out().print(f"Follow it with: train logs -f {job['id']}", markup=False)
        return
    console = err() if json_out else out()
    console.print(f"Submitted job [bold]{job['id']}[/] ({escape(str(job.get('name')))}) to {job.get('backend')}")
    status_line(job, console)
    final = _follow(client, job["id"], poll=poll, json_out=json_out, known_status=job.get("status"))
    if json_out:
        print_json(final)
    raise typer.Exit(0 if final.get("status") == "COMPLETED" else 1)


def _follow(client: TrainClient, job_id: str, *, poll: float, json_out: bool, known_status: str | None = None,
            show_status: bool = True, since: datetime | None = None) -> dict[str, Any]:
    console = err() if json_out else out()

    def on_status(job: dict[str, Any]) -> None:
        if show_status:
            status_line(job, console)

    try:
        return client.follow(
            job_id,
            on_status=on_status,
            on_log=functools.partial(print_log_line, to_stderr=json_out),
            poll=poll,
            since=since,
            known_status=known_status,
        )
    except KeyboardInterrupt:
        err().print(f"Stopped following; the job keeps running (train cancel {job_id} stops it).")
        raise typer.Exit(130) from None


@app.command()
@handled
def get(ctx: typer.Context, job_id: JobId, json_out: JsonOpt = False) -> None:
    """Show one job."""
    job = common.client(ctx).get(job_id)
    if json_out:
        print_json(job)
    else:
        out().print(job_detail(job))


@app.command("list")
@handled
def list_jobs(
    ctx: typer.Context,
    status: Annotated[list[str] | None, typer.Option("--status", help="Only these statuses (repeatable).")] = None,
    backend: Annotated[str | None, typer.Option(help="Only this backend.")] = None,
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    name: Annotated[str | None, typer.Option(help="Only jobs with this name.")] = None,
    limit: Annotated[int, typer.Option(help="Jobs per page (≤ 100).", min=1, max=100)] = 20,
    cursor: Annotated[str | None, typer.Option(help="Continue from a previous page.")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow cursors to the last page.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    client = common.client(ctx)
    statuses = [s.upper() for s in status] if status else None
    if all_pages:
        page: dict[str, Any] = {
            "jobs": list(client.iter_jobs(statuses, backend, project, name, page_size=limit)),
            "next_cursor": None,
        }
    else:
        page = client.list(statuses, backend, project, name, limit=limit, cursor=cursor)
    if json_out:
        print_json(page)
        return
    jobs = page.get("jobs", [])
    if not jobs:
        out().print("No jobs.")
        return
    out().print(job_table(jobs))
    if page.get("next_cursor"):
        out().print(f"More: train list --cursor {page['next_cursor']} (or --all)", markup=False)


@app.command()
@handled
def cancel(ctx: typer.Context, job_id: JobId, json_out: JsonOpt = False) -> None:
    """Ask to cancel a job (it ends as CANCELED once the backend confirms)."""
    job = common.client(ctx).cancel(job_id)
    if json_out:
        print_json(job)
        return
    status = job.get("status", "")
    if status in TERMINAL_STATUSES:
        out().print(f"Job {job_id} is {status}.", markup=False)
    else:
        out().print(f"Cancel requested for job {job_id} (now {status}).", markup=False)


@app.command()
@handled
def logs(
    ctx: typer.Context,
    job_id: JobId,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep streaming until the job ends.")] = False,
    since: Annotated[
        str | None, typer.Option(help="Only lines after this time: ISO 8601, or a duration ago like 10m.")
    ] = None,
    poll: Annotated[float, typer.Option(help="Seconds between polls with -f.", min=0.05)] = 1.0,
    json_out: JsonOpt = False,
) -> None:
    """Print a job's log lines. With --json: one document, or one JSON line per log line with -f."""
    client = common.client(ctx)
    when = _parse_since(since)
    if follow:
        on_log: Callable[[dict[str, Any]], None] = (
            (lambda line: typer.echo(json.dumps(line))) if json_out else print_log_line
        )
        final = client.follow(job_id, on_log=on_log, poll=poll, since=when)
        if not json_out:
            status_line(final, err())
        return
    tail = LogTail(client, job_id, since=when)
    lines: list[dict[str, Any]] = []
    while True:
        page = tail.fetch()
        lines.extend(page)
        if not page or not tail.more:
            break
    if json_out:
        print_json({"job_id": job_id, "lines": lines, "next_cursor": tail.cursor})
        return
    for line in lines:
        print_log_line(line)


def _parse_since(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return datetime.now(UTC) - parse_duration(value)
    except ValueError as exc:
        raise InvalidRequestError(
            f"--since '{value}' is neither a time nor a duration",
            errors=[FieldError(("since",), "use ISO 8601 (2026-01-01T12:00:00Z) or a duration like 10m")],
        ) from exc


@app.command()
@handled
def events(ctx: typer.Context, job_id: JobId, json_out: JsonOpt = False) -> None:
    """Show a job's status history, including updates that were ignored."""
    data = common.client(ctx).events(job_id)
    if json_out:
        print_json(data)
        return
    out().print(events_table(data.get("events", [])))
    if data.get("ignored_updates"):
        out().print(f"{data['ignored_updates']} update(s) ignored (duplicates, stale or out of order).")


@app.command()
@handled
def checkpoints(ctx: typer.Context, job_id: JobId, json_out: JsonOpt = False) -> None:
    """List the checkpoints a job wrote."""
    data = common.client(ctx).checkpoints(job_id)
    if json_out:
        print_json(data)
        return
    found = data.get("checkpoints", [])
    if not found:
        out().print("No checkpoints.")
        return
    out().print(checkpoints_table(found))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
