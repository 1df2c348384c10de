"""Moving records between the queue and the disk spool.

A spill thread of its own moves the oldest queued records to the spool whenever the
queue passes its high-water mark, so memory stays bounded and the queue keeps draining
even while the writer thread sits inside a store call (a locked SQLite file holds it
for the whole busy timeout). Serialization happens here, never on the offering thread.

Order: records leave the queue's head only under ``head_lock`` (the writer thread
taking a batch, or a spill), so a spill that could not place everything puts the
rest back at the head before anyone else takes from it. Light records are built as
they leave it (:func:`~ragtrail.writer._build.built`).
"""

from __future__ import annotations

import logging
import math
import threading
import time

from .._log import RateLimitedLog, SafeLogger
from ..schemas.flat import flatten
from ..schemas.record import CapturedRun
from ._build import built, record_of
from ._config import WriterConfig
from ._droplog import DropLog
from ._ledger import Entry, Ledger
from ._spool import Spool
from ._stats import DropReason

__all__ = ["Spiller"]

logger = SafeLogger("ragtrail.writer")

_SPOOL_RETRY_S = 60.0  # after a disk error, how long the spool is left alone
# The spill thread also looks at the queue this often without a wake-up (a store call
# becomes "stalled" with time, not with offers).
_POLL_S = 0.25


