"""API keys: create, list (prefix only), revoke, rotate; hashed at rest; a revoked key fails on
the very next request. Over SQLite and DynamoDB, with the server running throughout."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.auth import create_key, revoke_key, rotate_key
from core.cli import app
from core.errors import InvalidRequestError, NotFoundError
from core.stores.sqlite import SQLiteJobStore
from tests.isolation.conftest import A, B, World

KEY = re.compile(r"^trn_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
ROUTES = [("GET", "/v1/jobs"), ("GET", "/v1/jobs/00000000000000000000000000"), ("POST", "/v1/jobs")]


def _secret(plaintext: str) -> str:
    match = KEY.match(plaintext)
    assert match, plaintext
    return match.group(2)


def _status(world: World, key: str, account: str = A, route: tuple[str, str] = ("GET", "/v1/jobs")) -> int:
    body = {"name": "k", "backend": "local", "command": ["x"]} if route[0] == "POST" else None
    return world.call(route[0], route[1], key=key, account=account, body=body).status


def test_created_keys_are_stored_only_as_hashes(fresh_world: World) -> None:
    plaintext, record = create_key(fresh_world.store, [A, B], label="ci")
    assert record.key_id == KEY.match(plaintext).group(1)  # type: ignore[union-attr]
    assert record.secret_hash == hashlib.sha256(_secret(plaintext).encode()).hexdigest()
    assert _status(fresh_world, plaintext, A) == 200 and _status(fresh_world, plaintext, B) == 200
    fresh_world.submit(plaintext, A, "stored")  # jobs and claims are on disk too

    raw = fresh_world.backing.raw()
    assert record.secret_hash.encode() in raw, "the raw read sees the key records"
    for key in [plaintext, *fresh_world.keys.values()]:
        assert _secret(key).encode() not in raw
        assert key.encode() not in raw


def test_a_revoked_key_fails_on_the_next_request(fresh_world: World) -> None:
    plaintext, record = create_key(fresh_world.store, [A])
    assert all(_status(fresh_world, plaintext, route=r) in (200, 201, 404) for r in ROUTES)
    other = fresh_world.backing.second()  # as `train keys revoke` in another process would
    revoke_key(other, record.key_id)
    for route in ROUTES:
        assert _status(fresh_world, plaintext, route=route) == 401
    assert _status(fresh_world, "a") == 200, "other keys are untouched"


def test_rotate_grants_the_same_accounts_and_revokes_the_old_key_at_once(fresh_world: World) -> None:
    old_plaintext = fresh_world.keys["ab"]
    old_id = fresh_world.key_ids["ab"]
    other = fresh_world.backing.second()
    new_plaintext, new = rotate_key(other, old_id, now=datetime.now(UTC))

    assert new.key_id != old_id and new.account_ids == [A, B] and new.label == "key ab"
    assert _status(fresh_world, old_plaintext, A) == 401 and _status(fresh_world, old_plaintext, B) == 401
    assert _status(fresh_world, new_plaintext, A) == 200 and _status(fresh_world, new_plaintext, B) == 200
    old = fresh_world.store.get_key(old_id)
    assert old is not None and old.revoked_at is not None
    assert _secret(new_plaintext).encode() not in fresh_world.backing.raw()

    with pytest.raises(InvalidRequestError):
        rotate_key(fresh_world.store, old_id)
    with pytest.raises(NotFoundError):
        rotate_key(fresh_world.store, "zzzzzzzzzzzz")
    active_in_b = {k.key_id for k in fresh_world.store.list_keys(B) if k.revoked_at is None}
    assert active_in_b == {fresh_world.key_ids["b"], new.key_id}


def test_listed_keys_carry_no_secret(fresh_world: World) -> None:
    listed = fresh_world.store.list_keys()
    assert {k.key_id for k in listed} == set(fresh_world.key_ids.values())
    text = json.dumps([k.model_dump(mode="json") for k in listed])
    for plaintext in fresh_world.keys.values():
        assert _secret(plaintext) not in text


def _cli(state: Path, *args: str) -> tuple[int, str, str]:
    env = {"TRAIN_DATA_DIR": str(state), "TRAIN_STORE": None}
    result = CliRunner().invoke(app, [*args, "--data-dir", str(state)], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_cli_lists_the_prefix_only_and_rotates(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, out, _ = _cli(state, "keys", "create", "--account", A, "--account", B, "--label", "ci", "--json")
    assert code == 0, out
    created = json.loads(out)
    plaintext, key_id = created["api_key"], created["key_id"]

    store = SQLiteJobStore(state / "train.db")  # what the server would read
    try:
        stored_hash = store.get_key(key_id).secret_hash  # type: ignore[union-attr]
    finally:
        store.close()
    for args in (("keys", "list", "--json"), ("keys", "list"), ("keys", "list", "--account", B, "--json")):
        code, out, _ = _cli(state, *args)
        assert code == 0
        assert _secret(plaintext) not in out and stored_hash not in out
    listed = json.loads(_cli(state, "keys", "list", "--json")[1])["keys"]
    assert listed == [{"key_id": key_id, "prefix": f"trn_{key_id}_", "account_ids": [A, B], "label": "ci",
                       "created_at": created["created_at"], "revoked_at": None}]

    code, out, _ = _cli(state, "keys", "rotate", plaintext, "--json")
    assert code == 0, out
    rotated = json.loads(out)
    assert rotated["replaces"] == key_id and rotated["account_ids"] == [A, B] and rotated["label"] == "ci"
    assert KEY.match(rotated["api_key"]) and rotated["api_key"] != plaintext
    after = {k["key_id"]: k for k in json.loads(_cli(state, "keys", "list", "--json")[1])["keys"]}
    assert after[key_id]["revoked_at"] is not None and after[rotated["key_id"]]["revoked_at"] is None
    listing = _cli(state, "keys", "list", "--json")[1]
    assert _secret(rotated["api_key"]) not in listing

    code, out, err = _cli(state, "keys", "rotate", key_id)
    assert code == 2 and "revoked" in err
    code, _, err = _cli(state, "keys", "rotate", "zzzzzzzzzzzz")
    assert code == 2 and "Not found" in err
    code, out, _ = _cli(state, "keys", "rotate", rotated["key_id"])
    assert code == 0 and "is revoked" in out and KEY.search(out.split(": ", 1)[1].split()[0])
