"""Issue tests 2 and 3: the database goes away for 30 s under 2,000 records/s for 50 s.

Asserted: what must hold whatever the machine's speed: nothing lost (stored ==
offered, each record once), every refusal counted, memory growth at most 150 MB, the
spool used. Refusals: with the machine to itself the spill thread keeps up and there
are none; with other jobs on both cores (load average 16 on 2 cores) it fell behind
and 2 % of the offers were refused, each counted as ``queue_full``. That depends on
the CPU the machine leaves it, like the drain, so the benchmark reports it (its
``complete`` needs none). How fast the backlog drains after recovery (~60,000 spooled records plus the
fresh ones of the last 10 s, heavy on purpose: an LLM run with its prompt, three
documents and their links, ~5 KB, 8 rows) depends on the machine and its other load
(18-60 s measured on this project's 2-core machines): it is printed here, and measured
against its target (20 s) by the benchmarks (``make bench``: ``ingest.<backend>.drain``,
``benchmarks/_drain.py``). The wait for the drain is a hang guard, not a bound.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import pytest

from ragtrail.store import open_store
from ragtrail.writer import BackgroundWriter, WriterConfig
from reliability._db import run_id_counts, sqlite_path
from reliability._factory import make_record
from reliability._load import Sampler, paced_load
from reliability._locker import SqliteLock
from reliability._proxy import Proxy, upstream_of

pytestmark = pytest.mark.reliability

RATE_PER_S = 2_000
LOAD_S = 50.0
OUTAGE_START_S = 10.0
OUTAGE_S = 30.0
DRAIN_WAIT_S = 400.0  # a hang guard only: a slow drain is reported, never failed
MEMORY_GROWTH_LIMIT_BYTES = 150 * 1024 * 1024


def run_outage(writer_url: str, check_url: str, tmp_path: Path, *, prefix: str,
               cut: Callable[[], None], restore: Callable[[], None]) -> dict[str, float]:
    spool_dir = tmp_path / "spool"
    writer = BackgroundWriter(lambda: open_store(writer_url), WriterConfig(spool_dir=spool_dir),
                              name=writer_url)
    try:
        warm = [make_record(prefix) for _ in range(200)]
        assert all(writer.offer(r) for r in warm)
        assert writer.flush(30), "the store must work before the outage"
        gc.collect()
        sampler = Sampler(writer, spool_dir).start()
        times: dict[str, float] = {}

        def at(name: str, action: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                action()
                times[name] = sampler.now_s()
            return run

        load = paced_load(writer, rate_per_s=RATE_PER_S, duration_s=LOAD_S, prefix=prefix,
                          events={OUTAGE_START_S: at("cut", cut),
                                  OUTAGE_START_S + OUTAGE_S: at("restored", restore)})
        times["load_end"] = sampler.now_s()
        # Wait well past the target: a slow drain is measured, and loss is still checked.
        budget = times["restored"] + DRAIN_WAIT_S - sampler.now_s()
        flushed = writer.flush(max(1.0, budget))
        times["flushed"] = sampler.now_s()
        sampler.stop()
        stats = writer.stats()
    finally:
        writer.close(10)

    offered_ids = [r.id for r in warm] + load.accepted
    counts = run_id_counts(check_url, prefix)
    caught_up = sampler.first(times["restored"], lambda s: s.stats.spool_events == 0
                              and s.stats.queue_events <= RATE_PER_S)
    peak_backlog = max(s.stats.pending for s in sampler.samples)
    measured = {
        "offered": stats.offered, "stored": stats.stored, "refused": load.refused,
        "spooled": stats.spooled, "replayed": stats.replayed, "retried": stats.retried,
        "peak_backlog_records": peak_backlog,
        "peak_spool_bytes": max(s.stats.spool_bytes for s in sampler.samples),
        "drain_s": (caught_up.at_s - times["restored"]) if caught_up else float("inf"),
        "all_stored_after_restore_s": times["flushed"] - times["restored"],
        "memory_growth_mb": sampler.peak_growth_bytes / 1e6,
        "outage_s": times["restored"] - times["cut"],
    }
    print(f"\noutage {prefix}: {measured}")
    assert measured["outage_s"] >= OUTAGE_S - 0.5
    # Refused only when the spill thread could not keep up (never for a full spool), and
    # every refusal counted.
    assert stats.dropped_total == load.refused and set(stats.dropped) <= {"queue_full"}, (
        stats.dropped)
    assert sampler.peak_growth_bytes <= MEMORY_GROWTH_LIMIT_BYTES, measured
    assert stats.spooled > 0, "an outage this long must spill to the spool"
    assert flushed, f"backlog not stored {DRAIN_WAIT_S} s after recovery: {stats}"
    assert stats.offered == RATE_PER_S * LOAD_S + 200
    assert stats.stored == stats.offered - load.refused == len(offered_ids)
    assert sorted(counts) == sorted(offered_ids) and max(counts.values()) == 1
    return measured


@pytest.mark.timeout(600)
@pytest.mark.postgres
def test_postgres_outage_loses_nothing(pg_url: str, tmp_path: Path) -> None:
    open_store(pg_url).close()  # schema created on the real server directly
    with Proxy(*upstream_of(pg_url)) as proxy:
        run_outage(proxy.url_for(pg_url), pg_url, tmp_path, prefix="pgout",
                   cut=lambda: proxy.set("down"), restore=lambda: proxy.set("up"))


@pytest.mark.timeout(600)
def test_sqlite_outage_loses_nothing(sqlite_url: str, tmp_path: Path) -> None:
    open_store(sqlite_url).close()
    lock = SqliteLock(sqlite_path(sqlite_url))
    try:
        run_outage(sqlite_url, sqlite_url, tmp_path, prefix="liteout",
                   cut=lock.acquire, restore=lock.release)
    finally:
        lock.release()
