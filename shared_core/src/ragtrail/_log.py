"""Loggers named ``ragtrail.<area>`` and a rate limit for repeated warnings."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Any

from ._forksafe import fork_safe_lock

__all__ = ["RateLimitedLog", "SafeLogger", "get_logger", "report_to_stderr"]

logging.getLogger("ragtrail").addHandler(logging.NullHandler())


class SafeLogger:
    """A logger whose calls never raise.

    ``logging`` shields an application from its own handlers' ``emit`` only when they
    call ``handleError``; a handler or filter that raises, or a warning turned into an
    error inside a handler, propagates into the caller. The writer's threads log
    through this, so an application's logging configuration can never cost a record.
    """

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def log(self, level: int, msg: str, *args: object, **kwargs: Any) -> None:
        """``Logger.log``; whatever the application's handlers raise is ignored."""
        self._emit(level, msg, args, kwargs)

    def debug(self, msg: str, *args: object, **kwargs: Any) -> None:
        """``Logger.debug``, never raising."""
        self._emit(logging.DEBUG, msg, args, kwargs)

    def info(self, msg: str, *args: object, **kwargs: Any) -> None:
        """``Logger.info``, never raising."""
        self._emit(logging.INFO, msg, args, kwargs)

    def warning(self, msg: str, *args: object, **kwargs: Any) -> None:
        """``Logger.warning``, never raising."""
        self._emit(logging.WARNING, msg, args, kwargs)

    def error(self, msg: str, *args: object, **kwargs: Any) -> None:
        """``Logger.error``, never raising."""
        self._emit(logging.ERROR, msg, args, kwargs)

    def _emit(self, level: int, msg: str, args: tuple[object, ...],
              kwargs: dict[str, Any]) -> None:
        # The record names the caller's file and line, not this wrapper's.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 2
        with contextlib.suppress(Exception):  # reporting must not fail what it reports on
            self.logger.log(level, msg, *args, **kwargs)


def report_to_stderr(logger: logging.Logger, level: int, msg: str, *args: object) -> None:
    """Log ``msg``, and make sure it reaches stderr as one line even when the application
    never configured ``logging`` (the ``ragtrail`` logger only has a NullHandler): it is
    written there directly unless one of the logger's handlers writes it to stderr
    already. For what a user must not miss (capture is off); callers say it once.
    Never raises.
    """
    try:
        text = " ".join((msg % args if args else msg).split())  # one line
        with contextlib.suppress(Exception):  # an application's handler may raise
            logger.log(level, "%s", text, stacklevel=2)
        if not _reaches_stderr(logger, level):
            print(f"ragtrail: {logging.getLevelName(level).lower()}: {text}", file=sys.stderr,
                  flush=True)
    except Exception:  # stderr closed, or None (pythonw): nothing else to try
        pass


def _reaches_stderr(logger: logging.Logger, level: int) -> bool:
    """True when a handler of ``logger`` (or of the loggers it propagates to) writes a
    record of ``level`` to stderr."""
    if not logger.isEnabledFor(level):
        return False
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if (level >= handler.level and isinstance(handler, logging.StreamHandler)
                    and handler.stream in (sys.stderr, sys.__stderr__)):
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def get_logger(area: str) -> logging.Logger:
    """The logger ``ragtrail.<area>``."""
    return logging.getLogger(f"ragtrail.{area}")


class RateLimitedLog:
    """Logs each ``key`` at most once per ``interval_s``, and says how many it held back.

    The one throttle for repeated warnings (capture, redaction, the writer's threads):
    thread-safe, and never raising (a plain ``logging.Logger`` is wrapped in
    :class:`SafeLogger`). The record names the caller's file and line.
    """

    def __init__(self, logger: logging.Logger | SafeLogger, interval_s: float = 60.0) -> None:
        self._logger = logger if isinstance(logger, SafeLogger) else SafeLogger(logger.name)
        self._interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = fork_safe_lock(self)

    def log(self, level: int, key: str, msg: str, *args: object,
            exc_info: BaseException | bool | None = None, _depth: int = 1) -> bool:
        """Log ``msg`` at ``level`` unless ``key`` was logged less than an interval ago;
        True when it was logged."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            msg += " (%d similar messages held back)"
            args = (*args, held)
        self._logger.log(level, msg, *args, exc_info=exc_info, stacklevel=1 + _depth)
        return True

    def warning(self, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, key, msg, *args, exc_info=exc_info, _depth=2)
