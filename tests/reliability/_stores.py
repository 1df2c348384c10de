"""Stores for writer tests: in memory, and a wrapper that fails on command."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence

from ragtrail.schemas import CapturedRun
from ragtrail.sink import (
    CapableStore,
    PermanentStoreError,
    PreparedBatch,
    Store,
    StoreCapabilities,
    TransientStoreError,
    capabilities_of,
)


class MemoryStore:
    """Keeps records by id (idempotent, like the SQL store) and counts commits per id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: dict[str, CapturedRun] = {}
        self.commits: Counter[str] = Counter()  # how many transactions included each id
        self.order: list[str] = []  # ids in the order first stored
        self.threads: set[int] = set()  # idents of threads that called write_batch
        self.calls = 0
        self.closed = False

    def write_batch(self, records: Sequence[CapturedRun]) -> None:
        with self.lock:
            self.calls += 1
            self.threads.add(threading.get_ident())
            for record in records:
                if record.id not in self.rows:
                    self.order.append(record.id)
                self.rows[record.id] = record
                self.commits[record.id] += 1

    def close(self) -> None:
        self.closed = True


class FaultyStore:
    """Wraps a store and injects failures.

    ``down``: every write raises TransientStoreError before touching the store.
    ``ambiguous``: the next N writes commit, then raise TransientStoreError.
    ``poison``: ids the store rejects with PermanentStoreError (whole batch fails).
    ``unexpected``: the next N writes raise ``unexpected_error`` (by default a
    RuntimeError: neither of the store's two documented errors) before writing.
    ``slow``: ids whose batches take ``slow_s`` longer.
    ``hang``: writes block until the event is set (a hung database).
    ``close_inner``: whether close() closes the wrapped store.
    ``prepares_ahead``: declared to the writer (as the wrapped store by default: on
    PostgreSQL the writer takes and prepares the next batch while one is written);
    set it before the writer is built, which reads the declaration once.
    """

    def __init__(self, inner: Store, *, close_inner: bool = True) -> None:
        self.inner = inner
        self.down = False
        self.ambiguous = 0
        self.ambiguous_ids: set[str] = set()  # committed, then reported as failed
        self.poison: set[str] = set()
        self.unexpected = 0
        self.unexpected_error: Callable[[], Exception] = lambda: RuntimeError(
            "injected: unexpected failure")
        self.slow: set[str] = set()
        self.slow_s = 0.0
        self.hang = threading.Event()
        self.hang.set()
        self.close_inner = close_inner
        self.attempts = 0
        self.threads: set[int] = set()
        self._lock = threading.Lock()
        self.prepares_ahead = capabilities_of(inner).prepare_ahead

    @property
    def capabilities(self) -> StoreCapabilities:
        """As the wrapped store's, but for ``prepares_ahead``."""
        inner = capabilities_of(self.inner)
        return StoreCapabilities(flat_records=inner.flat_records,
                                 prepare_ahead=self.prepares_ahead, fork_reset=inner.fork_reset)

    def prepare_batch(self, records: Sequence[CapturedRun]) -> PreparedBatch:
        if isinstance(self.inner, CapableStore) and capabilities_of(self.inner).prepare_ahead:
            return self.inner.prepare_batch(records)
        return PreparedBatch(records)

    def write_prepared(self, batch: PreparedBatch) -> None:
        self._inject(batch.records)  # type: ignore[arg-type]
        if isinstance(self.inner, CapableStore) and capabilities_of(self.inner).prepare_ahead:
            self.inner.write_prepared(batch)
        else:
            self.inner.write_batch(batch.records)  # type: ignore[arg-type]
        self._after_commit(batch.records)  # type: ignore[arg-type]

    def reset_after_fork(self) -> None:
        if isinstance(self.inner, CapableStore) and capabilities_of(self.inner).fork_reset:
            self.inner.reset_after_fork()

    def write_batch(self, records: Sequence[CapturedRun]) -> None:
        self._inject(records)
        self.inner.write_batch(records)
        self._after_commit(records)

    def _inject(self, records: Sequence[CapturedRun]) -> None:
        with self._lock:
            self.attempts += 1
            self.threads.add(threading.get_ident())
        self.hang.wait()
        if self.down:
            raise TransientStoreError("injected: store down")
        with self._lock:
            unexpected = self.unexpected > 0
            self.unexpected -= unexpected
        if unexpected:
            raise self.unexpected_error()
        if any(r.id in self.slow for r in records):
            time.sleep(self.slow_s)
        bad = [r.id for r in records if r.id in self.poison]
        if bad:
            raise PermanentStoreError(f"injected: poison record {bad[0]}")

    def _after_commit(self, records: Sequence[CapturedRun]) -> None:
        with self._lock:
            if self.ambiguous > 0:
                self.ambiguous -= 1
                self.ambiguous_ids.update(r.id for r in records)
                raise TransientStoreError("injected: connection lost after commit")

    def close(self) -> None:
        if self.close_inner:
            self.inner.close()


class FileStore:
    """Appends the id of every committed record to a file: visible across processes.

    Not idempotent on purpose, so a test can see a record written twice.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def write_batch(self, records: Sequence[CapturedRun]) -> None:
        append_lines(self.path, [record.id for record in records])

    def close(self) -> None:
        pass


def append_lines(path: str, lines: list[str]) -> None:
    """Append lines in one write() on an O_APPEND descriptor (safe across processes)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, "".join(line + "\n" for line in lines).encode())
    finally:
        os.close(fd)


def ids_in(path: str) -> list[str]:
    """Ids a FileStore committed, in order (empty if it never wrote)."""
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [line.strip() for line in handle if line.strip()]


class LoggingStore:
    """Wraps a store; after each committed batch, appends ``<pid> <id>`` lines to a file.

    Shared by a parent and its forked child: the file shows which process wrote what,
    and how often.
    """

    def __init__(self, inner: Store, log_path: str) -> None:
        self.inner = inner
        self.log_path = log_path

    def write_batch(self, records: Sequence[CapturedRun]) -> None:
        self.inner.write_batch(records)
        pid = os.getpid()
        append_lines(self.log_path, [f"{pid} {record.id}" for record in records])

    def close(self) -> None:
        self.inner.close()
