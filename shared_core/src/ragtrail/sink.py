"""The seam between capture and I/O.

The Recorder hands finished runs to a :class:`Sink`; the writer is the Sink that
stores them through a :class:`Store`. Both are protocols so either side can be
replaced in tests by an in-memory or deliberately failing implementation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from .schemas.record import CapturedRun

__all__ = [
    "ListSink",
    "PermanentStoreError",
    "Sink",
    "Store",
    "TransientStoreError",
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

    def stats(self) -> dict[str, Any]:
        """Counters: offered, stored, dropped by reason, ..."""


class TransientStoreError(Exception):
    """The store could not write now but may later: locked, disconnected, restarting."""


class PermanentStoreError(Exception):
    """The store rejects this data and will keep rejecting it (a poison record)."""


@runtime_checkable
class Store(Protocol):
    """What the writer needs from a database. Writes are idempotent."""

    def write_batch(self, records: Sequence[CapturedRun]) -> None:
        """Store every record in one transaction, or none of them.

        Raises :class:`TransientStoreError` for a failure worth retrying and
        :class:`PermanentStoreError` when some record is unacceptable.
        """

    def close(self) -> None:
        """Release connections."""


class ListSink:
    """A Sink that keeps records in a list: for tests and for inspecting capture."""

    def __init__(self) -> None:
        self.records: list[CapturedRun] = []
        self._closed = False

    def offer(self, record: CapturedRun) -> bool:
        """Append the record (refused after close)."""
        if self._closed:
            return False
        self.records.append(record)
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Nothing to wait for."""
        return True

    def close(self, timeout_s: float = 10.0) -> bool:
        """Refuse later offers."""
        self._closed = True
        return True

    def stats(self) -> dict[str, Any]:
        """How many records were taken."""
        return {"offered": len(self.records), "stored": len(self.records)}
