"""Which offer sequence numbers are settled (stored or dead-lettered), as merged runs.

Records settle in runs of consecutive numbers (a batch from the queue, lines of the
spool), but not always in offer order: after an outage fresh records may be written
while older ones still wait on the spool. ``flush`` needs "every record up to N is
settled", which is the end of the first run when it starts at 1.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

__all__ = ["SettledSeqs"]


class SettledSeqs:
    """A set of positive integers kept as sorted, disjoint, non-adjacent [start, end] runs."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    @property
    def prefix(self) -> int:
        """The largest N such that 1..N are all settled (0 if 1 is not)."""
        if self._starts and self._starts[0] == 1:
            return self._ends[0]
        return 0

    def add(self, seqs: Iterable[int]) -> None:
        """Mark numbers settled (any order, repeats allowed)."""
        ordered = sorted(seqs)
        if not ordered:
            return
        start = end = ordered[0]
        for seq in ordered[1:]:
            if seq <= end + 1:
                end = max(end, seq)
                continue
            self._add_run(start, end)
            start = end = seq
        self._add_run(start, end)

    def _add_run(self, start: int, end: int) -> None:
        # Runs overlapping or touching [start, end] merge into one.
        lo = bisect.bisect_left(self._ends, start - 1)
        hi = bisect.bisect_right(self._starts, end + 1)
        if lo < hi:
            start = min(start, self._starts[lo])
            end = max(end, self._ends[hi - 1])
        self._starts[lo:hi] = [start]
        self._ends[lo:hi] = [end]
