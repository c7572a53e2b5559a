"""Session-wide test servers: shared by every test that asks for them, stopped at the end."""

from __future__ import annotations

import pytest

from tests.firestore_emulator import FIRESTORE
from tests.servers import MOTO


@pytest.fixture(scope="session")
def moto_endpoint() -> str:
    """The URL of the session's moto server on 127.0.0.1 (started on first use)."""
    return MOTO.url()


@pytest.fixture(scope="session")
def firestore_emulator_host() -> str:
    """host:port of the session's Firestore emulator on 127.0.0.1 (started on first use)."""
    return FIRESTORE.host


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    MOTO.stop()
    FIRESTORE.stop()
