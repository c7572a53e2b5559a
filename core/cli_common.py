"""What every ``train`` command shares: connection settings, common options, error handling."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar

import typer

from core.cli_render import exit_code_for, print_error
from core.client import TrainClient
from core.errors import TrainError

P = ParamSpec("P")
R = TypeVar("R")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="TRAIN_DATA_DIR", help="Local state directory (default ~/.train).",
                 show_default=False),
]


@dataclass
class Connection:
    """The global options; what is missing comes from the environment or ``credentials.json``."""

    url: str | None = None
    api_key: str | None = None
    account: str | None = None
    data_dir: Path | None = None

    def client(self) -> TrainClient:
        return TrainClient.from_env(self.data_dir, url=self.url, api_key=self.api_key, account_id=self.account)


def connection(ctx: typer.Context) -> Connection:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Connection) else Connection()


def client(ctx: typer.Context) -> TrainClient:
    return connection(ctx).client()


def data_dir(ctx: typer.Context, given: Path | None) -> Path:
    from core.config import default_data_dir

    chosen = given or connection(ctx).data_dir
    return (chosen or default_data_dir()).expanduser()


def handled(func: Callable[P, R]) -> Callable[P, R]:
    """Turns Train errors into a message on stderr and an exit code: 2 for a refused request
    (4xx) or bad input, 3 when the server cannot be reached or fails (5xx)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except TrainError as exc:
            print_error(exc)
            raise typer.Exit(exit_code_for(exc)) from exc

    return wrapper
