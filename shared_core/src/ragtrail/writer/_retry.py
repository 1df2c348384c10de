"""The retry layer around the store: one batch written with retries for transient
errors, and bisection to isolate poison records into the dead-letter file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import Retrying, retry_if_exception_type

from .._backoff import exponential_backoff
from .._log import RateLimitedLog, SafeLogger
from ..schemas.flat import AnyRecord
from ..sink import PermanentStoreError, TransientStoreError
from ._config import WriterConfig
from ._deadletter import DeadLetterFile
from ._ledger import Ledger
from ._seam import Batch, StoreSeam, records_of

__all__ = ["Outcome", "RetryLayer", "UnexpectedError"]

logger = SafeLogger("ragtrail.writer")


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
    only then the dead-letter file (see :meth:`RetryLayer.deliver`)."""


class RetryLayer:
    """Writes batches through the store, with tenacity retries and poison isolation:
    what the store rejects for good is dead-lettered, what it cannot take now is
    handed back (the caller puts it on the spool)."""

    def __init__(self, config: WriterConfig, ledger: Ledger, seam: StoreSeam, *,
                 pause: Callable[[float], None], give_up: Callable[[], bool],
                 dead_letters: DeadLetterFile, log: RateLimitedLog) -> None:
        self._config = config
        self._ledger = ledger
        self._seam = seam
        self._pause = pause
        self._give_up = give_up
        self._dead_letters = dead_letters
        self._log = log
        self._wait = exponential_backoff(config.retry_initial_backoff_s,
                                         config.retry_max_backoff_s)
        self.store_down = False  # retries ran out; until the next success, probe once a while
        self._failing = False  # the last attempt failed transiently

    def deliver(self, batch: Batch, *, last_chance: bool = False) -> Outcome:
        """Write the batch's records in order; stop at the first part whose retries run out.

        A transient error stops the batch (the rest waits on the spool); a permanent one
        halves the batch until the record at fault is alone, and dead-letters it. Any
        other exception is retried like a transient one; once its retries run out the
        batch stops too (it goes to the spool), unless this is its ``last_chance`` (it
        comes from the spool, or could not be spooled): then it is treated as permanent.
        Never raises.
        """
        records = records_of(batch)
        ranges = [(0, len(records))]  # a stack: the next range to write is on top
        stored = dead = 0
        while ranges:
            lo, hi = ranges.pop()
            whole = hi - lo == len(records)
            try:
                # The whole batch as given (it may come prepared by the store), else a part.
                self._write(batch if whole else records[lo:hi], retry_unexpected=whole)
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

    def _write(self, batch: Batch, *, retry_unexpected: bool) -> None:
        """One write with retries; raises the store's error or an :class:`UnexpectedError`."""
        attempts = 1 if self.store_down else self._config.retry_max_attempts
        retried = (TransientStoreError, UnexpectedError) if retry_unexpected else (
            TransientStoreError,)
        try:
            retrying = Retrying(stop=_Stop(attempts, self._give_up), wait=self._wait,
                                retry=retry_if_exception_type(retried), sleep=self._pause,
                                reraise=True)
            retrying(self._write_once, batch)
        except (TransientStoreError, PermanentStoreError, UnexpectedError):
            raise
        except Exception as exc:  # the retry machinery itself failed
            self._ledger.note_error(exc)
            raise UnexpectedError(f"{type(exc).__name__}: {exc}") from exc

    @property
    def failing(self) -> bool:
        """True from a failed write until the next successful one."""
        return self._failing or self.store_down

    def _write_once(self, batch: Batch) -> None:
        try:
            self._seam.write(batch)
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


class _Stop:
    """tenacity stop: after ``attempts`` tries, or as soon as the writer must give up."""

    def __init__(self, attempts: int, give_up: Callable[[], bool]) -> None:
        self._attempts = attempts
        self._give_up = give_up

    def __call__(self, retry_state: Any) -> bool:
        return bool(retry_state.attempt_number >= self._attempts or self._give_up())

