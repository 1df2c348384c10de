"""The prefetch layer: while one batch is written, the next is taken and prepared.

Only for a store that declares ``prepare_ahead`` (its writes wait outside the
interpreter, on a server: see :mod:`ragtrail.store._pipeline` for PostgreSQL's): a
helper thread reads the spooled lines that follow the batch in flight, and takes the
batch of fresh records if it falls due meanwhile, and has the store prepare both, so
the writer thread only sends them. Nothing is prefetched while writes fail.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ..sink import PreparedBatch
from ._build import record_of
from ._config import WriterConfig
from ._ledger import Entry, Ledger
from ._seam import StoreSeam
from ._spiller import Spiller
from ._spool import Spool, SpoolRead

__all__ = ["Prefetch", "Taken"]

_TAKE_POLL_S = 0.005  # how often the helper looks whether fresh records fell due

#: A batch of fresh records taken from the queue, and what the store prepared of it.
Taken = tuple[list[Entry], PreparedBatch | None]


class Prefetch:
    """The helper thread and what it has fetched; used by the writer thread only."""

    def __init__(self, config: WriterConfig, ledger: Ledger, seam: StoreSeam,
                 spiller: Spiller) -> None:
        self._config = config
        self._ledger = ledger
        self._seam = seam
        self._spiller = spiller
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ragtrail-read-ahead")
        self._next_read: Future[SpoolRead | None] | None = None
        self._taken: Future[Taken] | None = None

    @property
    def has_taken(self) -> bool:
        """True when a batch of fresh records was taken ahead (it goes next)."""
        return self._taken is not None

    def start(self, writing: SpoolRead | None) -> threading.Event | None:
        """While a batch is written (``writing``, if it came from the spool), have the
        helper thread fetch what goes next: the spooled lines that follow, and the
        fresh records if they fall due meanwhile. Returns the event to set once the
        batch is written (None if nothing was started)."""
        if not self._seam.capabilities.prepare_ahead:
            return None
        spool = self._spiller.spool
        written: threading.Event | None = None
        with contextlib.suppress(RuntimeError):  # at interpreter exit: no new threads
            # After a spooled batch: the lines that follow it. After a fresh one: the
            # first unreplayed lines, unless a read ahead is waiting already.
            if spool is not None and (writing is not None or (
                    self._next_read is None and self._spiller.has_data)):
                self._next_read = self._pool.submit(self._read_next, spool, writing)
            if self._taken is None:
                written = threading.Event()
                self._taken = self._pool.submit(self._take_prepared, written)
        return written

    def read(self, spool: Spool) -> SpoolRead | None:
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

    def taken(self) -> Taken:
        """The batch of fresh records taken ahead (empty if none fell due)."""
        future, self._taken = self._taken, None
        if future is None:  # pragma: no cover - guarded by has_taken
            return [], None
        try:
            return future.result()
        except Exception as exc:  # take() raised before it took anything
            self._ledger.note_error(exc)
            return [], None

    def stop(self) -> list[Entry]:
        """Stop the helper thread; returns fresh records it took (still queued, counted)."""
        self._next_read = None
        self._pool.shutdown(wait=True, cancel_futures=True)
        taken, self._taken = self._taken, None
        if taken is not None and not taken.cancelled() and taken.exception() is None:
            return taken.result()[0]
        return []

    # --- on the helper thread ------------------------------------------------------------

    def _read_next(self, spool: Spool, after: SpoolRead | None) -> SpoolRead | None:
        """The lines after ``after`` (or the first unreplayed ones), parsed and prepared
        by the store, so the writer thread only sends them."""
        batch = spool.read(self._config.batch_max_events, after=after)
        if batch is not None:
            batch.prepared = self._seam.prepare([r for r in batch.records if r is not None])
        return batch

    def _take_prepared(self, written: threading.Event) -> Taken:
        """Until the batch in flight is written: the batch of fresh records once it falls
        due, prepared by the store (nothing if none fell due)."""
        interval_s = self._config.flush_interval_s
        while not self._ledger.batch_due(interval_s):
            if written.wait(_TAKE_POLL_S):
                return [], None
        batch = self._spiller.take()
        if not batch:
            return batch, None
        return batch, self._seam.prepare([record_of(entry) for entry in batch])
