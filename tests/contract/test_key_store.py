"""The KeyStore contract, run over each entry of KEY_STORE_FACTORIES."""

from __future__ import annotations

from datetime import timedelta

from core.model import ApiKey
from core.ports import KeyStore
from tests.contract.conftest import T0


def _key(key_id: str, *accounts: str, minutes: int = 0) -> ApiKey:
    return ApiKey(
        key_id=key_id,
        secret_hash=f"sha256:{key_id}-digest",
        account_ids=list(accounts),
        label=f"key {key_id}",
        created_at=T0 + timedelta(minutes=minutes),
    )


def test_put_then_get(key_store: KeyStore) -> None:
    key = _key("k1", "acct-a")
    key_store.put_key(key)
    assert key_store.get_key("k1") == key
    assert key_store.get_key("nope") is None


def test_list_all_and_by_account(key_store: KeyStore) -> None:
    a = _key("k1", "acct-a", minutes=0)
    ab = _key("k2", "acct-a", "acct-b", minutes=1)
    b = _key("k3", "acct-b", minutes=2)
    for key in (a, ab, b):
        key_store.put_key(key)
    assert sorted(k.key_id for k in key_store.list_keys()) == ["k1", "k2", "k3"]
    assert sorted(k.key_id for k in key_store.list_keys("acct-a")) == ["k1", "k2"]
    assert sorted(k.key_id for k in key_store.list_keys("acct-b")) == ["k2", "k3"]
    assert key_store.list_keys("acct-c") == []
    assert {k.key_id: k for k in key_store.list_keys()}["k2"] == ab


def test_put_replaces_a_key_and_its_grants(key_store: KeyStore) -> None:
    key_store.put_key(_key("k1", "acct-a", "acct-b"))
    narrowed = _key("k1", "acct-b")
    key_store.put_key(narrowed)
    assert key_store.get_key("k1") == narrowed
    assert key_store.list_keys("acct-a") == []
    assert [k.key_id for k in key_store.list_keys("acct-b")] == ["k1"]
    assert len(key_store.list_keys()) == 1


def test_revoke_sets_revoked_at_once(key_store: KeyStore) -> None:
    key_store.put_key(_key("k1", "acct-a"))
    key_store.put_key(_key("k2", "acct-a"))
    at = T0 + timedelta(hours=1)
    assert key_store.revoke_key("k1", at) is True
    revoked = key_store.get_key("k1")
    assert revoked is not None and revoked.revoked_at == at
    assert revoked.secret_hash == "sha256:k1-digest" and revoked.account_ids == ["acct-a"]
    assert key_store.revoke_key("k1", at + timedelta(hours=1)) is True
    again = key_store.get_key("k1")
    assert again is not None and again.revoked_at == at
    other = key_store.get_key("k2")
    assert other is not None and other.revoked_at is None
    assert {k.key_id: k.revoked_at for k in key_store.list_keys("acct-a")} == {"k1": at, "k2": None}


def test_revoke_unknown_key_is_false(key_store: KeyStore) -> None:
    assert key_store.revoke_key("nope", T0) is False
    assert key_store.get_key("nope") is None
