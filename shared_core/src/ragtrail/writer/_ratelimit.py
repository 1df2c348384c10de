"""Warnings that repeat are logged at most once per interval, with how many were held back."""

from __future__ import annotations

import logging
import time

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """Logs each ``key`` at most once per ``interval_s`` (used by the writer thread only)."""

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, key: str, message: str, *args: object,
            exc_info: BaseException | None = None) -> bool:
        """Log unless ``key`` was logged less than an interval ago; True when it was logged."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        if held:
            message += " (%d similar messages held back)"
            args = (*args, held)
        self._last[key] = now
        self._logger.log(level, message, *args, exc_info=exc_info)
        return True
