"""The seam between capture and I/O.

The Recorder hands finished runs to a :class:`Sink`; the writer is the Sink that
stores them through a :class:`Store`. Both are protocols so either side can be
replaced in tests by an in-memory or deliberately failing implementation.

A sink that also has ``offer_light`` (a :class:`LightSink`: the background writer,
:mod:`ragtrail.testing`'s capturing sink) is handed :class:`LightRecord` objects instead:
the run as it ended, its :class:`CapturedRun` built by the sink off the application's
thread (no record is built on the thread that ran the callback).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .schemas.flat import AnyRecord
from .schemas.record import CapturedRun

__all__ = [
    "CapableStore",
    "LightRecord",
    "LightSink",
    "ListSink",
    "PermanentStoreError",
    "PreparedBatch",
    "Sink",
    "Store",
    "StoreCapabilities",
    "SyncSink",
    "TransientStoreError",
    "capabilities_of",
]


@runtime_checkable
class Sink(Protocol):
    """Where the Recorder puts finished runs. ``offer`` must never block on I/O."""

    def offer(self, record: CapturedRun) -> bool:
        """Accept a record for storage; False (never an exception) when refused."""

    def flush(self, timeout_s: float = 10.0) -> bool:
        """True once everything offered before the call is stored; False at the deadline."""

    def close(self, timeout_s: float = 10.0) -> bool:
        """Flush within the deadline and stop; later offers are refused."""

    def stats(self) -> Any:
        """Counters (offered, stored, dropped by reason, ...): a mapping, or an object
        with ``as_dict()``."""


@runtime_checkable
class LightRecord(Protocol):
    """A finished run whose :class:`CapturedRun` is built later, by the sink
    (:class:`ragtrail.capture.records.EndedRun`).

    ``build`` makes the record once (later calls return the same one) and may raise:
    a sink counts such a record as dropped, never silently. ``approx_bytes`` is the
    record's approximate serialized size (to bound a queue in bytes), ``id`` the run id.
    """

    @property
    def id(self) -> str:
        """The run id: the record's idempotency key."""

    @property
    def approx_bytes(self) -> int:
        """Approximate serialized size in bytes."""

    def build(self) -> CapturedRun:
        """The record (built on the first call)."""


@runtime_checkable
class LightSink(Sink, Protocol):
    """A :class:`Sink` that takes light records: the Recorder calls ``offer_light``
    instead of ``offer`` and never builds records on the application's thread."""

    def offer_light(self, record: LightRecord) -> bool:
        """Accept a light record for storage (built later, off the caller's thread);
        False (never an exception) when refused. Must never block on I/O."""


class TransientStoreError(Exception):
    """The store could not write now but may later: locked, disconnected, restarting."""


class PermanentStoreError(Exception):
    """The store rejects this data and will keep rejecting it (a poison record)."""


@runtime_checkable
class Store(Protocol):
    """What the writer needs from a database: idempotent batch writes, and ``close``.

    That is all a plain store implements; it receives validated :class:`CapturedRun`
    objects only. A store that can do more says so with a :class:`StoreCapabilities`
    declaration (see :class:`CapableStore`), which the writer reads once.
    """

    def write_batch(self, records: Sequence[CapturedRun]) -> None:
        """Store every record in one transaction, or none of them.

        Raises :class:`TransientStoreError` for a failure worth retrying and
        :class:`PermanentStoreError` when some record is unacceptable.
        """

    def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True)
class StoreCapabilities:
    """What a :class:`CapableStore` declares to the writer, read once when the writer
    gets the store (at construction for a store instance, when a factory builds it).

    - ``flat_records``: ``write_batch`` also takes records replayed from the writer's
      disk spool as they were read back (:class:`~ragtrail.schemas.flat.FlatRecord`, or
      :class:`~ragtrail.schemas.record.SerializedRecord` from an older spool), not
      validated into models again.
    - ``prepare_ahead``: a write mostly waits outside the interpreter (a client of a
      database server), so while one batch is written the writer takes the next one
      (from the queue or the spool) on a helper thread and has ``prepare_batch`` do
      the work that needs no connection; ``write_prepared`` then sends it.
    - ``fork_reset``: a store instance shared with a forked child must have
      ``reset_after_fork`` called there before the child writes (pooled connections
      inherited from the parent are dropped, not closed).
    """

    flat_records: bool = False
    prepare_ahead: bool = False
    fork_reset: bool = False


