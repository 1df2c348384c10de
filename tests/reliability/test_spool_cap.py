"""Issue test 4: with the store down for good and small limits, memory and spool stay
under their caps, every drop is counted exactly, and the drop warning is logged at
most once per interval.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from ragtrail.store import open_store
from ragtrail.writer import BackgroundWriter, DropReason, WriterConfig
from reliability._db import run_id_counts, sqlite_path
from reliability._load import Sampler, paced_load
from reliability._locker import SqliteLock

pytestmark = pytest.mark.reliability

MiB = 1024 * 1024
RATE_PER_S = 2_000
LOAD_S = 10.0
DROP_LOG_INTERVAL_S = 1.0
RSS_GROWTH_LIMIT_BYTES = 64 * MiB  # the queue holds 2 MiB serialized: a few MB of objects


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_store_down_for_good_stays_within_caps(sqlite_url: str, tmp_path: Path) -> None:
    config = WriterConfig(max_queue_events=2_000, max_queue_bytes=2 * MiB,
                          spool_dir=tmp_path / "spool", spool_max_bytes=8 * MiB,
                          spool_segment_max_bytes=1 * MiB,
                          drop_log_interval_s=DROP_LOG_INTERVAL_S, retry_max_backoff_s=0.5)
    open_store(sqlite_url).close()
    handler = _Collect()
    logger = logging.getLogger("ragtrail.writer")
    logger.addHandler(handler)
    lock = SqliteLock(sqlite_path(sqlite_url))
    lock.acquire()
    writer = BackgroundWriter(lambda: open_store(sqlite_url), config)
    try:
        sampler = Sampler(writer, config.resolved_spool_dir("default"), interval_s=0.05).start()
        load = paced_load(writer, rate_per_s=RATE_PER_S, duration_s=LOAD_S, prefix="cap")
        sampler.stop()
        down_stats = writer.stats()
        lock.release()
        assert writer.flush(60), writer.stats()
        stats = writer.stats()
    finally:
        lock.release()
        writer.close(10)
        logger.removeHandler(handler)

    drop_logs = [r for r in handler.records if r.getMessage().startswith("dropped")]
    gaps = [b.created - a.created for a, b in itertools.pairwise(drop_logs)]
    peak_queue_bytes = max(s.stats.queue_bytes for s in sampler.samples)
    peak_queue_events = max(s.stats.queue_events for s in sampler.samples)
    peak_spool_disk = max(s.spool_disk_bytes for s in sampler.samples)
    print(f"\nspool cap: offered {down_stats.offered}, refused {load.refused}, dropped "
          f"{down_stats.dropped}, peak queue {peak_queue_events} records / {peak_queue_bytes} B "
          f"(cap {config.max_queue_bytes}), peak spool on disk {peak_spool_disk} B (cap "
          f"{config.spool_max_bytes}), RSS growth {sampler.peak_growth_bytes / 1e6:.1f} MB, "
          f"{len(drop_logs)} drop warnings, smallest gap "
          f"{min(gaps, default=float('nan')):.3f} s")

    assert down_stats.stored == 0
    assert down_stats.offered == RATE_PER_S * LOAD_S
    assert load.refused == down_stats.dropped_total > 0  # exact: every refusal counted
    assert set(down_stats.dropped) <= {DropReason.QUEUE_FULL.value, DropReason.SPOOL_FULL.value}
    assert down_stats.dropped.get(DropReason.SPOOL_FULL.value, 0) > 0
    assert down_stats.balanced()
    assert peak_queue_bytes <= config.max_queue_bytes
    assert peak_queue_events <= config.max_queue_events
    assert peak_spool_disk <= config.spool_max_bytes
    assert sampler.peak_growth_bytes <= RSS_GROWTH_LIMIT_BYTES
    assert len(drop_logs) >= 2
    assert all(gap >= DROP_LOG_INTERVAL_S - 0.01 for gap in gaps), gaps
    # Once the store is back, exactly the accepted records are stored.
    counts = run_id_counts(sqlite_url, "cap")
    assert sorted(counts) == sorted(load.accepted) and max(counts.values()) == 1
    assert stats.stored == len(load.accepted) and stats.balanced()
