"""Live export: what the writer has stored goes on to exporters, off every hot path.

:class:`ExportingStore` wraps the store the writer writes through: after a batch is
stored (and only then) it hands the batch to each exporter's :meth:`LiveExporter.offer`,
which appends to a bounded queue and returns at once. Each exporter sends from its own
thread with retries; a full queue drops (and counts) what does not fit. Nothing here
can slow or fail a write: a stored record stays stored, and ``ragtrail export`` can
send it again later. This module imports no OpenTelemetry code (the ``otel`` extra is
optional).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from tenacity import (
    RetryError,
    Retrying,
    retry_if_result,
    stop_after_attempt,
    stop_any,
    stop_when_event_set,
)

from .._backoff import exponential_backoff
from ..sink import PreparedBatch, StoreCapabilities, capabilities_of

__all__ = ["ExportingStore", "LiveExporter"]

logger = logging.getLogger("ragtrail.export")


class LiveExporter:
    """Base of the exporters a :class:`~ragtrail.Trail` feeds (``exporters=[...]``).

    Subclasses implement :meth:`send` (one batch of stored records; True when the
    receiver took it) and may implement :meth:`shutdown`. The queue holds at most
    ``max_queue_records`` records; a batch that fails is retried ``retry_attempts``
    times with exponential backoff, then dropped and counted (it is still stored).
    """

    #: Label used in ``Trail.stats()["exporters"]``.
    kind = "exporter"

    def __init__(self, *, max_queue_records: int = 10_000, batch_size: int = 512,
                 retry_attempts: int = 4, retry_initial_backoff_s: float = 0.5,
                 retry_max_backoff_s: float = 10.0, shutdown_timeout_s: float = 2.0) -> None:
        if max_queue_records < 1 or batch_size < 1 or retry_attempts < 1:
            from ..errors import ConfigError

            raise ConfigError("max_queue_records, batch_size and retry_attempts must be >= 1")
        self.max_queue_records = max_queue_records
        self.batch_size = batch_size
        self.retry_attempts = retry_attempts
        self.retry_initial_backoff_s = retry_initial_backoff_s
        self.retry_max_backoff_s = retry_max_backoff_s
        self.shutdown_timeout_s = shutdown_timeout_s
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Any] = deque()
        self._in_flight = 0
        self._counts: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._last_error: str | None = None
        self._closing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # --- called by the writer (any thread): never blocks on I/O, never raises ----------

    def offer(self, records: Sequence[Any]) -> None:
        """Queue stored records for export; what does not fit is dropped and counted."""
        try:
            with self._cond:
                self._ensure_thread()
                count = len(records)
                self._counts["offered"] += count
                if self._closing:
                    self._dropped["closed"] += count
                    return
                room = self.max_queue_records - len(self._queue)
                if room < count:
                    self._dropped["queue_full"] += count - max(room, 0)
                    records = records[:max(room, 0)]
                self._queue.extend(records)
                self._cond.notify()
        except Exception:  # export must never break storage
            pass

    # --- lifecycle ---------------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> bool:
        """True once everything offered so far was sent or dropped; False at the deadline."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout_s: float | None = None) -> bool:
        """Send what is queued within ``timeout_s`` (default ``shutdown_timeout_s``), stop.

        What is left then is dropped and counted as ``shutdown``. Never raises.
        """
        try:
            budget = self.shutdown_timeout_s if timeout_s is None else timeout_s
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            done = self.flush(budget)
            self._stop.set()
            with self._cond:
                if self._queue:
                    self._dropped["shutdown"] += len(self._queue)
                    self._queue.clear()
                self._cond.notify_all()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(0.5)
            try:
                self.shutdown()
            except Exception as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
            return done
        except Exception:
            return False

    def stats(self) -> dict[str, Any]:
        """offered, sent, retried, failed batches, dropped by reason, queued, last error."""
        with self._cond:
            dropped = dict(self._dropped)
            return {
                "exporter": self.kind,
                "target": self.describe(),
                "offered": self._counts["offered"],
                "sent": self._counts["sent"],
                "retried": self._counts["retried"],
                "failed_batches": self._counts["failed_batches"],
                "dropped": dropped,
                "dropped_total": sum(dropped.values()),
                "queued": len(self._queue) + self._in_flight,
                "last_error": self._last_error,
            }

    # --- for subclasses ----------------------------------------------------------------

    def describe(self) -> str:
        """Where this exporter sends (no secrets)."""
        return self.kind

    def send(self, records: list[Any]) -> bool:  # pragma: no cover - abstract
        """Send one batch of stored records; True when the receiver accepted it."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release connections (after the last send)."""

    def note_error(self, message: str) -> None:
        """Remember why the last send failed (shown in :meth:`stats`)."""
        self._last_error = message

    # --- the exporter thread -----------------------------------------------------------

    def _ensure_thread(self) -> None:
        if os.getpid() != self._pid:  # a forked child: the parent's thread and queue stay there
            self._pid = os.getpid()
            self._queue.clear()
            self._in_flight = 0
            self._thread = None
            self._cond = threading.Condition(threading.Lock())
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"ragtrail-export-{self.kind}")
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait(0.5)
                if self._stop.is_set() and not self._queue:
                    return
                batch = [self._queue.popleft()
                         for _ in range(min(self.batch_size, len(self._queue)))]
                self._in_flight = len(batch)
            try:
                ok = self._send_with_retries(batch)
            except Exception as exc:  # a mapping bug must not stop the thread
                ok = False
                self._last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("ragtrail export %s failed: %s", self.describe(), exc)
            with self._cond:
                if ok:
                    self._counts["sent"] += len(batch)
                else:
                    self._counts["failed_batches"] += 1
                    self._dropped["export_failed"] += len(batch)
                self._in_flight = 0
                self._cond.notify_all()

    def _send_with_retries(self, batch: list[Any]) -> bool:
        def count_retry(_state: Any) -> None:
            with self._cond:
                self._counts["retried"] += 1

        retrying = Retrying(
            stop=stop_any(stop_after_attempt(self.retry_attempts),
                          stop_when_event_set(self._stop)),
            wait=exponential_backoff(self.retry_initial_backoff_s, self.retry_max_backoff_s),
            retry=retry_if_result(lambda ok: not ok),
            before_sleep=count_retry,
            sleep=self._sleep,
        )
        try:
            return bool(retrying(self.send, batch))
        except RetryError:
            return False

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)


