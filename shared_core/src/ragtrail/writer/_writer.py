"""BackgroundWriter: the Sink that stores records from one background thread."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from .._log import SafeLogger
from ..schemas.record import CapturedRun
from ..sink import LightRecord, Store
from . import _lifecycle
from ._config import WriterConfig
from ._deadletter import DeadLetterFile
from ._ledger import Ledger
from ._loop import WriterLoop
from ._seam import StoreSeam
from ._stats import DropReason, WriterStats

__all__ = ["BackgroundWriter"]

logger = SafeLogger("ragtrail.writer")

# Size guess for a record whose Recorder did not measure it (approx_bytes == 0): a run
# with an LLM call is a few KB, each document adds its text. Never serialized here.
_BASE_RECORD_BYTES = 1536
_LLM_BYTES = 1024
_DOCUMENT_BYTES = 1024


class BackgroundWriter:
    """Stores offered records in batches from one daemon thread; never blocks the caller.

    ``offer`` only takes a lock and appends to a bounded queue. The thread writes
    batches through the store with retries (transient errors), isolates poison records
    into a dead-letter file (permanent errors), spills to a size-capped disk spool while
    the store is unavailable and the queue fills, and replays the spool in order. At
    interpreter exit the writer is closed within ``shutdown_timeout_s``; after ``fork``
    the child gets a fresh, empty writer and a store of its own (from the factory).

    ``store_factory`` is a callable building a Store (called on the writer thread,
    again in a forked child; the writer closes what it built), or a Store, which stays
    the caller's to close (a forked child calls its ``reset_after_fork()`` if it
    declares ``fork_reset``). What a :class:`~ragtrail.sink.CapableStore` declares
    (:class:`~ragtrail.sink.StoreCapabilities`) is read once, here for a Store (a
    declaration that is not a StoreCapabilities raises ``TypeError``), when built for a
    factory. ``name`` labels the threads and keys the default spool directory (hashed,
    see :func:`default_spool_dir`): pass the database URL.
    """

    def __init__(self, store_factory: Store | Callable[[], Store],
                 config: WriterConfig | None = None, *, name: str = "default") -> None:
        self._config = config if config is not None else WriterConfig()
        self._name = name
        self._seam = StoreSeam(store_factory)  # checks what the store declares
        self._spool_dir = self._config.resolved_spool_dir(name)
        self._dead_letters = DeadLetterFile(self._config.resolved_dead_letter_path(name),
                                            max_bytes=self._config.dead_letter_max_bytes,
                                            writer_name=name)
        self._close_lock = threading.Lock()
        self._closing = False
        self._close_reported = False
        self._ledger = Ledger(self._config)
        self._loop = self._new_loop(self._seam)
        self._thread = self._start(self._loop)
        _lifecycle.track(self)

    @property
    def config(self) -> WriterConfig:
        """The limits this writer runs with."""
        return self._config

    # --- the Sink protocol -------------------------------------------------------------

    def offer(self, record: CapturedRun) -> bool:
        """Queue a record for storage. Never blocks on I/O, never raises.

        Returns False when the record is refused (closed, queue and spool full, too
        large, not a CapturedRun); every refusal is counted in ``stats().dropped``.
        """
        try:
            if not isinstance(record, CapturedRun):
                return self._ledger.refuse_invalid()
            size = record.approx_bytes or _estimate_bytes(record)
            return self._ledger.offer(record, size)
        except Exception:  # capture must never break the application
            return False

    def offer_light(self, record: LightRecord) -> bool:
        """Queue a light record (the Recorder's :class:`~ragtrail.capture.records.EndedRun`):
        its :class:`CapturedRun` is built on the writer's side as it leaves the queue, a
        failed build counted in ``stats().dropped["build_failed"]``. As :meth:`offer`
        otherwise: never blocks on I/O, never raises."""
        try:
            return self._ledger.offer(record, record.approx_bytes or _BASE_RECORD_BYTES)
        except Exception:  # capture must never break the application
            return False

    def flush(self, timeout_s: float = 10.0) -> bool:
        """True once every record offered before the call is stored (or dead-lettered,
        or dropped because it could not be built).

        False when ``timeout_s`` passes first; never blocks past it.
        """
        try:
            deadline = time.monotonic() + max(0.0, float(timeout_s))
            if threading.current_thread() is self._thread:
                return self._ledger.all_settled()  # waiting on ourselves would deadlock
            target = self._ledger.request_flush()
            return self._ledger.wait_settled(target, deadline)
        except Exception:  # never raise into the caller
            return False

    def close(self, timeout_s: float | None = None) -> bool:
        """Write what is pending within ``timeout_s`` (default ``shutdown_timeout_s``), then stop.

        What the store could not take by then is left on the spool for the next writer.
        Later offers are refused and counted. Returns True when everything offered was
        stored or dead-lettered. Safe to call again; never raises.
        """
        try:
            budget = self._config.shutdown_timeout_s if timeout_s is None else float(timeout_s)
            deadline = time.monotonic() + max(0.0, budget)
            with self._close_lock:
                if not self._closing:
                    self._closing = True
                    self._loop.begin_close(deadline)
                    _lifecycle.forget(self)
            if threading.current_thread() is not self._thread:
                self._thread.join(max(0.0, deadline - time.monotonic()))
            stats = self._ledger.snapshot()
            complete = (self._loop.finished.is_set() and stats.pending == 0
                        and not stats.dropped.get(DropReason.SHUTDOWN.value))
            if not complete and not self._close_reported:
                self._close_reported = True
                logger.warning(
                    "ragtrail writer %s closed with records not stored: %d queued, %d on the "
                    "spool at %s (replayed by the next writer), %d dropped %s; last error: %s",
                    self._name, stats.queue_events, stats.spool_events, self._spool_dir,
                    stats.dropped_total, stats.dropped, stats.last_error)
            return complete
        except Exception:  # never raise into the caller
            return False

    def stats(self) -> WriterStats:
        """A consistent snapshot of the counters (``.as_dict()`` for the plain form)."""
        return self._ledger.snapshot()

    def as_dict(self) -> dict[str, Any]:
        """``stats().as_dict()``."""
        return self.stats().as_dict()

    def __repr__(self) -> str:
        stats = self.stats()
        return (f"BackgroundWriter(name={self._name!r}, queued={stats.queue_events}, "
                f"spooled={stats.spool_events}, stored={stats.stored}, "
                f"closed={self._closing})")

    # --- internals ---------------------------------------------------------------------

    def _new_loop(self, seam: StoreSeam) -> WriterLoop:
        return WriterLoop(self._config, self._ledger, seam, spool_dir=self._spool_dir,
                          dead_letters=self._dead_letters)

    def _start(self, loop: WriterLoop) -> threading.Thread:
        thread = threading.Thread(target=loop.run, name=f"ragtrail-writer-{_label(self._name)}",
                                  daemon=True)
        thread.start()
        return thread

    def _after_fork_in_child(self) -> None:
        """Called in a forked child: drop the parent's queue, start an empty writer."""
        # The parent still owns and writes the records it had queued; the child starts
        # from zero with its own locks, spool directory, store and thread.
        self._loop.abandon_in_child()
        self._close_lock = threading.Lock()
        self._ledger = Ledger(self._config)
        self._seam = self._seam.for_child()
        self._loop = self._new_loop(self._seam)
        if self._closing:
            self._ledger.close()
            self._ledger.finish()
            self._loop.finished.set()
            return
        self._thread = self._start(self._loop)


def _estimate_bytes(record: CapturedRun) -> int:
    size = _BASE_RECORD_BYTES + _DOCUMENT_BYTES * len(record.documents)
    return size + (_LLM_BYTES if record.llm is not None else 0)


def _label(name: str) -> str:
    """A thread-name label: the name if short and plain, else a hash (URLs hold secrets)."""
    if len(name) <= 32 and name.replace("-", "").replace("_", "").isalnum():
        return name
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
