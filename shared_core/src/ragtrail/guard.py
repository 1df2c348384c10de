"""``guarded``: a failing extractor loses one field, never the record.

Adapters wrap every small function that reads framework data with this decorator, or
declare, per framework event kind, one tuple of named extractors that :func:`extract`
runs, each through the same guard.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeAlias, TypeVar, overload

from ._forksafe import fork_safe_lock
from ._log import RateLimitedLog, get_logger

__all__ = ["ErrorCounter", "Extractor", "error_counter", "extract", "guarded", "report_failure"]

T = TypeVar("T")
D = TypeVar("D")
P = ParamSpec("P")
E = TypeVar("E")
#: A named extractor: reads some fields off one framework event (``None``: nothing).
Extractor: TypeAlias = Callable[[E], Mapping[str, Any] | None]
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


def extract(extractors: Iterable[Extractor[E]], event: E) -> dict[str, Any]:
    """The fields ``extractors`` read off ``event``, merged in order.

    Each extractor runs through the guard: one that raises loses its own fields only
    (the failure is counted under its name and logged, rate-limited, as for
    :func:`guarded`). None values are left out; a mapping given by two extractors (the
    provider specifics) is merged key by key, the later one winning, as
    ``Recorder.update_llm`` merges groups.
    """
    found: dict[str, Any] = {}
    for extractor in extractors:
        try:
            part = extractor(event)
        except Exception as exc:
            where = _name_of(extractor)
            report_failure(where, "ragtrail: %s failed: %s: %s", where, type(exc).__name__, exc)
            continue
        if not part:
            continue
        for key, value in part.items():
            if value is None:
                continue
            if key in found and isinstance(value, Mapping):
                earlier = found[key]
                if isinstance(earlier, Mapping):
                    value = {**earlier, **value}
            found[key] = value
    return found


def _name_of(extractor: Callable[..., Any]) -> str:
    """``module.qualname`` of an extractor (a partial or a callable object has none)."""
    module = getattr(extractor, "__module__", None) or "?"
    name = getattr(extractor, "__qualname__", None) or type(extractor).__qualname__
    return f"{module}.{name}"
