from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime

import pytest

from core.auth import Principal, authenticate, create_key, revoke_key
from core.errors import ForbiddenError, InvalidRequestError, NotFoundError, UnauthenticatedError
from tests.fakes import InMemoryKeyStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def keys() -> InMemoryKeyStore:
    return InMemoryKeyStore()


def test_key_has_the_documented_format(keys: InMemoryKeyStore) -> None:
    plaintext, record = create_key(keys, ["acct-1"], label="laptop", now=NOW)
    match = re.fullmatch(r"trn_([a-z0-9]{12})_([A-Za-z0-9_-]+)", plaintext)
    assert match is not None
    assert match.group(1) == record.key_id
    assert len(match.group(2)) >= 32
    assert record.label == "laptop" and record.created_at == NOW and record.account_ids == ["acct-1"]


def test_store_holds_only_the_hash(keys: InMemoryKeyStore) -> None:
    plaintext, record = create_key(keys, ["acct-1"], now=NOW)
    secret = plaintext.split("_", 2)[2]
    stored = keys.get_key(record.key_id)
    assert stored is not None
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    dumped = stored.model_dump_json()
    assert secret not in dumped and plaintext not in dumped


def test_keys_are_distinct(keys: InMemoryKeyStore) -> None:
    made = {create_key(keys, ["acct-1"], now=NOW)[0] for _ in range(20)}
    assert len(made) == 20
    assert len({k.key_id for k in keys.list_keys()}) == 20


def test_valid_key_and_granted_account_authenticate(keys: InMemoryKeyStore) -> None:
    plaintext, record = create_key(keys, ["acct-1", "acct-2"], now=NOW)
    assert authenticate(keys, plaintext, "acct-1") == Principal(key_id=record.key_id, account_id="acct-1")
    assert authenticate(keys, plaintext, "acct-2").account_id == "acct-2"


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        (None, "x-api-key"),
        ("", "x-api-key"),
        ("not-a-key", "x-api-key"),
        ("trn_short_" + "a" * 40, "x-api-key"),
        ("trn_abcdefghijkl_tooshort", "x-api-key"),
    ],
)
def test_missing_or_malformed_key_is_401(keys: InMemoryKeyStore, key: str | None, needle: str) -> None:
    create_key(keys, ["acct-1"], now=NOW)
    with pytest.raises(UnauthenticatedError) as info:
        authenticate(keys, key, "acct-1")
    assert info.value.status == 401
    assert needle in info.value.detail


def test_unknown_key_id_is_401(keys: InMemoryKeyStore) -> None:
    create_key(keys, ["acct-1"], now=NOW)
    with pytest.raises(UnauthenticatedError):
        authenticate(keys, "trn_zzzzzzzzzzzz_" + "s" * 43, "acct-1")


def test_wrong_secret_for_a_real_key_id_is_401(keys: InMemoryKeyStore) -> None:
    _, record = create_key(keys, ["acct-1"], now=NOW)
    with pytest.raises(UnauthenticatedError) as info:
        authenticate(keys, f"trn_{record.key_id}_" + "s" * 43, "acct-1")
    # the same answer as an unknown key: nothing tells which part was wrong
    assert info.value.detail == "the API key is unknown or revoked"


def test_missing_account_header_is_401_naming_it(keys: InMemoryKeyStore) -> None:
    plaintext, _ = create_key(keys, ["acct-1"], now=NOW)
    with pytest.raises(UnauthenticatedError) as info:
        authenticate(keys, plaintext, None)
    assert "x-selected-account-id" in info.value.detail


def test_account_not_granted_is_403(keys: InMemoryKeyStore) -> None:
    plaintext, _ = create_key(keys, ["acct-1"], now=NOW)
    with pytest.raises(ForbiddenError) as info:
        authenticate(keys, plaintext, "acct-2")
    assert info.value.status == 403


def test_revoked_key_fails_at_once(keys: InMemoryKeyStore) -> None:
    plaintext, record = create_key(keys, ["acct-1"], now=NOW)
    authenticate(keys, plaintext, "acct-1")
    revoke_key(keys, record.key_id, now=NOW)
    with pytest.raises(UnauthenticatedError):
        authenticate(keys, plaintext, "acct-1")
    stored = keys.get_key(record.key_id)
    assert stored is not None and stored.revoked_at == NOW


def test_revoking_an_unknown_key_is_not_found(keys: InMemoryKeyStore) -> None:
    with pytest.raises(NotFoundError):
        revoke_key(keys, "nosuchkey123")


@pytest.mark.parametrize("accounts", [[], ["bad account"], [""]])
def test_key_needs_valid_accounts(keys: InMemoryKeyStore, accounts: list[str]) -> None:
    with pytest.raises(InvalidRequestError):
        create_key(keys, accounts)
    assert keys.list_keys() == []


def test_no_key_reaches_the_log(keys: InMemoryKeyStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    plaintext, _ = create_key(keys, ["acct-1"], now=NOW)
    authenticate(keys, plaintext, "acct-1")
    for bad in (plaintext[:-1] + "x", plaintext):
        with pytest.raises((UnauthenticatedError, ForbiddenError)):
            authenticate(keys, bad, "acct-9" if bad == plaintext else "acct-1")
    secret = plaintext.split("_", 2)[2]
    assert secret not in caplog.text and secret[:-1] not in caplog.text
