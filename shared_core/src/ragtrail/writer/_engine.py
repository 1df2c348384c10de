"""The writer thread: takes batches from the queue or the spool and delivers them.

Order is kept end to end: a batch that could not be written goes back in front of
everything (``carry``, or a segment prepended to the spool), the spool is read before
the queue, and spilling moves the oldest queued records to the end of the spool.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path

from ._config import WriterConfig
from ._deadletter import DeadLetterFile
from ._delivery import Delivery, StoreSource
from ._ledger import Entry, Ledger
from ._ratelimit import RateLimitedLog
from ._spool import Spool, SpoolRead
from ._stats import DropReason

__all__ = ["Engine"]

logger = logging.getLogger("ragtrail.writer")

_PAUSE_SLICE_S = 0.25  # longest sleep between two looks at the queue while paused
_ORPHAN_SCAN_INTERVAL_S = 60.0  # how often an idle writer looks for dead writers' spools
_ERROR_BACKOFF_S = 0.5  # after an unexpected error in the loop itself
_SPOOL_RETRY_S = 60.0  # after a disk error, how long the spool is left alone


class Engine:
    """State and loop of one writer thread. Only that thread calls its private methods."""

    def __init__(self, config: WriterConfig, ledger: Ledger, source: StoreSource, *,
                 spool_dir: Path, dead_letters: DeadLetterFile) -> None:
        self._config = config
        self._ledger = ledger
        self._source = source
        self._log = RateLimitedLog(logger, config.drop_log_interval_s)
        self._spool: Spool | None = None
        if config.spool_enabled:
            self._spool = Spool(spool_dir, max_bytes=config.spool_max_bytes,
                                segment_max_bytes=config.spool_segment_max_bytes)
        self._delivery = Delivery(config, ledger, source, pause=self._pause,
                                  give_up=self._past_deadline, dead_letters=dead_letters,
                                  log=self._log)
        self._carry: list[Entry] = []  # older than the spool: failed, could not be spooled
        self._cached_read: SpoolRead | None = None
        self._spool_retry_at = -math.inf
        self._close_deadline: float | None = None
        self._last_scan = -math.inf
        self._drops_logged = 0
        self._last_drop_log = -math.inf
        self.finished = threading.Event()

    # --- called from other threads -------------------------------------------------------

    def begin_close(self, deadline: float) -> None:
        """Drain until the monotonic ``deadline``, then stop."""
        self._close_deadline = deadline
        self._ledger.close()

    def abandon_in_child(self) -> None:
        """In a forked child: this engine's thread does not exist here; release its files."""
        if self._spool is not None:
            self._spool.abandon()

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        """Thread body: never raises, always finishes."""
        try:
            self._scan_orphans()
            while not self._done():
                try:
                    self._step()
                except Exception as exc:  # the writer thread must not die
                    self._ledger.note_error(exc)
                    self._log.log(logging.ERROR, "loop", "writer loop error: %s", exc,
                                  exc_info=exc)
                    self._pause(_ERROR_BACKOFF_S)
        finally:
            self._finish()

    def _step(self) -> None:
        self._housekeeping()
        if self._carry:
            batch, self._carry = self._carry, []
            self._deliver_memory(batch)
        elif self._spool is not None and self._spool.has_data:
            self._deliver_spool()
        else:
            batch = self._ledger.wait_for_batch(self._config.flush_interval_s)
            if batch:
                self._deliver_memory(batch)

    def _done(self) -> bool:
        if self._close_deadline is None:
            return False
        if self._past_deadline():
            return True
        in_memory = bool(self._carry) or self._ledger.queued_in_deque() > 0
        if in_memory:
            return False
        spool_waiting = self._spool is not None and self._spool.has_data
        # Store down at close: what waits is safe on disk; the next writer replays it.
        return not spool_waiting or self._delivery.store_down

    def _past_deadline(self) -> bool:
        deadline = self._close_deadline
        return deadline is not None and time.monotonic() >= deadline

    def _closing(self) -> bool:
        return self._close_deadline is not None

    def _housekeeping(self) -> None:
        self._log_drops()
        self._spill()
        if time.monotonic() - self._last_scan >= _ORPHAN_SCAN_INTERVAL_S:
            self._scan_orphans()

    def _pause(self, seconds: float) -> None:
        """Sleep between retries, still spilling overflow and reporting drops."""
        end = time.monotonic() + seconds
        while True:
            self._log_drops()
            self._spill()
            if self._close_deadline is not None:
                end = min(end, self._close_deadline)
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            self._ledger.wait_work(min(remaining, _PAUSE_SLICE_S))

    # --- delivering ------------------------------------------------------------------------

    def _deliver_memory(self, batch: list[Entry]) -> None:
        self._probe_wait()
        outcome = self._delivery.deliver([entry.record for entry in batch])
        self._ledger.settle_memory(batch[:outcome.done], stored=outcome.stored,
                                   dead=outcome.dead)
        rest = batch[outcome.done:]
        if rest and not self._prepend(rest):
            self._carry = rest

    def _deliver_spool(self) -> None:
        if self._spool is None:  # pragma: no cover - guarded by _step
            return
        self._probe_wait()
        batch = self._cached_read or self._spool.read(self._config.batch_max_events)
        self._cached_read = None
        if batch is None:
            return
        readable = [i for i, record in enumerate(batch.records) if record is not None]
        outcome = self._delivery.deliver([r for r in batch.records if r is not None])
        lines = len(batch.records) if outcome.done == len(readable) else readable[outcome.done]
        if lines == 0:
            self._cached_read = batch  # nothing consumed: reuse the parsed batch next time
            return
        corrupt = sum(1 for record in batch.records[:lines] if record is None)
        seqs = [seq for seq in batch.seqs[:lines] if seq is not None]
        if self._spool.commit(batch, lines):
            self._ledger.spool_full = False  # a segment was deleted: room again
        self._ledger.settle_spool(max(seqs, default=None), stored=outcome.stored,
                                  dead=outcome.dead, corrupt=corrupt)
        self._ledger.sync_spool_bytes(self._spool.bytes)

    def _probe_wait(self) -> None:
        """While the store is down, try one write per ``retry_max_backoff_s``."""
        if self._delivery.store_down and not self._closing():
            self._pause(self._config.retry_max_backoff_s)

    # --- spool -----------------------------------------------------------------------

    def _spill(self) -> None:
        """Move the oldest queued records to the spool while the queue is over high water.

        When closing with the store down, everything goes: the next writer replays it.
        """
        spill_all = self._closing() and self._delivery.store_down
        while self._spool_writable() and (spill_all or self._ledger.over_high_water()):
            batch = self._ledger.pop_head(self._config.batch_max_events)
            if not batch:
                return
            accepted = self._to_spool(batch)
            if accepted < len(batch):
                self._ledger.push_front(batch[accepted:])
                self._ledger.spool_full = self._spool_writable()
                return
            self._ledger.spool_full = False

    def _to_spool(self, batch: list[Entry]) -> int:
        """Append a batch to the spool; returns how many records (a prefix) it took."""
        if self._spool is None or not self._spool_writable():
            return 0
        lines = _serialize(batch)
        if lines is None:
            return 0
        try:
            accepted = self._spool.append(lines)
        except OSError as exc:
            self._spool_failed(exc)
            return 0
        self._ledger.settle_spilled(batch[:accepted])
        self._ledger.sync_spool_bytes(self._spool.bytes)
        return accepted

    def _prepend(self, batch: list[Entry]) -> bool:
        """Put a batch whose retries ran out back in front of the spool."""
        if self._spool is None or not self._spool_writable():
            return False
        lines = _serialize(batch)
        if lines is None:
            return False
        try:
            done = self._spool.prepend(lines)
        except OSError as exc:
            self._spool_failed(exc)
            return False
        if done:
            self._ledger.settle_spilled(batch)
            self._ledger.sync_spool_bytes(self._spool.bytes)
        return done

    def _spool_writable(self) -> bool:
        return self._spool is not None and time.monotonic() >= self._spool_retry_at

    def _spool_failed(self, error: OSError) -> None:
        """Disk trouble: records wait in memory (and may be refused) until a retry later."""
        self._log.log(logging.ERROR, "spool", "spool at %s failed (%s); records wait in memory "
                      "only for the next %.0f s", self._spool.root if self._spool else "?",
                      error, _SPOOL_RETRY_S)
        self._ledger.note_error(error)
        self._spool_retry_at = time.monotonic() + _SPOOL_RETRY_S

    def _scan_orphans(self) -> None:
        self._last_scan = time.monotonic()
        if self._spool is None:
            return
        try:
            found = self._spool.adopt_orphans()
        except OSError as exc:
            self._log.log(logging.WARNING, "scan", "cannot scan spool %s: %s",
                          self._spool.root, exc)
            return
        if found:
            self._ledger.add_recovered(found)
            self._ledger.sync_spool_bytes(self._spool.bytes)

    # --- reporting and the end ------------------------------------------------------------

    def _log_drops(self) -> None:
        """Warn about drops at most once per ``drop_log_interval_s``."""
        total = self._ledger.dropped_total()
        now = time.monotonic()
        due = now - self._last_drop_log >= self._config.drop_log_interval_s
        if total == self._drops_logged or not due:
            return
        stats = self._ledger.snapshot()
        logger.warning("dropped %d records in the last %s (total %d, by reason %s); queue %d "
                       "records / %d bytes, spool %d records / %d bytes",
                       total - self._drops_logged,
                       "interval" if math.isfinite(self._last_drop_log) else "run",
                       total, dict(stats.dropped), stats.queue_events, stats.queue_bytes,
                       stats.spool_events, stats.spool_bytes)
        self._drops_logged = total
        self._last_drop_log = now

    def _finish(self) -> None:
        try:
            self._keep_what_is_left()
            self._log_drops()
            if self._spool is not None:
                self._spool.close()
            self._source.close()
        except Exception as exc:  # shutting down must not raise
            logger.error("writer shutdown error: %s", exc, exc_info=exc)
        finally:
            self.finished.set()
            self._ledger.finish()

    def _keep_what_is_left(self) -> None:
        """At the close deadline: spool what is still in memory, count the rest as dropped."""
        carry, self._carry = self._carry, []
        if carry and not self._prepend(carry):
            self._ledger.settle_dropped(carry, DropReason.SHUTDOWN)
        while batch := self._ledger.pop_head(self._config.batch_max_events):
            accepted = self._to_spool(batch)
            if accepted < len(batch):
                self._ledger.settle_dropped(batch[accepted:], DropReason.SHUTDOWN)


def _serialize(batch: list[Entry]) -> list[bytes] | None:
    """Spool lines for a batch, or None if some record cannot be serialized at all."""
    try:
        return [b"%d %s\n" % (entry.seq or 0, entry.record.model_dump_json(fallback=repr)
                              .encode("utf-8", "surrogatepass"))
                for entry in batch]
    except Exception as exc:  # such a record waits in memory for the store
        logger.error("cannot serialize a record for the spool: %s", exc)
        return None
