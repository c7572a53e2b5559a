"""The AWS functions' real wiring (DynamoDB in moto, SageMaker through boto3 to our fake
endpoint), shared with tests/functions; the volume runs' rates in the session summary."""

from __future__ import annotations

import pytest

from tests.functions.conftest import deployment, fresh_container
from tests.volume.stream import RESULTS

__all__ = ["deployment", "fresh_container"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if RESULTS:
        terminalreporter.section("events at volume")
        for line in RESULTS:
            terminalreporter.write_line(line)
