"""The writer thread: takes batches from the queue or the spool and delivers them.

Records are written in offer order while the store keeps up; while it fails, the spool
(the oldest records) is tried first. The spool replays in the order records entered
it, and once the store is back, in the time fresh records leave free: a due batch in
memory goes first, so a backlog never pushes live traffic through the disk. Records
can therefore be stored out of offer order around an outage; ``flush`` tracks each.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .._log import RateLimitedLog, SafeLogger
from ..schemas.flat import AnyRecord
from ._config import WriterConfig
from ._deadletter import DeadLetterFile
from ._delivery import Delivery, Outcome, StoreSource
from ._ledger import Entry, Ledger
from ._ratelimit import DropLog
from ._spiller import Spiller
from ._spool import Spool, SpoolRead

__all__ = ["Engine"]

logger = SafeLogger("ragtrail.writer")

_PAUSE_SLICE_S = 0.25  # longest sleep between two looks at the queue while paused
_ORPHAN_SCAN_INTERVAL_S = 60.0  # how often an idle writer looks for dead writers' spools
_ERROR_BACKOFF_S = 0.5  # after an unexpected error in the loop itself
_TAKE_POLL_S = 0.005  # how often the helper looks whether fresh records fell due


class Engine:
    """State and loop of one writer thread. Only that thread calls its private methods."""

    def __init__(self, config: WriterConfig, ledger: Ledger, source: StoreSource, *,
                 spool_dir: Path, dead_letters: DeadLetterFile) -> None:
        self._config = config
        self._ledger = ledger
        self._source = source
        self._log = RateLimitedLog(logger, config.drop_log_interval_s)
        self._drop_log = DropLog(ledger, config.drop_log_interval_s)
        spool = None
        if config.spool_enabled:
            spool = Spool(spool_dir, max_bytes=config.spool_max_bytes,
                          segment_max_bytes=config.spool_segment_max_bytes)
        self._delivery = Delivery(config, ledger, source, pause=self._pause,
                                  give_up=self._past_deadline, dead_letters=dead_letters,
                                  log=self._log)
        self._spiller = Spiller(config, ledger, spool, self._log, drop_log=self._drop_log)
        self._carry: list[Entry] = []  # older than the spool: failed, could not be spooled
        self._cached_read: SpoolRead | None = None
        # Reads the next spooled batch while the current one is being stored.
        self._read_ahead = ThreadPoolExecutor(1, thread_name_prefix="ragtrail-read-ahead")
        self._next_read: Future[SpoolRead | None] | None = None
        # A due batch of fresh records taken and prepared meanwhile; delivered next.
        self._taken: Future[tuple[list[Entry], Sequence[AnyRecord] | None]] | None = None
        self._close_deadline: float | None = None
        self._last_scan = -math.inf
        self.finished = threading.Event()

    # --- called from other threads -------------------------------------------------------

    def begin_close(self, deadline: float) -> None:
        """Drain until the monotonic ``deadline``, then stop."""
        self._close_deadline = deadline
        self._ledger.close()

    def abandon_in_child(self) -> None:
        """In a forked child: this engine's threads do not exist here; release its files."""
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
        if self._closing() and self._delivery.store_down:
            self._spiller.spill(everything=True)  # safe on disk for the next writer
        interval_s = self._config.flush_interval_s
        if self._carry:  # failed before and could not be spooled: its last chance
            batch, self._carry = self._carry, []
            self._deliver_memory(batch, behind_spool=False, last_chance=True)
        elif self._taken is not None:
            self._deliver_taken()
        elif self._spiller.has_data and (self._delivery.failing
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
        if self._carry or self._taken is not None or self._ledger.queued_in_deque() > 0:
            return False
        # Store down at close: what waits is safe on disk; the next writer replays it.
        return not self._spiller.has_data or self._delivery.store_down

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
                        prepared: Sequence[AnyRecord] | None = None,
                        last_chance: bool = False) -> None:
        """Write a batch from memory; what its retries could not write goes to the spool:
        at the end if the spool already held (older) records, else in front. The batch
        has left the queue: whatever fails here, every record of it is stored,
        dead-lettered, spooled or kept for the next step, never lost.
        """
        try:
            self._probe_wait()
            outcome = self._deliver(prepared or [entry.record for entry in batch], None,
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
        batch = self._cached_read or self._ahead(spool) or spool.read(
            self._config.batch_max_events)
        self._cached_read = None
        if batch is None:
            return
        readable = [i for i, record in enumerate(batch.records) if record is not None]
        # Spooled records had their retries: an unexpected error now dead-letters them.
        outcome = self._deliver(batch.prepared or [r for r in batch.records if r is not None],
                                batch, last_chance=True)
        lines = len(batch.records) if outcome.done == len(readable) else readable[outcome.done]
        if lines == 0:
            self._cached_read = batch  # nothing consumed: reuse the parsed batch next time
            return
        corrupt = sum(1 for record in batch.records[:lines] if record is None)
        seqs = [seq for seq in batch.seqs[:lines] if seq is not None]
        if spool.commit(batch, lines):
            self._ledger.spool_full = False  # a segment was deleted: room again
        self._ledger.settle_spool(seqs, stored=outcome.stored, dead=outcome.dead,
                                  corrupt=corrupt)
        self._ledger.sync_spool_bytes(spool.bytes)

    def _deliver(self, records: Sequence[AnyRecord], writing: SpoolRead | None, *,
                 last_chance: bool) -> Outcome:
        """Deliver ``records`` while the helper thread prepares what goes next."""
        written = self._prepare_next(writing)
        try:
            return self._delivery.deliver(records, last_chance=last_chance)
        finally:
            if written is not None:
                written.set()

    def _prepare_next(self, writing: SpoolRead | None) -> threading.Event | None:
        """While a batch is written (``writing``, if it came from the spool), have the
        helper thread prepare what goes next: the spooled lines that follow, and the
        fresh records if they fall due meanwhile. Returns the event to set once the
        batch is written (None if nothing was started).

        Only for a store whose writes wait outside the interpreter (a server): the
        writer thread then leaves it free. Not for an in-process database such as
        SQLite, whose inserts hold the interpreter: measured slower there.
        """
        if self._delivery.failing or not self._source.waits_outside_python:
            return None
        spool = self._spiller.spool
        written: threading.Event | None = None
        with contextlib.suppress(RuntimeError):  # at interpreter exit: no new threads
            # After a spooled batch: the lines that follow it. After a fresh one: the
            # first unreplayed lines, unless a read ahead is waiting already.
            if spool is not None and (writing is not None or (
                    self._next_read is None and self._spiller.has_data)):
                self._next_read = self._read_ahead.submit(self._read_next, spool, writing)
            if self._taken is None:
                written = threading.Event()
                self._taken = self._read_ahead.submit(self._take_prepared, written)
        return written

    def _read_next(self, spool: Spool, after: SpoolRead | None) -> SpoolRead | None:
        """On the helper thread: the lines after ``after`` (or the first unreplayed
        ones), parsed and prepared by the store (encoded rows, COPY data), so the writer
        thread only sends them."""
        batch = spool.read(self._config.batch_max_events, after=after)
        if batch is not None:
            batch.prepared = self._source.prepare([r for r in batch.records if r is not None])
        return batch

    def _take_prepared(self, written: threading.Event
                       ) -> tuple[list[Entry], Sequence[AnyRecord] | None]:
        """On the helper thread, until the batch in flight is written: the batch of fresh
        records once it falls due, prepared by the store (nothing if none fell due)."""
        interval_s = self._config.flush_interval_s
        while not self._ledger.batch_due(interval_s):
            if written.wait(_TAKE_POLL_S):
                return [], None
        batch = self._spiller.take()
        if not batch:
            return batch, None
        return batch, self._source.prepare([entry.record for entry in batch])

    def _deliver_taken(self) -> None:
        future, self._taken = self._taken, None
        if future is None:  # pragma: no cover - guarded by _step
            return
        try:
            batch, prepared = future.result()
        except Exception as exc:  # take() raised before it took anything
            self._ledger.note_error(exc)
            return
        if batch:
            self._deliver_memory(batch, behind_spool=self._spiller.has_data, prepared=prepared)

    def _ahead(self, spool: Spool) -> SpoolRead | None:
        """The batch read ahead, if it still starts where the spool's unreplayed lines do
        (not after a partly stored batch, nor after records were put in front)."""
        future, self._next_read = self._next_read, None
        if future is None:
            return None
        try:
            batch = future.result()
        except Exception as exc:  # an unreadable disk shows again in the plain read
            self._ledger.note_error(exc)
            return None
        return batch if batch is not None and spool.is_next(batch) else None

    def _probe_wait(self) -> None:
        """While the store is down, try one write per ``retry_max_backoff_s``."""
        if self._delivery.store_down and not self._closing():
            self._pause(self._config.retry_max_backoff_s)

    def _scan_orphans(self) -> None:
        self._last_scan = time.monotonic()
        self._spiller.scan_orphans()

    # --- the end ------------------------------------------------------------

    def _finish(self) -> None:
        try:
            self._next_read = None
            self._read_ahead.shutdown(wait=True, cancel_futures=True)
            taken, self._taken = self._taken, None
            if taken is not None and not taken.cancelled() and taken.exception() is None:
                self._spiller.give_back(taken.result()[0])  # the queue keeps them
            self._spiller.stop()
            carry, self._carry = self._carry, []
            self._spiller.keep_what_is_left(carry)
            self._drop_log.maybe_log()
            self._spiller.close()
            self._source.close()
        except Exception as exc:  # shutting down must not raise
            logger.error("writer shutdown error: %s", exc, exc_info=exc)
        finally:
            self.finished.set()
            self._ledger.finish()
