"""Writing one batch: retries for transient errors, bisection to isolate poison records."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tenacity import Retrying, retry_if_exception_type

from .._backoff import exponential_backoff
from .._log import RateLimitedLog, SafeLogger
from ..schemas.flat import AnyRecord, FlatRecord
from ..schemas.record import CapturedRun, SerializedRecord
from ..sink import PermanentStoreError, Store, TransientStoreError
from ._config import WriterConfig
from ._deadletter import DeadLetterFile
from ._ledger import Ledger

__all__ = ["Delivery", "Outcome", "StoreSource", "UnexpectedError"]

logger = SafeLogger("ragtrail.writer")


class StoreSource:
    """The writer's store: given, or built lazily on the writer thread by a factory."""

    def __init__(self, store_or_factory: Store | Callable[[], Store]) -> None:
        if not isinstance(store_or_factory, type) and isinstance(store_or_factory, Store):
            self._factory: Callable[[], Store] | None = None
            self._store: Store | None = store_or_factory
        elif callable(store_or_factory):
            self._factory = store_or_factory
            self._store = None
        else:
            raise TypeError("BackgroundWriter needs a Store or a callable returning one, "
                            f"not {type(store_or_factory).__name__}")
        # A store built here is closed here; one handed in belongs to the caller.
        self._owned = self._factory is not None

    def get(self) -> Store:
        """The store, built on first use; a factory failure is transient (retried)."""
        if self._store is None and self._factory is not None:
            try:
                self._store = self._factory()
            except Exception as exc:  # unreachable database, bad file, ...
                raise TransientStoreError(f"cannot open the store: {type(exc).__name__}: {exc}"
                                          ) from exc
        if self._store is None:  # pragma: no cover - guarded by the constructor
            raise TransientStoreError("no store")
        return self._store

    def prepare(self, records: list[AnyRecord]) -> Sequence[AnyRecord] | None:
        """The store's ``prepare_batch(records)`` if it has one (called on a helper thread
        while another batch is written), else None. Never raises."""
        prepare = getattr(self._store, "prepare_batch", None)
        if prepare is None or not getattr(self._store, "accepts_serialized_records", False):
            return None
        try:
            return prepare(records)  # type: ignore[no-any-return]
        except Exception:  # the plain write reports whatever is wrong
            return None

    @property
    def waits_outside_python(self) -> bool:
        """True when the store (built already) says its writes mostly wait on a server
        with the interpreter released (``waits_outside_python = True`` on its class):
        then the next spooled batch is parsed meanwhile."""
        return bool(getattr(self._store, "waits_outside_python", False))

    def close(self) -> None:
        """Close the store if the factory built it (a given store is the caller's)."""
        store, self._store = self._store, None
        if store is not None and self._owned:
            try:
                store.close()
            except Exception as exc:  # closing must not raise
                logger.warning("closing the store failed: %s: %s", type(exc).__name__, exc)

    def for_child(self) -> StoreSource:
        """The source a forked child uses; the parent's connections are left alone.

        With a factory the child builds its own store. A store instance is shared with
        the parent: if it offers ``reset_after_fork()`` (dropping inherited pooled
        connections without closing them) the child calls it before using it.
        """
        if self._store is not None:
            # Never garbage-collect inherited connections in the child: some drivers
            # say goodbye to the server on finalisation.
            _INHERITED.append(self._store)
        if self._factory is not None:
            return StoreSource(self._factory)
        child = object.__new__(StoreSource)
        child._factory, child._store, child._owned = None, self._store, False
        reset = getattr(self._store, "reset_after_fork", None)
        if callable(reset):
            try:
                reset()
            except Exception as exc:  # the child keeps working with what it has
                logger.warning("reset_after_fork failed in a forked child: %s", exc)
        return child


#: Stores inherited through fork, kept alive (see :meth:`StoreSource.for_child`).
_INHERITED: list[Store] = []


@dataclass
class Outcome:
    """What happened to a batch: its first ``done`` records were stored or dead-lettered."""

    done: int
    stored: int
    dead: int
    error: Exception | None = None  # why the rest was not written


class UnexpectedError(Exception):
    """Something other than the store's two documented errors failed a write: a bug in a
    store, a warning an application turned into an error, ... Neither transient nor
    permanent for sure, so it gets both treatments in turn: retries, the spool, and
    only then the dead-letter file (see :meth:`Delivery.deliver`)."""


