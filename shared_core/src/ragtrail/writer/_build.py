"""Building light records on the writer's side, as they leave the queue.

The Recorder hands a light sink the run as it ended (:class:`~ragtrail.sink.LightRecord`);
the :class:`~ragtrail.schemas.record.CapturedRun` is built here, by the thread that takes
it from the queue (the writer thread, its read-ahead helper, or the spill thread), so the
application's thread never builds records. A record whose build raises is dropped and
counted (``build_failed``), its error logged (rate-limited) and kept in ``last_error``.
"""

from __future__ import annotations

import logging

from .._log import RateLimitedLog
from ..schemas.record import CapturedRun
from ._ledger import Entry, Ledger

__all__ = ["built", "record_of"]


def built(entries: list[Entry], ledger: Ledger, log: RateLimitedLog) -> list[Entry]:
    """``entries`` with every light record built, in order; those whose build raised
    are settled as dropped (``build_failed``) and left out."""
    if all(type(entry.record) is CapturedRun for entry in entries):
        return entries
    out: list[Entry] = []
    failed: list[Entry] = []
    error: BaseException | None = None
    for entry in entries:
        record = entry.record
        if isinstance(record, CapturedRun):
            out.append(entry)
            continue
        try:
            out.append(Entry(entry.seq, record.build(), entry.size))
        except Exception as exc:  # a bug in building: this record is lost, counted
            failed.append(entry)
            error = exc
    if error is not None:
        ledger.settle_unbuilt(failed, error)
        log.log(logging.ERROR, "build", "ragtrail writer: %d record(s) could not be built "
                "and were dropped: %s: %s", len(failed), type(error).__name__, error,
                exc_info=error)
    return out


def record_of(entry: Entry) -> CapturedRun:
    """The entry's record, built (entries taken through :func:`built` already are)."""
    record = entry.record
    return record if isinstance(record, CapturedRun) else record.build()
