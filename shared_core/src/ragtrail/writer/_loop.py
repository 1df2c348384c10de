"""The writer loop: one thread takes batches from the queue or the spool and delivers
them through the layers around the store (OpenTelemetry's BatchProcessor, with
durability): :class:`~ragtrail.writer._retry.RetryLayer` (retries, dead letters),
:class:`~ragtrail.writer._spiller.Spiller` (spill to the disk spool),
:func:`~ragtrail.writer._replay.replay_spool`, :class:`~ragtrail.writer._prefetch.Prefetch`
(the next batch taken while one is written, for a store that declares it), all
settling in one :class:`~ragtrail.writer._ledger.Ledger`.

Records are written in offer order while the store keeps up; while it fails, the spool
(the oldest records) is tried first. The spool replays in the order records entered
it, and once the store is back, in the time fresh records leave free: a due batch in
memory goes first, so a backlog never pushes live traffic through the disk. Records
can therefore be stored out of offer order around an outage; ``flush`` tracks each.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path

from .._log import RateLimitedLog, SafeLogger
from ..sink import PreparedBatch
from ._build import record_of
from ._config import WriterConfig
from ._deadletter import DeadLetterFile
from ._droplog import DropLog
from ._ledger import Entry, Ledger
from ._prefetch import Prefetch
from ._replay import replay_spool
from ._retry import Outcome, RetryLayer
from ._seam import Batch, StoreSeam
from ._spiller import Spiller
from ._spool import Spool, SpoolRead

__all__ = ["WriterLoop"]

logger = SafeLogger("ragtrail.writer")

_PAUSE_SLICE_S = 0.25  # longest sleep between two looks at the queue while paused
_ORPHAN_SCAN_INTERVAL_S = 60.0  # how often an idle writer looks for dead writers' spools
_ERROR_BACKOFF_S = 0.5  # after an unexpected error in the loop itself


class WriterLoop:
    """State and loop of one writer thread. Only that thread calls its private methods."""

    def __init__(self, config: WriterConfig, ledger: Ledger, seam: StoreSeam, *,
                 spool_dir: Path, dead_letters: DeadLetterFile) -> None:
        self._config = config
        self._ledger = ledger
        self._log = RateLimitedLog(logger, config.drop_log_interval_s)
        self._drop_log = DropLog(ledger, config.drop_log_interval_s)
        spool = None
        if config.spool_enabled:
            spool = Spool(spool_dir, max_bytes=config.spool_max_bytes,
                          segment_max_bytes=config.spool_segment_max_bytes)
        self._seam = seam
        self._retry = RetryLayer(config, ledger, seam, pause=self._pause,
                                    give_up=self._past_deadline, dead_letters=dead_letters,
                                    log=self._log)
        self._spiller = Spiller(config, ledger, spool, self._log, drop_log=self._drop_log)
        # While a batch is written, the next is taken (and prepared) meanwhile.
        self._prefetch = Prefetch(config, ledger, seam, self._spiller)
        self._carry: list[Entry] = []  # older than the spool: failed, could not be spooled
        self._cached_read: SpoolRead | None = None
        self._close_deadline: float | None = None
        self._last_scan = -math.inf
        self.finished = threading.Event()

    # --- called from other threads -------------------------------------------------------

    def begin_close(self, deadline: float) -> None:
        """Drain until the monotonic ``deadline``, then stop."""
        self._close_deadline = deadline
        self._ledger.close()

    def abandon_in_child(self) -> None:
        """In a forked child: this loop's threads do not exist here; release its files."""
        if self._spiller.spool is not None:
            self._spiller.spool.abandon()

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        """Thread body: never raises, always finishes."""
        try:
            self._scan_orphans()
            self._spiller.start(f"{threading.current_thread().name}-spill")
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
        self._drop_log.maybe_log()
        if time.monotonic() - self._last_scan >= _ORPHAN_SCAN_INTERVAL_S:
            self._scan_orphans()
        if self._closing() and self._retry.store_down:
            self._spiller.spill(everything=True)  # safe on disk for the next writer
        interval_s = self._config.flush_interval_s
        if self._carry:  # failed before and could not be spooled: its last chance
            batch, self._carry = self._carry, []
            self._deliver_memory(batch, behind_spool=False, last_chance=True)
        elif self._prefetch.has_taken:
            self._deliver_taken()
        elif self._spiller.has_data and (self._retry.failing
                                         or not self._ledger.batch_due(interval_s)):
            # Once the store is back, the backlog replays in the time fresh records
            # leave free: live traffic goes straight from memory, not through the disk.
            self._deliver_spool()
        elif self._ledger.wait_until_due(interval_s):
            behind_spool = self._spiller.has_data
            batch = self._spiller.take()
            if batch:
                self._deliver_memory(batch, behind_spool=behind_spool)

    def _done(self) -> bool:
        if self._close_deadline is None:
            return False
        if self._past_deadline():
            return True
        if self._carry or self._prefetch.has_taken or self._ledger.queued_in_deque() > 0:
            return False
        # Store down at close: what waits is safe on disk; the next writer replays it.
        return not self._spiller.has_data or self._retry.store_down

    def _past_deadline(self) -> bool:
        deadline = self._close_deadline
        return deadline is not None and time.monotonic() >= deadline

    def _closing(self) -> bool:
        return self._close_deadline is not None

    def _pause(self, seconds: float) -> None:
        """Sleep between retries (cut short by the close deadline), reporting drops."""
        end = time.monotonic() + seconds
        while True:
            self._drop_log.maybe_log()
            if self._close_deadline is not None:
                end = min(end, self._close_deadline)
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            self._ledger.wait_work(min(remaining, _PAUSE_SLICE_S))

    # --- delivering ------------------------------------------------------------------------

    def _deliver_memory(self, batch: list[Entry], *, behind_spool: bool,
                        prepared: PreparedBatch | None = None,
                        last_chance: bool = False) -> None:
        """Write a batch from memory; what its retries could not write goes to the spool:
        at the end if the spool already held (older) records, else in front. The batch
        has left the queue: whatever fails here, every record of it is stored,
        dead-lettered, spooled or kept for the next step, never lost.
        """
        try:
            self._probe_wait()
            outcome = self._deliver(prepared or [record_of(entry) for entry in batch], None,
                                    last_chance=last_chance)
        except Exception as exc:  # a bug around the delivery: keep the whole batch
            self._ledger.note_error(exc)
            outcome = Outcome(0, 0, 0, exc)
        self._ledger.settle_memory(batch[:outcome.done], stored=outcome.stored,
                                   dead=outcome.dead)
        rest = batch[outcome.done:]
        if not rest:
            return
        try:
            if behind_spool:
                self._carry = self._spiller.append(rest)
            elif not self._spiller.prepend(rest):
                self._carry = rest
        except Exception as exc:  # the spool failed oddly: the records wait in memory
            self._ledger.note_error(exc)
            self._carry = rest

    def _deliver_spool(self) -> None:
        spool = self._spiller.spool
        if spool is None:  # pragma: no cover - guarded by _step
            return
        self._probe_wait()
        batch = self._cached_read or self._prefetch.read(spool) or spool.read(
            self._config.batch_max_events)
        self._cached_read = None
        if batch is not None:
            self._cached_read = replay_spool(spool, batch, self._deliver_spooled, self._ledger)

    def _deliver_spooled(self, batch: Batch, writing: SpoolRead) -> Outcome:
        # Spooled records had their retries: an unexpected error now dead-letters them.
        return self._deliver(batch, writing, last_chance=True)

    def _deliver(self, batch: Batch, writing: SpoolRead | None, *,
                 last_chance: bool) -> Outcome:
        """Deliver ``batch`` while the helper thread fetches what goes next (not while
        writes fail)."""
        written = None if self._retry.failing else self._prefetch.start(writing)
        try:
            return self._retry.deliver(batch, last_chance=last_chance)
        finally:
            if written is not None:
                written.set()

    def _deliver_taken(self) -> None:
        batch, prepared = self._prefetch.taken()
        if batch:
            self._deliver_memory(batch, behind_spool=self._spiller.has_data, prepared=prepared)

    def _probe_wait(self) -> None:
        """While the store is down, try one write per ``retry_max_backoff_s``."""
        if self._retry.store_down and not self._closing():
            self._pause(self._config.retry_max_backoff_s)

    def _scan_orphans(self) -> None:
        self._last_scan = time.monotonic()
        self._spiller.scan_orphans()

    # --- the end ------------------------------------------------------------

    def _finish(self) -> None:
        try:
            self._spiller.give_back(self._prefetch.stop())  # the queue keeps them
            self._spiller.stop()
            carry, self._carry = self._carry, []
            self._spiller.keep_what_is_left(carry)
            self._drop_log.maybe_log()
            self._spiller.close()
            self._seam.close()
        except Exception as exc:  # shutting down must not raise
            logger.error("writer shutdown error: %s", exc, exc_info=exc)
        finally:
            self.finished.set()
            self._ledger.finish()
