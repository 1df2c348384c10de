"""Backlog drain after an outage, and ``offer`` latency while the store is down.

Part of the ingestion benchmark (``ingest.<backend>.drain``). The reliability tests
(``tests/reliability/test_outage.py``) assert what must always hold through an outage:
nothing lost, nothing stored twice, memory bounded. How fast the backlog drains is a
figure of the machine, measured here against its target:

* the store is down (every write raises ``TransientStoreError``) while ``backlog``
  records are offered: they wait on the disk spool. Each ``offer`` is timed: the
  application's cost while the database is away (target p99 <= 150 us);
* the store comes back while fresh records keep arriving at ``rate`` per second for
  ``fresh_s`` seconds. ``drain_s``: from the recovery until the spool is empty and at
  most a second of fresh records waits in memory (target <= 20 s for 60,000 spooled
  records of the ingestion mix at 2,000 fresh records/s, the outage test's load);
  ``all_stored_s``: until ``flush`` returns (every record stored).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ragtrail.schemas import CapturedRun

from ._common import percentile

#: Targets (the outage test's former bound, and the hot-path test's).
DRAIN_TARGET_S = 20.0
OFFER_P99_TARGET_US = 150.0
_HANG_GUARD_S = 600.0  # flush's deadline: never a result, only an end to a hang


class _Outage:
    """A store that fails transiently while ``down``; otherwise the real one (its
    declared capabilities and prepared writes included)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.capabilities = store.capabilities
        self.down = False

    def _check(self) -> None:
        from ragtrail.sink import TransientStoreError

        if self.down:
            raise TransientStoreError("benchmark: the database is away")

    def write_batch(self, records: Sequence[Any]) -> None:
        self._check()
        self._store.write_batch(records)

    def prepare_batch(self, records: Sequence[Any]) -> Any:
        return self._store.prepare_batch(records)

    def write_prepared(self, batch: Any) -> None:
        self._check()
        self._store.write_prepared(batch)

    def reset_after_fork(self) -> None:
        self._store.reset_after_fork()

    def close(self) -> None:
        self._store.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def run(url: str, backlog: Sequence[CapturedRun], fresh: Sequence[CapturedRun], *,
        rate_per_s: int, spool_dir: Path, config: Any = None) -> dict[str, Any]:
    """Measure on a fresh database at ``url``; ``config``: a WriterConfig (default: the
    default limits, with ``spool_dir``)."""
    from ragtrail.store import open_store
    from ragtrail.writer import BackgroundWriter, WriterConfig

    store = _Outage(open_store(url))
    store.down = True
    writer = BackgroundWriter(store, config or WriterConfig(spool_dir=spool_dir), name=url)
    latencies_ns: list[int] = []
    refused = 0
    limits = writer.config
    every = max(1, min(100, limits.max_queue_events // 8))
    try:
        for record in backlog:
            start = time.perf_counter_ns()
            accepted = writer.offer(record)
            latencies_ns.append(time.perf_counter_ns() - start)
            refused += not accepted
            if len(latencies_ns) % every == 0:  # the spill thread keeps up, as with a load
                while True:  # (it spills down to the high-water mark, half the bounds)
                    stats = writer.stats()
                    if (stats.queue_events <= limits.max_queue_events * 3 // 4
                            and stats.queue_bytes <= limits.max_queue_bytes * 3 // 4):
                        break
                    time.sleep(0.001)
        spooled_at_recovery = writer.stats().spool_events
        store.down = False
        recovered = time.perf_counter()
        drain_s = None
        sent = 0
        while sent < len(fresh) or drain_s is None:
            now = time.perf_counter() - recovered
            due = min(len(fresh), int(now * rate_per_s))
            while sent < due:
                refused += not writer.offer(fresh[sent])
                sent += 1
            stats = writer.stats()
            if drain_s is None and stats.spool_events == 0 and stats.queue_events <= rate_per_s:
                drain_s = now
            time.sleep(0.002)
        flushed = writer.flush(_HANG_GUARD_S)
        all_stored_s = time.perf_counter() - recovered
        stats = writer.stats()
    finally:
        writer.close(30)
        store.close()
    with sa.create_engine(url).connect() as conn:  # the truth, whatever the counters say
        in_db = conn.execute(sa.text("select count(*) from runs")).scalar_one()
    ordered = sorted(latencies_ns)
    return {
        "backlog": len(backlog), "spooled_at_recovery": spooled_at_recovery,
        "fresh": len(fresh), "fresh_per_s": rate_per_s,
        "drain_s": drain_s, "all_stored_s": all_stored_s, "target_drain_s": DRAIN_TARGET_S,
        "offer_while_down_p50_us": percentile(ordered, 0.5) / 1e3,
        "offer_while_down_p99_us": percentile(ordered, 0.99) / 1e3,
        "target_offer_p99_us": OFFER_P99_TARGET_US,
        "refused": refused, "stored": stats.stored, "dropped": dict(stats.dropped),
        "runs_in_database": in_db, "flushed": flushed,
        "complete": flushed and in_db == len(backlog) + len(fresh) and refused == 0,
    }
