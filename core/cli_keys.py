"""``train keys``: API keys in a local data directory's database, whether or not the server runs.

A key's secret is printed once, by ``create``; nothing else ever shows it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ParamSpec

import typer
from rich.table import Table

from core.cli_common import DataDirOpt, JsonOpt, data_dir, handled
from core.cli_render import out, print_json, short_time
from core.model import ApiKey
from core.ports import KeyStore

P = ParamSpec("P")

keys_app = typer.Typer(help="Create, list, revoke and rotate API keys (local database).", no_args_is_help=True)

_FULL_KEY = re.compile(r"^trn_([a-z0-9]+)_")



@contextmanager
def _keys(ctx: typer.Context, given: Path | None) -> Iterator[KeyStore]:
    from core.bootstrap import open_keys

    store = open_keys(data_dir(ctx, given))
    try:
        yield store
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()


def _public(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "prefix": f"trn_{key.key_id}_",
        "account_ids": key.account_ids,
        "label": key.label,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def _command(name: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
    def register(func: Callable[P, None]) -> Callable[P, None]:
        return keys_app.command(name)(handled(func))

    return register


@_command("create")
def create(
    ctx: typer.Context,
    account: Annotated[list[str], typer.Option("--account", help="Account the key may act in (repeatable).")],
    label: Annotated[str | None, typer.Option(help="A note to recognise the key by.")] = None,
    data_dir: DataDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an API key and print it once."""
    from core.auth import create_key

    with _keys(ctx, data_dir) as keys:
        secret, record = create_key(keys, account, label)
    if json_out:
        print_json({"api_key": secret, **_public(record)})
        return
    out().print(f"API key for {', '.join(record.account_ids)}: {secret}", markup=False)
    out().print("It is shown only now; store it somewhere safe.")


@_command("list")
def list_keys(
    ctx: typer.Context,
    account: Annotated[str | None, typer.Option("--account", help="Only keys granted this account.")] = None,
    data_dir: DataDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List keys: id, accounts, created, revoked. Never a secret."""
    with _keys(ctx, data_dir) as keys:
        found = keys.list_keys(account)
    if json_out:
        print_json({"keys": [_public(k) for k in found]})
        return
    if not found:
        out().print("No keys.")
        return
    table = Table(show_edge=False, pad_edge=False)
    for name in ("KEY", "ACCOUNTS", "LABEL", "CREATED", "REVOKED"):
        table.add_column(name, overflow="fold")
    for key in found:
        table.add_row(
            f"trn_{key.key_id}_…", ", ".join(key.account_ids), key.label or "",
            short_time(key.created_at.isoformat()), short_time(key.revoked_at.isoformat()) if key.revoked_at else "",
        )
    out().print(table)


@_command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key id (or the whole key).")],
    data_dir: DataDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Revoke a key; requests with it get 401 from then on."""
    from core.auth import revoke_key

    wanted = _key_id(key_id)
    with _keys(ctx, data_dir) as keys:
        revoke_key(keys, wanted)
    if json_out:
        print_json({"key_id": wanted, "revoked": True})
    else:
        out().print(f"Revoked key {wanted}.", markup=False)


@_command("rotate")
def rotate(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key id (or the whole key).")],
    data_dir: DataDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Replace a key: print a new one for the same accounts once, and revoke the old one now."""
    from core.auth import rotate_key

    wanted = _key_id(key_id)
    with _keys(ctx, data_dir) as keys:
        secret, record = rotate_key(keys, wanted)
    if json_out:
        print_json({"api_key": secret, **_public(record), "replaces": wanted})
        return
    out().print(f"API key for {', '.join(record.account_ids)}: {secret}", markup=False)
    out().print(f"It is shown only now; key {wanted} is revoked.", markup=False)


def _key_id(given: str) -> str:
    match = _FULL_KEY.match(given)
    return match.group(1) if match else given
