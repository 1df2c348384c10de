"""The one ``RateLimitedLog``: capture, redaction and the writer throttle repeated warnings alike."""

from __future__ import annotations

import logging
import threading

import pytest

from ragtrail.testing.internals import RateLimitedLog, SafeLogger


def test_a_key_is_logged_once_per_interval_then_says_what_it_held_back(
        caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger("ragtrail.test"), interval_s=3600)
    caplog.set_level(logging.WARNING, logger="ragtrail.test")
    assert log.warning("a", "first %s", 1)
    assert not log.warning("a", "again %s", 2)
    assert not log.log(logging.ERROR, "a", "again %s", 3)
    assert log.warning("b", "other key")  # keys are throttled apart
    assert [r.getMessage() for r in caplog.records] == ["first 1", "other key"]
    assert all(r.filename == "test_ratelimited_log.py" for r in caplog.records)  # the caller

    log._interval_s = 0.0  # the interval has passed
    assert log.warning("a", "later")
    assert caplog.records[-1].getMessage() == "later (2 similar messages held back)"


def test_many_threads_log_a_key_once(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(SafeLogger("ragtrail.test"), interval_s=3600)
    caplog.set_level(logging.WARNING, logger="ragtrail.test")
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(log.warning("k", "x")))
               for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1 and len(results) == 16
    assert len(caplog.records) == 1


def test_a_raising_application_handler_does_not_reach_the_caller() -> None:
    class Raising(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise RuntimeError("the application's handler")

        def handleError(self, record: logging.LogRecord) -> None:
            raise RuntimeError("and its error handling")

    logger = logging.getLogger("ragtrail.test.raising")
    handler = Raising()
    logger.addHandler(handler)
    try:
        assert RateLimitedLog(logger).warning("k", "message")
    finally:
        logger.removeHandler(handler)
