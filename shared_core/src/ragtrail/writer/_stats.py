"""What the writer reports: a snapshot of its counters, and why records were dropped."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

__all__ = ["DropReason", "WriterStats"]


class DropReason(str, Enum):
    """Why a record was not stored (the keys of :attr:`WriterStats.dropped`)."""

    #: The in-memory queue was at its record or byte bound and no spool was available.
    QUEUE_FULL = "queue_full"
    #: The queue was full and the spool had reached ``spool_max_bytes``.
    SPOOL_FULL = "spool_full"
    #: A single record larger than ``max_queue_bytes``.
    TOO_LARGE = "too_large"
    #: Not a CapturedRun (a bug in the caller).
    INVALID = "invalid"
    #: Offered after ``close()``.
    CLOSED = "closed"
    #: Still in memory when ``close()``'s deadline passed and the spool could not take it.
    SHUTDOWN = "shutdown"
    #: A spool line that could not be read back (damaged file, unknown record shape).
    SPOOL_CORRUPT = "spool_corrupt"
    #: A light record (:class:`~ragtrail.sink.LightRecord`) whose record could not be
    #: built on the writer's thread (a bug: the error is logged and kept in ``last_error``).
    BUILD_FAILED = "build_failed"

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True)
class WriterStats:
    """A consistent snapshot of the writer's counters.

    Cumulative: ``offered``, ``stored``, ``spooled`` (records written to the spool),
    ``replayed`` (records read back from the spool and stored), ``recovered`` (records
    found in a spool left by an earlier process), ``retried`` (failed attempts that
    were retried), ``dead_lettered``, ``dropped`` (by reason). Current:
    ``queue_events`` / ``queue_bytes`` (in memory, including the batch being written)
    and ``spool_events`` / ``spool_bytes`` (on disk). :meth:`balanced` checks that no
    record is unaccounted for.
    """

    queue_events: int = 0
    queue_bytes: int = 0
    spool_events: int = 0
    spool_bytes: int = 0
    offered: int = 0
    stored: int = 0
    spooled: int = 0
    replayed: int = 0
    recovered: int = 0
    retried: int = 0
    dead_lettered: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)
    last_error: str | None = None
    last_success_at: datetime | None = None

    @property
    def dropped_total(self) -> int:
        """Records dropped for any reason."""
        return sum(self.dropped.values())

    @property
    def pending(self) -> int:
        """Records not yet stored: still in memory or on the spool."""
        return self.queue_events + self.spool_events

    def balanced(self) -> bool:
        """offered + recovered == stored + dead_lettered + dropped + queued + spooled."""
        accounted = self.stored + self.dead_lettered + self.dropped_total + self.pending
        return self.offered + self.recovered == accounted

    def as_dict(self) -> dict[str, Any]:
        """Plain-dict form (the :class:`ragtrail.sink.Sink` protocol's ``stats()``)."""
        return {
            "queue_events": self.queue_events,
            "queue_bytes": self.queue_bytes,
            "spool_events": self.spool_events,
            "spool_bytes": self.spool_bytes,
            "offered": self.offered,
            "stored": self.stored,
            "spooled": self.spooled,
            "replayed": self.replayed,
            "recovered": self.recovered,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "dropped": dict(self.dropped),
            "dropped_total": self.dropped_total,
            "pending": self.pending,
            "last_error": self.last_error,
            "last_success_at": self.last_success_at.isoformat() if self.last_success_at else None,
        }
