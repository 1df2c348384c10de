"""``guarded``: a failing extractor loses one field, never the record.

Adapters wrap every small function that reads framework data with this decorator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from ._forksafe import fork_safe_lock
from ._log import RateLimitedLog, get_logger

__all__ = ["ErrorCounter", "error_counter", "guarded", "report_failure"]

T = TypeVar("T")
D = TypeVar("D")
P = ParamSpec("P")
_log = RateLimitedLog(get_logger("capture"), interval_s=60.0)


class ErrorCounter:
    """Thread-safe counts of internal errors by place, for ``Trail.stats()``."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = fork_safe_lock(self)

    def add(self, where: str) -> None:
        """Count one error at ``where``."""
        with self._lock:
            self._counts[where] = self._counts.get(where, 0) + 1

    def snapshot(self) -> dict[str, int]:
        """A copy of the counts."""
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        """All errors counted."""
        with self._lock:
            return sum(self._counts.values())


#: Process-wide counter of errors swallowed by guarded functions.
error_counter = ErrorCounter()


def report_failure(where: str, message: str, *args: object) -> None:
    """Count one internal error at ``where`` and log ``message`` (rate-limited per place).

    Never raises: near the recursion limit even reporting fails (RecursionError again),
    and the application must not see that either.
    """
    try:
        error_counter.add(where)
        _log.warning(where, message, *args)
    except Exception:
        pass  # nothing left to report with


@overload
def guarded(func: Callable[P, T]) -> Callable[P, T | None]: ...
@overload
def guarded(*, default: D) -> Callable[[Callable[P, T]], Callable[P, T | D]]: ...


def guarded(func: Callable[..., Any] | None = None, *, default: Any = None) -> Any:
    """Run ``func``; on any exception log it (rate-limited), count it, return ``default``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        where = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                report_failure(where, "ragtrail: %s failed: %s: %s", where, type(exc).__name__,
                               exc)
                return default

        return inner

    return wrap(func) if func is not None else wrap
