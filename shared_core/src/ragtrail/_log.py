"""Loggers named ``ragtrail.<area>`` and a rate limit for repeated warnings."""

from __future__ import annotations

import logging
import time

from ._forksafe import fork_safe_lock

__all__ = ["RateLimitedLog", "get_logger"]

logging.getLogger("ragtrail").addHandler(logging.NullHandler())


def get_logger(area: str) -> logging.Logger:
    """The logger ``ragtrail.<area>``."""
    return logging.getLogger(f"ragtrail.{area}")


class RateLimitedLog:
    """Logs a given key at most once per interval; counts what it suppressed."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = fork_safe_lock(self)

    def warning(self, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log ``msg`` unless ``key`` was logged within the interval. True if logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            msg = f"{msg} ({suppressed} similar messages suppressed)"
        self._logger.warning(msg, *args, exc_info=exc_info)
        return True
