"""Reading the spool ahead: the next batch is parsed and encoded while this one is written.

While the writer thread waits for the database (PostgreSQL works on a batch in its own
process; the driver releases the GIL while it waits), a helper thread reads the next
spool batch and has the store encode it, so replaying a backlog costs the writer
thread little more than the database's own time.

A batch read ahead is used only if it is still the spool's head when its turn comes:
a partly stored batch, a failed batch put in front of the spool or an adopted orphan
spool makes it stale, and it is dropped (the lines are read again, nothing is lost
or repeated). Failures here only cost the speed-up: the writer then reads as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..schemas.record import AnyRecord
from ._spool import Spool, SpoolRead

__all__ = ["ReadAhead"]

logger = logging.getLogger("ragtrail.writer")

#: The store's ``prepare_batch``, or None for a store without one.
Prepare = Callable[[Sequence[AnyRecord]], Any] | None


class ReadAhead:
    """At most one spool batch read (and prepared) ahead on a helper thread."""

    def __init__(self, spool: Spool, max_events: int) -> None:
        self._spool = spool
        self._max_events = max_events
        self._executor: ThreadPoolExecutor | None = None
        self._after: SpoolRead | None = None
        self._future: Future[SpoolRead | None] | None = None

    def start(self, after: SpoolRead, prepare: Prepare) -> None:
        """Begin reading the batch that follows ``after`` (unless that is under way)."""
        if self._after is after and self._future is not None:
            return
        self.discard()
        try:
            if self._executor is None:  # named after the writer thread that starts it
                name = f"{threading.current_thread().name}-readahead"
                self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
            self._future = self._executor.submit(self._read, after, prepare)
        except RuntimeError:  # interpreter shutting down: read in turn instead
            return
        self._after = after

    def take(self) -> SpoolRead | None:
        """The batch read ahead, if it is the spool's head now; else None."""
        future, self._future, self._after = self._future, None, None
        if future is None:
            return None
        try:
            batch = future.result()
        except Exception as exc:  # the writer reads the lines again itself
            logger.debug("reading the spool ahead failed: %s", exc, exc_info=exc)
            return None
        if batch is None or not self._spool.is_head(batch):
            return None
        return batch

    def discard(self) -> None:
        """Forget the batch read ahead (it is stale, or the writer is stopping)."""
        if self._future is not None:
            self._future.cancel()
        self._future = self._after = None

    def close(self) -> None:
        """Stop the helper thread without waiting for it."""
        self.discard()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _read(self, after: SpoolRead, prepare: Prepare) -> SpoolRead | None:
        batch = self._spool.read(self._max_events, after=after)
        if batch is not None and prepare is not None:
            try:
                batch.prepared = prepare([r for r in batch.records if r is not None])
            except Exception as exc:  # e.g. a poison record: written the usual way
                logger.debug("preparing a spool batch ahead failed: %s", exc)
        return batch