class Delivery:
    """Writes batches through the store, with tenacity retries and poison isolation."""

    def __init__(self, config: WriterConfig, ledger: Ledger, source: StoreSource, *,
                 pause: Callable[[float], None], give_up: Callable[[], bool],
                 dead_letters: DeadLetterFile, log: RateLimitedLog) -> None:
        self._config = config
        self._ledger = ledger
        self._source = source
        self._pause = pause
        self._give_up = give_up
        self._dead_letters = dead_letters
        self._log = log
        self._wait = exponential_backoff(config.retry_initial_backoff_s,
                                         config.retry_max_backoff_s)
        self.store_down = False  # retries ran out; until the next success, probe once a while
        self._failing = False  # the last attempt failed transiently

    def deliver(self, records: Sequence[AnyRecord], *, last_chance: bool = False) -> Outcome:
        """Write ``records`` in order; stop at the first part whose retries run out.

        A transient error stops the batch (the rest waits on the spool); a permanent one
        halves the batch until the record at fault is alone, and dead-letters it. Any
        other exception is retried like a transient one; once its retries run out the
        batch stops too (it goes to the spool), unless this is its ``last_chance`` (it
        comes from the spool, or could not be spooled): then it is treated as permanent.
        Never raises.
        """
        ranges = [(0, len(records))]  # a stack: the next range to write is on top
        stored = dead = 0
        while ranges:
            lo, hi = ranges.pop()
            whole = hi - lo == len(records)
            try:
                # The whole batch as given (it may come prepared by the store), else a part.
                self._write(records if whole else records[lo:hi], retry_unexpected=whole)
            except TransientStoreError as exc:
                self._mark_down(exc)
                return Outcome(lo, stored, dead, exc)
            except (PermanentStoreError, UnexpectedError) as exc:
                if isinstance(exc, UnexpectedError) and whole and not last_chance:
                    return Outcome(lo, stored, dead, exc)  # retried; next: the spool
                if hi - lo == 1:
                    self._dead_letter(records[lo], exc)
                    dead += 1
                else:  # one bad record fails the whole transaction: halve to find it
                    mid = (lo + hi) // 2
                    ranges += [(mid, hi), (lo, mid)]
            else:
                stored += hi - lo
                self._mark_up()
        return Outcome(len(records), stored, dead)

    def _write(self, records: Sequence[AnyRecord], *, retry_unexpected: bool) -> None:
        """One write with retries; raises the store's error or an :class:`UnexpectedError`."""
        attempts = 1 if self.store_down else self._config.retry_max_attempts
        retried = (TransientStoreError, UnexpectedError) if retry_unexpected else (
            TransientStoreError,)
        try:
            retrying = Retrying(stop=_Stop(attempts, self._give_up), wait=self._wait,
                                retry=retry_if_exception_type(retried), sleep=self._pause,
                                reraise=True)
            retrying(self._write_once, records)
        except (TransientStoreError, PermanentStoreError, UnexpectedError):
            raise
        except Exception as exc:  # the retry machinery itself failed
            self._ledger.note_error(exc)
            raise UnexpectedError(f"{type(exc).__name__}: {exc}") from exc

    @property
    def failing(self) -> bool:
        """True from a failed write until the next successful one."""
        return self._failing or self.store_down

    def _write_once(self, records: Sequence[AnyRecord]) -> None:
        try:
            store = self._source.get()
            if not getattr(store, "accepts_serialized_records", False):
                records = _validated(records)
            store.write_batch(records)  # type: ignore[arg-type]
            self._failing = False
        except TransientStoreError as exc:
            self._failing = True
            self._ledger.note_retry(exc)
            raise
        except PermanentStoreError as exc:
            self._failing = False  # the store answered: it is up
            self._ledger.note_error(exc)
            raise
        except Exception as exc:  # a store bug, a warning made an error, ...
            self._failing = True
            self._ledger.note_retry(exc)
            self._log.log(logging.ERROR, "unexpected", "writing to the store raised %s: %s "
                          "(expected a TransientStoreError or PermanentStoreError); retried, "
                          "then spooled, then dead-lettered", type(exc).__name__, exc,
                          exc_info=exc)
            raise UnexpectedError(f"{type(exc).__name__}: {exc}") from exc

    def _dead_letter(self, record: AnyRecord, error: Exception) -> None:
        self._log.log(logging.WARNING, "dead-letter", "the store rejected record %s (%s); kept "
                      "in %s", record.id, error, self._dead_letters.path)
        self._dead_letters.write(record, error)

    def _mark_down(self, error: TransientStoreError) -> None:
        if not self.store_down:
            logger.warning("store unavailable (%s); records wait in memory and on the spool, "
                           "retrying every %.1f s", error, self._config.retry_max_backoff_s)
        self.store_down = True

    def _mark_up(self) -> None:
        if self.store_down:
            logger.info("store available again; replaying waiting records")
        self.store_down = False


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


class _Stop:
    """tenacity stop: after ``attempts`` tries, or as soon as the writer must give up."""

    def __init__(self, attempts: int, give_up: Callable[[], bool]) -> None:
        self._attempts = attempts
        self._give_up = give_up

    def __call__(self, retry_state: Any) -> bool:
        return bool(retry_state.attempt_number >= self._attempts or self._give_up())