@dataclass(frozen=True)
class PreparedBatch:
    """A batch a store prepared ahead of writing it (:meth:`CapableStore.prepare_batch`).

    ``records`` are the records as given; ``payload`` is the store's own work on them
    (encoded rows, a driver's bulk data), opaque to the writer. A part of a batch
    (poison isolation) is written from ``records`` with ``write_batch``.
    """

    records: Sequence[AnyRecord]
    payload: object = None


@runtime_checkable
class CapableStore(Store, Protocol):
    """A :class:`Store` that declares what more it can do (:class:`StoreCapabilities`).

    ``prepare_batch`` is called only when ``capabilities.prepare_ahead`` is set (on a
    helper thread, with no connection needed), ``reset_after_fork`` only when
    ``capabilities.fork_reset`` is; ``write_batch`` gets spooled records as they were
    read back only when ``capabilities.flat_records`` is.
    """

    @property
    def capabilities(self) -> StoreCapabilities:
        """What the writer may use; read once."""

    def write_batch(self, records: Sequence[AnyRecord]) -> None:
        """As :meth:`Store.write_batch`; spooled records as read back if ``flat_records``."""

    def prepare_batch(self, records: Sequence[AnyRecord]) -> PreparedBatch:
        """Do ahead, without a connection, what :meth:`write_prepared` needs; never raises
        for bad data (``write_prepared`` reports it)."""

    def write_prepared(self, batch: PreparedBatch) -> None:
        """Write a batch from :meth:`prepare_batch`; errors as :meth:`write_batch`."""

    def reset_after_fork(self) -> None:
        """In a forked child: drop what is inherited from the parent (connections)."""


def capabilities_of(store: Store) -> StoreCapabilities:
    """The store's declaration (none for a plain :class:`Store`), checked: a store that
    declares something else than a :class:`StoreCapabilities` raises ``TypeError``."""
    if not isinstance(store, CapableStore):
        return StoreCapabilities()
    declared = store.capabilities
    if not isinstance(declared, StoreCapabilities):
        raise TypeError(f"{type(store).__name__}.capabilities must be a StoreCapabilities, "
                        f"not {type(declared).__name__}")
    return declared


class ListSink:
    """A Sink that keeps records in a list: for tests and for inspecting capture
    (:mod:`ragtrail.testing` builds on it). Thread-safe."""

    def __init__(self) -> None:
        self.records: list[CapturedRun] = []
        self._closed = False
        self._lock = threading.Lock()

    def offer(self, record: CapturedRun) -> bool:
        """Append the record (refused after close)."""
        with self._lock:
            if self._closed:
                return False
            self.records.append(record)
            return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Nothing to wait for."""
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        """Refuse later offers."""
        with self._lock:
            self._closed = True
        return True

    def clear(self) -> None:
        """Forget the records taken so far."""
        with self._lock:
            self.records.clear()

    def snapshot(self) -> list[CapturedRun]:
        """A copy of the records taken so far."""
        with self._lock:
            return list(self.records)

    def stats(self) -> dict[str, Any]:
        """How many records were taken."""
        return {"offered": len(self.records), "stored": len(self.records)}


class SyncSink:
    """A Sink that writes on the caller's thread at ``flush`` (or every ``batch_size``).

    For scripts, imports and tests that want writes to be done when ``flush`` returns
    with no background thread. Applications should use the background writer
    (the default of :class:`ragtrail.Trail`), which never blocks the caller on I/O.
    """

    def __init__(self, store: Store, *, batch_size: int = 500) -> None:
        self._store = store
        self._batch_size = batch_size
        self._pending: list[CapturedRun] = []
        self._counts = {"offered": 0, "stored": 0, "failed": 0, "refused": 0}
        self._closed = False
        self.last_error: str | None = None

    def offer(self, record: CapturedRun) -> bool:
        """Buffer the record; write the buffer once it reaches the batch size."""
        if self._closed:
            self._counts["refused"] += 1
            return False
        self._counts["offered"] += 1
        self._pending.append(record)
        if len(self._pending) >= self._batch_size:
            self.flush()
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write what is buffered now. False (records kept for the next flush) on error."""
        if not self._pending:
            return True
        batch, self._pending = self._pending, []
        try:
            self._store.write_batch(batch)
        except Exception as exc:
            self._pending = batch + self._pending
            self._counts["failed"] += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        self._counts["stored"] += len(batch)
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        """Flush and refuse later offers."""
        ok = self.flush(timeout_s)
        self._closed = True
        return ok

    def stats(self) -> dict[str, Any]:
        """offered, stored, failed flushes, refused, and what is still buffered."""
        return {**self._counts, "queued": len(self._pending), "last_error": self.last_error}
