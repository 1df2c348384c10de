"""The bounded queue and every counter, behind one lock.

Each change of a record's place (queued -> stored, queued -> spool, spool -> stored,
...) updates all the counters it touches under the same lock, so any snapshot
satisfies the accounting identity, not only quiet ones.

Every accepted record gets a sequence number; ``flush`` waits until every number up
to the last one given before the call is settled (stored or dead-lettered), tracked
as merged runs because after an outage fresh records may be written before older
ones still waiting on the spool.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import NamedTuple

from ..schemas.record import CapturedRun
from ..sink import LightRecord
from ._config import WriterConfig
from ._settled import SettledSeqs
from ._stats import DropReason, WriterStats

__all__ = ["Entry", "Ledger"]


class Entry(NamedTuple):
    """A queued record: its offer sequence number (None if from another process) and size.

    A light record (offered by ``offer_light``) is built when it leaves the queue, on
    the writer's side (see :func:`ragtrail.writer._build.built`).
    """

    seq: int | None
    record: CapturedRun | LightRecord
    size: int


class Ledger:
    """Queue, counters and wake-ups shared by the offering threads and the writer thread."""

    def __init__(self, config: WriterConfig) -> None:
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # wakes the writer thread
        self._settled_cv = threading.Condition(self._lock)  # wakes flush() callers
        self._spill = threading.Condition(self._lock)  # wakes the spill thread
        self._queue: deque[Entry] = deque()
        self._max_events = config.max_queue_events
        self._max_bytes = config.max_queue_bytes
        # A batch being written stays counted against the bounds but cannot be
        # spilled; at most a quarter of either bound, so the rest of the queue can
        # still pass high water and spill while the store is stuck on that batch.
        self._batch_events = max(1, min(config.batch_max_events, self._max_events // 4))
        self._batch_bytes = max(1, self._max_bytes // 4)
        fraction = config.spill_high_water_fraction
        self.high_water_events = max(1, int(self._max_events * fraction))
        self.high_water_bytes = max(1, int(self._max_bytes * fraction))
        self._events = 0
        self._bytes = 0
        self._seq = 0  # last sequence number given to an accepted record
        self._settled = SettledSeqs()  # offers stored or dead-lettered, by seq
        self._flush_seq = 0  # a flush() waits for this seq: write partial batches now
        self._nonempty_since = 0.0
        self._closed = False
        self._finished = False
        self._spill_armed = True
        self.spool_full = False  # set by the writer: decides the reason of a refusal
        self._offered = 0
        self._stored = 0
        self._spooled = 0
        self._replayed = 0
        self._recovered = 0
        self._retried = 0
        self._dead = 0
        self._dropped: dict[str, int] = {}
        self._spool_events = 0
        self._spool_bytes = 0
        self._last_error: str | None = None
        self._last_success_at: datetime | None = None

    # --- offering threads ------------------------------------------------------------

    def offer(self, record: CapturedRun | LightRecord, size: int) -> bool:
        """Queue a record, or count why it was refused. Never waits on anything but the lock."""
        with self._lock:
            self._offered += 1
            if self._closed:
                return self._refuse(DropReason.CLOSED)
            if size > self._max_bytes:
                return self._refuse(DropReason.TOO_LARGE)
            if self._events >= self._max_events or self._bytes + size > self._max_bytes:
                return self._refuse(
                    DropReason.SPOOL_FULL if self.spool_full else DropReason.QUEUE_FULL
                )
            self._seq += 1
            if not self._queue:
                self._nonempty_since = time.monotonic()
            self._queue.append(Entry(self._seq, record, size))
            self._events += 1
            self._bytes += size
            # Wake the writer for a full batch, the spiller when the queue crosses its
            # high water; not for every record.
            if len(self._queue) == self._batch_events:
                self._work.notify()
            if self._spill_armed and (self._events >= self.high_water_events
                                      or self._bytes >= self.high_water_bytes):
                self._spill_armed = False  # one wake-up per wait of the spill thread
                self._spill.notify()
            return True

    def refuse_invalid(self) -> bool:
        """Count an offer of something that is not a record."""
        with self._lock:
            self._offered += 1
            return self._refuse(DropReason.INVALID)

    def _refuse(self, reason: DropReason) -> bool:
        key = reason.value
        self._dropped[key] = self._dropped.get(key, 0) + 1
        return False

    def close(self) -> None:
        """Refuse later offers and wake the writer."""
        with self._lock:
            self._closed = True
            self._work.notify_all()
            self._spill.notify_all()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    # --- flush -----------------------------------------------------------------------

    def request_flush(self) -> int:
        """Ask the writer to write what is queued now; returns the seq to wait for."""
        with self._lock:
            target = self._seq
            if target > self._settled.prefix:
                self._flush_seq = max(self._flush_seq, target)
                self._work.notify_all()
            return target

    def wait_settled(self, target: int, deadline: float) -> bool:
        """Wait until every record up to ``target`` is settled, or the monotonic deadline."""
        with self._lock:
            while self._settled.prefix < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._finished:
                    return False
                self._settled_cv.wait(remaining)
            return True

    def finish(self) -> None:
        """The writer thread has ended: nothing more will settle."""
        with self._lock:
            self._finished = True
            self._settled_cv.notify_all()

    def all_settled(self) -> bool:
        """True when nothing offered is waiting in memory."""
        with self._lock:
            return self._settled.prefix >= self._seq

    # --- writer thread: taking work ----------------------------------------------------

    def batch_due(self, interval_s: float) -> bool:
        """True when a queued batch should be written now (see :meth:`wait_until_due`)."""
        with self._lock:
            return bool(self._queue) and self._due_at(interval_s) <= time.monotonic()

    def wait_until_due(self, interval_s: float) -> bool:
        """Wait until a batch is due: full, flushed, aged ``interval_s``, or closing.

        False when nothing is due within ``interval_s`` (the caller looks around and
        comes back).
        """
        waited = False
        with self._lock:
            while True:
                if self._queue:
                    due_at = self._due_at(interval_s)
                    if time.monotonic() >= due_at:
                        return True
                    self._work.wait(due_at - time.monotonic())
                elif self._closed or waited:
                    return False
                else:
                    waited = True
                    self._work.wait(interval_s)

    def _due_at(self, interval_s: float) -> float:
        """When the queued records are due (a time in the past means now)."""
        if (len(self._queue) >= self._batch_events or self._closed
                or self._flush_seq > self._settled.prefix):
            return -math.inf
        return self._nonempty_since + interval_s

    def wait_work(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s``; an offer crossing high water or a close wakes it."""
        with self._lock:
            self._work.wait(timeout_s)

    def wait_spill(self, timeout_s: float, *, rearm: bool) -> None:
        """The spill thread sleeps here until the queue passes high water (or timeout).

        ``rearm=False`` while the queue is over high water but the store is healthy:
        then offers do not wake it again and it only looks every ``timeout_s``.
        """
        with self._lock:
            if rearm:
                self._spill_armed = True
            self._spill.wait(timeout_s)

    def wake_spiller(self) -> None:
        """Wake the spill thread (to stop it)."""
        with self._lock:
            self._spill.notify_all()

    def take_batch(self) -> list[Entry]:
        """The writer's next batch: the oldest records, within the batch bounds."""
        with self._lock:
            return self._pop(self._batch_events, self._batch_bytes)

    def pop_head(self, max_events: int) -> list[Entry]:
        """Take up to ``max_events`` of the oldest queued records (they stay counted)."""
        with self._lock:
            return self._pop(max_events, self._max_bytes)

    def _pop(self, max_events: int, max_bytes: int) -> list[Entry]:
        batch: list[Entry] = []
        size = 0
        queue = self._queue
        while queue and len(batch) < max_events:
            if batch and size + queue[0].size > max_bytes:
                break
            entry = queue.popleft()
            size += entry.size
            batch.append(entry)
        if queue:
            self._nonempty_since = time.monotonic()
        return batch

    def push_front(self, entries: list[Entry]) -> None:
        """Give back records taken with :meth:`pop_head` that could not be spilled."""
        with self._lock:
            self._queue.extendleft(reversed(entries))

    def over_high_water(self) -> bool:
        """True when the queued records pass the spill threshold (records or bytes)."""
        with self._lock:
            return bool(self._queue) and (self._events >= self.high_water_events
                                          or self._bytes >= self.high_water_bytes)

    def queued_in_deque(self) -> int:
        """Records waiting in the queue (not the batch being written)."""
        with self._lock:
            return len(self._queue)

    # --- writer thread: settling ------------------------------------------------------

    def settle_memory(self, entries: Iterable[Entry], *, stored: int, dead: int) -> None:
        """In-memory records left the queue: ``stored`` of them stored, ``dead`` dead-lettered."""
        entries = list(entries)
        with self._lock:
            self._release(entries)
            self._stored += stored
            self._dead += dead
            self._success_if(stored)
            self._advance(entries)

    def settle_spilled(self, entries: list[Entry]) -> None:
        """In-memory records now live on the spool."""
        with self._lock:
            self._release(entries)
            self._spooled += len(entries)
            self._spool_events += len(entries)

    def settle_dropped(self, entries: list[Entry], reason: DropReason) -> None:
        """In-memory records given up (shutdown deadline with no room on the spool).

        They do not count as settled for ``flush``: it promises stored, not given up.
        """
        with self._lock:
            self._release(entries)
            key = reason.value
            self._dropped[key] = self._dropped.get(key, 0) + len(entries)

    def settle_unbuilt(self, entries: list[Entry], error: BaseException) -> None:
        """Light records whose record could not be built: dropped (``build_failed``).

        Settled for ``flush`` (nothing more will happen to them; a flush waiting for
        them would wait forever), and counted, never silent.
        """
        with self._lock:
            self._release(entries)
            key = DropReason.BUILD_FAILED.value
            self._dropped[key] = self._dropped.get(key, 0) + len(entries)
            self._last_error = _describe(error)
            self._advance(entries)

    def settle_spool(self, seqs: list[int], *, stored: int, dead: int, corrupt: int) -> None:
        """Records read back from the spool were stored, dead-lettered or found unreadable.

        ``seqs``: offer numbers of this writer's own lines among them (adopted lines
        from a dead process have none).
        """
        with self._lock:
            self._spool_events -= stored + dead + corrupt
            self._stored += stored
            self._replayed += stored
            self._dead += dead
            if corrupt:
                key = DropReason.SPOOL_CORRUPT.value
                self._dropped[key] = self._dropped.get(key, 0) + corrupt
            self._success_if(stored)
            self._mark_settled(seqs)

    def sync_spool_bytes(self, size: int) -> None:
        """The spool's size on disk changed (written, or a replayed segment deleted)."""
        with self._lock:
            self._spool_bytes = size

    def add_recovered(self, events: int) -> None:
        """A spool left by an earlier process was adopted."""
        with self._lock:
            self._recovered += events
            self._spool_events += events

    def note_retry(self, error: BaseException) -> None:
        """A transient failure that will be retried."""
        with self._lock:
            self._retried += 1
            self._last_error = _describe(error)

    def note_error(self, error: BaseException) -> None:
        """Remember the last error for stats."""
        with self._lock:
            self._last_error = _describe(error)

    def _release(self, entries: list[Entry]) -> None:
        self._events -= len(entries)
        self._bytes -= sum(e.size for e in entries)

    def _advance(self, entries: list[Entry]) -> None:
        self._mark_settled([e.seq for e in entries if e.seq is not None])

    def _mark_settled(self, seqs: list[int]) -> None:
        if seqs:
            self._settled.add(seqs)
            self._settled_cv.notify_all()

    def _success_if(self, stored: int) -> None:
        if stored:
            self._last_success_at = datetime.now(timezone.utc)

    def dropped_total(self) -> int:
        """All drops so far (for the rate-limited warning)."""
        with self._lock:
            return sum(self._dropped.values())

    def snapshot(self) -> WriterStats:
        """A consistent copy of every counter."""
        with self._lock:
            return WriterStats(
                queue_events=self._events, queue_bytes=self._bytes,
                spool_events=self._spool_events, spool_bytes=self._spool_bytes,
                offered=self._offered, stored=self._stored, spooled=self._spooled,
                replayed=self._replayed, recovered=self._recovered, retried=self._retried,
                dead_lettered=self._dead, dropped=dict(self._dropped),
                last_error=self._last_error, last_success_at=self._last_success_at,
            )


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 500 else text[:497] + "..."
