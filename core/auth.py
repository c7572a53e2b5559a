"""API keys: ``trn_<key_id>_<secret>``, stored only as a hash, checked in constant time.

The key id is public (it names the stored record); the secret is 256 bits from ``secrets``.
A secret of that entropy cannot be guessed or brute-forced from its hash, so a fast SHA-256 is
enough; a slow password hash (bcrypt, scrypt) only matters for low-entropy, human-chosen secrets.
Plaintext keys are returned once by ``create_key`` and never stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime

from core.errors import FieldError, ForbiddenError, InvalidRequestError, NotFoundError, UnauthenticatedError
from core.model import ApiKey
from core.ports import KeyStore

API_KEY_HEADER = "x-api-key"
ACCOUNT_HEADER = "x-selected-account-id"
KEY_PREFIX = "trn_"
KEY_ID_LENGTH = 12
SECRET_BYTES = 32  # token_urlsafe(32) gives 43 characters

_KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
_KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}([a-z0-9]{{{KEY_ID_LENGTH}}})_([A-Za-z0-9_-]{{32,256}})$")
_ACCOUNT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
# Compared against when the key id is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = hashlib.sha256(b"train-unknown-key").hexdigest()


@dataclass(frozen=True)
class Principal:
    key_id: str
    account_id: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    keys: KeyStore, account_ids: list[str], label: str | None = None, now: datetime | None = None
) -> tuple[str, ApiKey]:
    """Create and store a key granted ``account_ids``. Returns the plaintext (shown once) and the
    stored record, which holds only the secret's hash."""
    accounts = [account_ids] if isinstance(account_ids, str) else list(dict.fromkeys(account_ids))
    if not accounts:
        raise InvalidRequestError("a key needs at least one account", errors=[FieldError(("account_ids",), "empty")])
    for i, account in enumerate(accounts):
        if not _ACCOUNT_PATTERN.match(account):
            raise InvalidRequestError(
                f"'{account}' is not a valid account id",
                errors=[FieldError(("account_ids", i), "use letters, digits and _.:- (at most 128)")],
            )
    key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    record = ApiKey(
        key_id=key_id,
        secret_hash=hash_secret(secret),
        account_ids=accounts,
        label=label,
        created_at=now or datetime.now(UTC),
    )
    keys.put_key(record)
    return f"{KEY_PREFIX}{key_id}_{secret}", record


def revoke_key(keys: KeyStore, key_id: str, now: datetime | None = None) -> None:
    if not keys.revoke_key(key_id, now or datetime.now(UTC)):
        raise NotFoundError(f"no key '{key_id}'")


def rotate_key(keys: KeyStore, key_id: str, now: datetime | None = None) -> tuple[str, ApiKey]:
    """Replace a key: a new one granted the same accounts (and label), the old one revoked at once.

    There is no grace period: a request with the old key fails from the moment this returns. To
    roll a key over without a failed request, ``create_key`` a second key, deploy it, then revoke
    the first. The new key is stored before the old one is revoked, so a crash in between leaves
    both valid (rotate again or revoke), never neither.

    Raises:
        NotFoundError: no such key.
        InvalidRequestError: the key is already revoked.
    """
    old = keys.get_key(key_id)
    if old is None:
        raise NotFoundError(f"no key '{key_id}'")
    if old.revoked_at is not None:
        raise InvalidRequestError(f"key '{key_id}' is revoked; create a new key instead")
    at = now or datetime.now(UTC)
    plaintext, record = create_key(keys, old.account_ids, old.label, now=at)
    revoke_key(keys, key_id, now=at)
    return plaintext, record


def authenticate(keys: KeyStore, api_key_header: str | None, account_header: str | None) -> Principal:
    """The caller behind the two auth headers.

    Raises:
        UnauthenticatedError: a header is missing, or the key is malformed, unknown or revoked.
        ForbiddenError: the key is valid but not granted the selected account.
    """
    if not api_key_header:
        raise UnauthenticatedError(f"missing the {API_KEY_HEADER} header")
    match = _KEY_PATTERN.match(api_key_header.strip())
    if match is None:
        raise UnauthenticatedError(f"the {API_KEY_HEADER} header is not a Train API key")
    key_id, secret = match.groups()
    record = keys.get_key(key_id)
    expected = record.secret_hash if record is not None else _DUMMY_HASH
    matches = hmac.compare_digest(hash_secret(secret).encode(), expected.encode())
    if record is None or not matches or record.revoked_at is not None:
        raise UnauthenticatedError("the API key is unknown or revoked")
    if not account_header:
        raise UnauthenticatedError(f"missing the {ACCOUNT_HEADER} header")
    account_id = account_header.strip()
    if account_id not in record.account_ids:
        raise ForbiddenError(f"this API key is not granted account '{account_id}'")
    return Principal(key_id=key_id, account_id=account_id)
