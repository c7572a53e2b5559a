"""The fault matrices' shared servers, and their tally in the session's summary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.matrix import TALLIES
from tests.faults.sagemaker_cloud import LossyFakeSageMaker


@pytest.fixture(scope="module")
def lossy_sagemaker() -> Iterator[LossyFakeSageMaker]:
    """Our SageMaker fake on 127.0.0.1, with faults on the wire; stopped after the module."""
    fake = LossyFakeSageMaker()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TALLIES:
        return
    terminalreporter.section("fault injection")
    for tally in TALLIES:
        terminalreporter.write_line(
            f"{tally.label}: {tally.faulted} faulted runs over {tally.positions} calls, {tally.failed} not recovered"
        )
    runs = sum(t.faulted for t in TALLIES)
    failed = sum(t.failed for t in TALLIES)
    terminalreporter.write_line(
        f"total: {len(TALLIES)} scenario matrices, {runs} faulted runs (+{len(TALLIES)} clean), "
        f"{runs + len(TALLIES) - failed} recovered, {failed} not"
    )
