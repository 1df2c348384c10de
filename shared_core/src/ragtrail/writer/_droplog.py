"""The writer's drop warning, at most once per interval with the counts since the last.

(Other repeated warnings go through the one :class:`ragtrail._log.RateLimitedLog`.)"""

from __future__ import annotations

import math
import threading
import time

from .._log import SafeLogger
from ._ledger import Ledger

__all__ = ["DropLog"]

logger = SafeLogger("ragtrail.writer")


class DropLog:
    """The drop warning: at most one per ``interval_s``, with counts since the last one.

    Called from the writer and the spill threads; the offering threads only count.
    """

    def __init__(self, ledger: Ledger, interval_s: float) -> None:
        self._ledger = ledger
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._logged_total = 0
        self._last_at = -math.inf

    def maybe_log(self) -> None:
        """Log new drops if the interval since the last warning has passed."""
        with self._lock:
            total = self._ledger.dropped_total()
            now = time.monotonic()
            if total == self._logged_total or now - self._last_at < self._interval_s:
                return
            stats = self._ledger.snapshot()
            logger.warning("dropped %d records in the last %s (total %d, by reason %s); "
                           "queue %d records / %d bytes, spool %d records / %d bytes",
                           total - self._logged_total,
                           "interval" if math.isfinite(self._last_at) else "run",
                           total, dict(stats.dropped), stats.queue_events, stats.queue_bytes,
                           stats.spool_events, stats.spool_bytes)
            self._logged_total = total
            self._last_at = now
