"""``secret_scope``: what log records and errors look like once they have passed through it."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from core.errors import BackendError, FieldError, InvalidSpecError
from core.secrets.masking import MASK, WITHHELD, secret_scope

VALUE = "hunter2-Ü\"q"


def test_records_are_masked_and_sdk_debug_withheld(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with secret_scope([VALUE]):
        logging.getLogger("train.backends.x").info("sending %s", VALUE)
        logging.getLogger("botocore.endpoint").debug("Making request with params: %s", {"Environment": {"T": VALUE}})
        pool = logging.getLogger("urllib3.connectionpool")
        pool.warning("body was %s", json.dumps({"v": VALUE}))
        pool.warning("unicode body was %s", json.dumps({"v": VALUE}, ensure_ascii=False))
        try:
            raise ValueError(VALUE)
        except ValueError:
            logging.getLogger("train.service").exception("failed")
    logging.getLogger("train.other").info("after the scope: %s", "plain")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == f"sending {MASK}"
    assert messages[1] == WITHHELD
    assert MASK in messages[2] and MASK in messages[3]
    assert messages[-1] == "after the scope: plain"
    assert "hunter2" not in caplog.text
    assert 'hunter2-\\u00dc\\"q' not in caplog.text and 'hunter2-Ü\\"q' not in caplog.text


def test_train_debug_records_are_kept(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="train.api")
    logger = logging.getLogger("train.api")
    # The functions' Powertools logger may own "train" without propagation once a host has run
    # in this process; listen on the logger itself so the test does not depend on test order.
    logger.addHandler(caplog.handler)
    try:
        with secret_scope():
            logger.debug("our own %s", "detail")
    finally:
        logger.removeHandler(caplog.handler)
    assert caplog.records[-1].getMessage() == "our own detail"


def test_errors_leaving_the_scope_are_scrubbed() -> None:
    cause = RuntimeError(f"ValidationException: Value '{VALUE}' at 'environment' failed")
    with pytest.raises(BackendError) as caught, secret_scope([VALUE]):
        raise BackendError(f"SageMaker refused create_training_job: {cause}") from cause
    assert VALUE not in caught.value.detail and VALUE not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__

    with pytest.raises(InvalidSpecError) as refused, secret_scope([VALUE]):
        raise InvalidSpecError.of([FieldError(("env", "T"), f"bad value {VALUE}")])
    assert refused.value.errors[0].message == f"bad value {MASK}" and VALUE not in refused.value.detail


def test_the_scope_is_per_thread_and_nests(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def elsewhere() -> None:
        logging.getLogger("botocore.hooks").debug("other thread %s", "kept")
        seen.append("ran")

    with secret_scope(["outer-value"]):
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        with secret_scope(["inner-value"]):
            logging.getLogger("train.x").info("outer-value inner-value")
        logging.getLogger("train.x").info("outer-value inner-value")
    messages = [r.getMessage() for r in caplog.records]
    assert seen == ["ran"] and "other thread kept" in messages
    assert f"{MASK} {MASK}" in messages and f"{MASK} inner-value" in messages
