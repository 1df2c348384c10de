"""The writer's side of the store seam: the store, its declared capabilities, one write.

The writer never asks a store what it can do attribute by attribute: a store is a
:class:`~ragtrail.sink.Store`, and a :class:`~ragtrail.sink.CapableStore` declares a
:class:`~ragtrail.sink.StoreCapabilities`, read and checked once when the writer gets
the store (at construction for a store instance; when a factory builds it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from .._log import SafeLogger
from ..schemas.flat import AnyRecord, FlatRecord
from ..schemas.record import CapturedRun, SerializedRecord
from ..sink import (
    CapableStore,
    PermanentStoreError,
    PreparedBatch,
    Store,
    StoreCapabilities,
    TransientStoreError,
    capabilities_of,
)

__all__ = ["Batch", "StoreSeam", "records_of"]

logger = SafeLogger("ragtrail.writer")

#: What the writer hands the store: records, or a batch the store prepared ahead.
Batch = Sequence[AnyRecord] | PreparedBatch


def records_of(batch: Batch) -> Sequence[AnyRecord]:
    """The records of a batch, prepared or not."""
    return batch.records if isinstance(batch, PreparedBatch) else batch


class StoreSeam:
    """The writer's store: given, or built lazily on the writer thread by a factory;
    with the capabilities it declared."""

    def __init__(self, store_or_factory: Store | Callable[[], Store]) -> None:
        self._store: Store | None = None
        self._factory: Callable[[], Store] | None = None
        self.capabilities = StoreCapabilities()
        if not isinstance(store_or_factory, type) and isinstance(store_or_factory, Store):
            self._bind(store_or_factory)  # checked now: a bad declaration raises here
        elif callable(store_or_factory):
            self._factory = store_or_factory
        else:
            raise TypeError("BackgroundWriter needs a Store or a callable returning one, "
                            f"not {type(store_or_factory).__name__}")
        # A store built here is closed here; one handed in belongs to the caller.
        self._owned = self._factory is not None

    def _bind(self, store: Store) -> None:
        self.capabilities = capabilities_of(store)
        self._store = store

    def get(self) -> Store:
        """The store, built on first use; a factory failure is transient (retried)."""
        if self._store is None and self._factory is not None:
            try:
                self._bind(self._factory())
            except Exception as exc:  # unreachable database, bad file, ...
                raise TransientStoreError(f"cannot open the store: {type(exc).__name__}: {exc}"
                                          ) from exc
        if self._store is None:  # pragma: no cover - guarded by the constructor
            raise TransientStoreError("no store")
        return self._store

    def write(self, batch: Batch) -> None:
        """One write of ``batch`` through the store (no retries); raises what it raises."""
        store = self.get()
        if isinstance(batch, PreparedBatch):  # only a store preparing ahead made one
            cast(CapableStore, store).write_prepared(batch)
        elif self.capabilities.flat_records:
            cast(CapableStore, store).write_batch(batch)
        else:
            store.write_batch(_validated(batch))

    def prepare(self, records: list[AnyRecord]) -> PreparedBatch | None:
        """The store's ``prepare_batch(records)`` when it prepares ahead (called on a
        helper thread while another batch is written), else None. Never raises."""
        if not self.capabilities.prepare_ahead or self._store is None:
            return None
        try:
            given = records if self.capabilities.flat_records else _validated(records)
            return cast(CapableStore, self._store).prepare_batch(given)
        except Exception:  # the plain write reports whatever is wrong
            return None

    def close(self) -> None:
        """Close the store if the factory built it (a given store is the caller's)."""
        store, self._store = self._store, None
        if store is not None and self._owned:
            try:
                store.close()
            except Exception as exc:  # closing must not raise
                logger.warning("closing the store failed: %s: %s", type(exc).__name__, exc)

    def for_child(self) -> StoreSeam:
        """The seam a forked child uses; the parent's connections are left alone.

        With a factory the child builds its own store. A store instance is shared with
        the parent: if it declares ``fork_reset`` the child calls its
        ``reset_after_fork()`` before using it.
        """
        if self._store is not None:
            # Never garbage-collect inherited connections in the child: some drivers
            # say goodbye to the server on finalisation.
            _INHERITED.append(self._store)
        if self._factory is not None:
            return StoreSeam(self._factory)
        child = object.__new__(StoreSeam)
        child._factory, child._store, child._owned = None, self._store, False
        child.capabilities = self.capabilities
        if self._store is not None and self.capabilities.fork_reset:
            try:
                cast(CapableStore, self._store).reset_after_fork()
            except Exception as exc:  # the child keeps working with what it has
                logger.warning("reset_after_fork failed in a forked child: %s", exc)
        return child


#: Stores inherited through fork, kept alive (see :meth:`StoreSeam.for_child`).
_INHERITED: list[Store] = []


def _validated(records: Sequence[AnyRecord]) -> list[CapturedRun]:
    """CapturedRuns for a store that takes nothing else; an unreadable record is refused."""
    out = []
    for record in records:
        if isinstance(record, (SerializedRecord, FlatRecord)):
            try:
                record = record.to_record()
            except ValueError as exc:  # pydantic's ValidationError
                raise PermanentStoreError(f"spooled record is not a valid record: {exc}"
                                          ) from exc
        out.append(record)
    return out
