"""Issue test 1: the application's thread never waits on the database.

100,000 records are offered while a real SQLite store is blocked by another
process's exclusive lock. Every SQL statement the store runs is traced with its
thread: none may run on the offering thread, and every offer is accounted for.
offer's latency is printed here; its target (p99 <= 150 µs while the store is down)
is measured by the benchmarks (``ingest.<backend>.drain.offer_while_down_p99_us``),
not asserted in a test that other load on the machine could fail.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ragtrail.store import SqlStore, open_store
from ragtrail.writer import BackgroundWriter, WriterConfig
from reliability._db import run_id_counts, sqlite_path
from reliability._factory import make_record
from reliability._locker import SqliteLock

pytestmark = pytest.mark.reliability

OFFERS = 100_000


def test_offer_never_waits_on_a_blocked_store(sqlite_url: str, tmp_path: Path) -> None:
    sql_threads: set[int] = set()
    factory_threads: set[int] = set()

    def factory() -> SqlStore:
        factory_threads.add(threading.get_ident())
        store = open_store(sqlite_url)

        @sa.event.listens_for(store.engine, "before_cursor_execute")
        def _trace(*_: Any) -> None:
            sql_threads.add(threading.get_ident())

        return store

    open_store(sqlite_url).close()  # the schema exists before the lock is taken
    writer = BackgroundWriter(factory, WriterConfig(spool_dir=tmp_path / "spool"))
    latencies: list[int] = []
    accepted: list[str] = []
    try:
        with SqliteLock(sqlite_path(sqlite_url)):
            for _ in range(OFFERS):
                record = make_record("hot")
                start = time.perf_counter_ns()
                ok = writer.offer(record)
                latencies.append(time.perf_counter_ns() - start)
                if ok:
                    accepted.append(record.id)
            blocked_stats = writer.stats()
        writer.flush(5)  # unblocked: some of the backlog gets stored
    finally:
        # Draining ~90,000 records is the outage tests' subject; here what is not
        # stored within the deadline stays on the spool, and must be accounted for.
        writer.close(5)
    # close() is bounded: a batch still being written at its deadline finishes after
    # it returns. Wait for that (a second close only joins) before comparing counters
    # with the database.
    writer.close(30)
    stats = writer.stats()

    latencies.sort()
    p50, p99, worst = (latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)],
                       latencies[-1])
    print(f"\nhot path: {OFFERS} offers, accepted {len(accepted)}, p50 {p50 / 1000:.1f} µs, "
          f"p99 {p99 / 1000:.1f} µs, max {worst / 1000:.1f} µs; while blocked: "
          f"stored {blocked_stats.stored}, spooled {blocked_stats.spooled}, "
          f"dropped {blocked_stats.dropped}")
    me = threading.get_ident()
    assert sql_threads, "the store never ran a statement: the test observed nothing"
    assert me not in sql_threads and me not in factory_threads
    assert blocked_stats.stored == 0, "the store was supposed to be blocked"
    assert stats.offered == OFFERS and stats.balanced()
    assert len(accepted) == OFFERS - stats.dropped_total
    assert stats.stored + stats.pending == len(accepted)
    counts = run_id_counts(sqlite_url, "hot")
    assert len(counts) == stats.stored > 0 and set(counts) <= set(accepted)
    assert max(counts.values()) == 1
