"""The process-wide default Trail that integrations use when given none.

Framework-free, so every adapter shares one: handlers made per request (one per user or
session) without a trail feed one Recorder and one writer, whichever framework made them.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ._log import report_to_stderr
from .errors import StoreUnavailableError

if TYPE_CHECKING:
    from .trail import Trail

__all__ = ["default_trail"]

_lock = threading.Lock()
_default: Trail | None = None
_failed = False  # the default Trail could not be opened
_logger = logging.getLogger("ragtrail")


def default_trail(*, logger: logging.Logger | None = None,
                  remedy: str = "give the integration a Trail") -> Trail:
    """The process-wide ``ragtrail.Trail()`` ($RAGTRAIL_URL, else ./ragtrail.db).

    Opened once per process, on first use. When that fails, the reason is said once (on
    stderr even where ``logging`` is not configured, and logged as an error on ``logger``,
    ending with ``remedy``) and the exception is raised; later calls raise
    ``StoreUnavailableError`` without trying again, so a database that does not answer
    costs its connect timeout once, not once per callback.

    Args:
        logger: where the one failure line is logged (an adapter passes its own, so the
            line names the integration); default the ``ragtrail`` logger.
        remedy: what the user can do about a failure, appended to that line.
    """
    global _default, _failed
    with _lock:
        if _default is not None:
            return _default
        if _failed:
            raise StoreUnavailableError("the default ragtrail Trail is unavailable "
                                        "(the reason was said once, on stderr)")
        from .trail import Trail

        try:
            _default = Trail()
        except Exception as exc:
            _failed = True
            report_to_stderr(logger or _logger, logging.ERROR, "the default ragtrail Trail "
                             "could not be opened (%s); capture is off for handlers without "
                             "a trail in this process: fix RAGTRAIL_URL or %s", exc, remedy)
            raise
        return _default