class ExportingStore:
    """The store the writer writes through when a Trail has exporters.

    Delegates everything to ``store`` and declares what it declares; after a write
    returns (the batch is stored), each exporter gets the batch through its
    non-blocking ``offer``.
    """

    def __init__(self, store: Any, exporters: Sequence[LiveExporter]) -> None:
        self._store = store
        self._exporters = list(exporters)
        self._capabilities = capabilities_of(store)

    @property
    def capabilities(self) -> StoreCapabilities:
        """As the wrapped store."""
        return self._capabilities

    def write_batch(self, records: Sequence[Any]) -> None:
        """Store the batch; then hand it on (never raising, never waiting)."""
        self._store.write_batch(records)
        self._hand_on(records)

    def prepare_batch(self, records: Sequence[Any]) -> PreparedBatch:
        """The wrapped store's (called only when it declares ``prepare_ahead``)."""
        prepared: PreparedBatch = self._store.prepare_batch(records)
        return prepared

    def write_prepared(self, batch: PreparedBatch) -> None:
        """Store the prepared batch; then hand its records on."""
        self._store.write_prepared(batch)
        self._hand_on(batch.records)

    def reset_after_fork(self) -> None:
        """The wrapped store's (called only when it declares ``fork_reset``)."""
        self._store.reset_after_fork()

    def _hand_on(self, records: Sequence[Any]) -> None:
        batch = list(records)
        for exporter in self._exporters:
            exporter.offer(batch)  # never raises, never waits

    def close(self) -> None:
        """Close the wrapped store."""
        self._store.close()

    def __getattr__(self, name: str) -> Any:
        # engine, url, dialect, ...: the wrapped store's own.
        return getattr(self._store, name)


def close_all(exporters: Sequence[LiveExporter], timeout_s: float | None = None) -> bool:
    """Close every exporter; True when each sent everything."""
    ok = True
    for exporter in exporters:
        ok = exporter.close(timeout_s) and ok
    return ok