class Spiller:
    """Owns the spool: spills overflow (own thread), puts failed batches in front, adopts."""

    def __init__(self, config: WriterConfig, ledger: Ledger, spool: Spool | None,
                 log: RateLimitedLog, *, drop_log: DropLog) -> None:
        self._config = config
        self._drop_log = drop_log
        self._ledger = ledger
        self.spool = spool
        self._log = log
        self.head_lock = threading.Lock()
        self._retry_at = -math.inf
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the spill thread -------------------------------------------------------------------

    def start(self, name: str) -> None:
        """Start the spill thread (nothing to do without a spool)."""
        if self.spool is None:
            return
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the spill thread; a chunk being written is finished first."""
        self._stop.set()
        self._ledger.wake_spiller()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        # This thread never waits on the store, so it also reports drops on time
        # while the writer thread sits in a long store call.
        while not self._stop.is_set():
            try:
                self._drop_log.maybe_log()
                self.spill()
            except Exception as exc:  # the spill thread must not die
                self._ledger.note_error(exc)
                self._log.log(logging.ERROR, "spill", "spill error: %s", exc, exc_info=exc)
            # With the spool full, offers would wake it for nothing: poll instead.
            self._ledger.wait_spill(_POLL_S, rearm=not self._ledger.spool_full)

    # --- moving records -------------------------------------------------------------------

    def take(self) -> list[Entry]:
        """The writer thread's next batch from the queue's head, built."""
        with self.head_lock:
            batch = self._ledger.take_batch()
        return built(batch, self._ledger, self._log) if batch else batch

    def give_back(self, batch: list[Entry]) -> None:
        """Put a batch taken with :meth:`take` back at the queue's head, unwritten."""
        if batch:
            with self.head_lock:
                self._ledger.push_front(batch)

    def spill(self, *, everything: bool = False) -> None:
        """Spool the oldest queued records while the queue is over high water (or all).

        Over high water means the store is not keeping up: down, stuck in a call, or
        slower than the load. Records then wait on disk rather than in memory, and are
        refused only once the spool is full too.
        """
        while self.writable() and (everything or self._ledger.over_high_water()):
            with self.head_lock:
                batch = self._ledger.pop_head(self._config.batch_max_events)
                if not batch:
                    return
                batch = built(batch, self._ledger, self._log)
                if not batch:
                    continue
                accepted = self._append(batch)
                if accepted < len(batch):
                    self._ledger.push_front(batch[accepted:])
                    self._ledger.spool_full = self.writable()
                    return
            self._ledger.spool_full = False

    def prepend(self, batch: list[Entry]) -> bool:
        """Put a batch whose retries ran out in front of the spool (it is older)."""
        if self.spool is None or not self.writable():
            return False
        lines = _serialize(batch)
        if lines is None:
            return False
        try:
            done = self.spool.prepend(lines)
        except Exception as exc:  # a full disk, or anything odd: the batch stays in memory
            self._failed(exc)
            return False
        if done:
            self._ledger.settle_spilled(batch)
            self._ledger.sync_spool_bytes(self.spool.bytes)
        return done

    def append(self, batch: list[Entry]) -> list[Entry]:
        """Put a failed batch at the end of the spool (it is newer than what is there).

        Returns what did not fit.
        """
        with self.head_lock:
            return batch[self._append(batch):] if batch else []

    def keep_what_is_left(self, carry: list[Entry]) -> None:
        """At the end: spool what is still in memory; what does not fit is dropped, counted."""
        if carry and not self.prepend(carry):
            self._ledger.settle_dropped(carry, DropReason.SHUTDOWN)
        with self.head_lock:
            while batch := self._ledger.pop_head(self._config.batch_max_events):
                batch = built(batch, self._ledger, self._log)
                accepted = self._append(batch) if batch else 0
                if accepted < len(batch):
                    self._ledger.settle_dropped(batch[accepted:], DropReason.SHUTDOWN)

    def _append(self, batch: list[Entry]) -> int:
        if self.spool is None or not self.writable():
            return 0
        if self.spool.bytes + batch[0].size > self.spool.max_bytes:
            return 0  # full: do not serialize what cannot be written
        lines = _serialize(batch)
        if lines is None:
            return 0
        try:
            accepted = self.spool.append(lines)
        except Exception as exc:  # a full disk, or anything odd: the batch stays in memory
            self._failed(exc)
            return 0
        self._ledger.settle_spilled(batch[:accepted])
        self._ledger.sync_spool_bytes(self.spool.bytes)
        return accepted

    def writable(self) -> bool:
        """True when there is a spool and no recent disk error."""
        return self.spool is not None and time.monotonic() >= self._retry_at

    def _failed(self, error: Exception) -> None:
        """Disk trouble: records wait in memory (and may be refused) until a retry later."""
        self._log.log(logging.ERROR, "spool", "spool at %s failed (%s); records wait in memory "
                      "only for the next %.0f s", self.spool.root if self.spool else "?",
                      error, _SPOOL_RETRY_S)
        self._ledger.note_error(error)
        self._retry_at = time.monotonic() + _SPOOL_RETRY_S

    # --- the spool's other uses ---------------------------------------------------------------

    @property
    def has_data(self) -> bool:
        """True while the spool holds records to replay."""
        return self.spool is not None and self.spool.has_data

    def scan_orphans(self) -> None:
        """Adopt spools of dead writers in the same directory."""
        if self.spool is None:
            return
        try:
            found = self.spool.adopt_orphans()
        except OSError as exc:
            self._log.log(logging.WARNING, "scan", "cannot scan spool %s: %s",
                          self.spool.root, exc)
            return
        if found:
            self._ledger.add_recovered(found)
            self._ledger.sync_spool_bytes(self.spool.bytes)

    def close(self) -> None:
        """Release the spool's files and locks."""
        if self.spool is not None:
            self.spool.close()


def _serialize(batch: list[Entry]) -> list[bytes] | None:
    """Spool lines for a batch, or None if some record cannot be serialized at all."""
    try:
        return [b"%d %s\n" % (entry.seq or 0, _record_json(record_of(entry)))
                for entry in batch]
    except Exception as exc:  # such a record waits in memory for the store
        logger.error("cannot serialize a record for the spool: %s", exc)
        return None


def _record_json(record: CapturedRun) -> bytes:
    """A record's spool JSON: its flat rows (a SQL store inserts them as they are when
    they are replayed), or the plain JSON of a record a store could not take anyway."""
    try:
        return flatten(record).to_json()
    except Exception:  # the store will refuse it too; the spool keeps what there is
        return record.model_dump_json(fallback=repr).encode("utf-8", "surrogatepass")
