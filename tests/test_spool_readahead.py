"""Reading the spool ahead: the next batch is read while the current one is written.

The spool's own rules (``Spool.read(after=...)`` and ``Spool.is_head``) are checked
line by line here; the writer's use of them (a read-ahead batch is used only while it
is still the spool's head) is checked through the public API against a store that
prepares batches, and under random interleavings by the conservation tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ragtrail.schemas.record import AnyRecord
from ragtrail.sink import PermanentStoreError, TransientStoreError
from ragtrail.writer import BackgroundWriter, WriterConfig
from ragtrail.writer._spool import Spool, SpoolRead
from reliability._factory import make_record
from reliability._stores import MemoryStore


def line(record_id: str, seq: int) -> bytes:
    record = make_record(record_id)
    return b"%d %s\n" % (seq, record.model_dump_json().encode())


def ids(batch: SpoolRead | None) -> list[str]:
    assert batch is not None
    return [str(r.id) for r in batch.records if r is not None]


def spool_of(tmp_path: Path, *, segment_max_bytes: int = 1 << 30) -> Spool:
    return Spool(tmp_path / "spool", max_bytes=1 << 30, segment_max_bytes=segment_max_bytes)


def test_read_after_continues_in_the_segment_and_becomes_the_head_once_committed(
        tmp_path: Path) -> None:
    spool = spool_of(tmp_path)
    lines = [line(f"r{i}", i) for i in range(7)]
    assert spool.append(lines) == 7
    first = spool.read(3)
    ahead = spool.read(3, after=first)
    assert first is not None and ahead is not None
    assert not set(ids(ahead)) & set(ids(first))
    assert ahead.start == first.ends[-1] and len(ahead.records) == 3
    assert not spool.is_head(ahead), "the first batch is not committed yet"
    spool.commit(first, 3)
    assert spool.is_head(ahead)
    again = spool.read(3)
    assert again is not None and ids(again) == ids(ahead)


def test_read_after_moves_to_the_next_segment(tmp_path: Path) -> None:
    lines = [line(f"s{i}", i) for i in range(6)]
    spool = spool_of(tmp_path, segment_max_bytes=len(lines[0]) * 3 + 10)
    assert spool.append(lines) == 6  # at most three lines per segment
    first = spool.read(10)
    assert first is not None and 0 < len(first.records) <= 3
    ahead = spool.read(10, after=first)
    assert ahead is not None and ahead.segment is not first.segment and ahead.start == 0
    assert ids(ahead) == ids(spool.read(10, after=first))
    bytes_before = spool.bytes
    freed = spool.commit(first, len(first.records))  # the first segment is used up and deleted
    assert freed > 0 and spool.bytes == bytes_before - freed
    assert spool.is_head(ahead)
    spool.commit(ahead, len(ahead.records))
    assert spool.read(10, after=ahead) is None or spool.has_data
    while (batch := spool.read(10)) is not None:  # what the last segment holds
        spool.commit(batch, len(batch.records))
    assert spool.bytes == 0 and not spool.has_data
    assert spool.read(10, after=ahead) is None and spool.read(10) is None


def test_a_read_ahead_goes_stale_when_something_lands_before_it(tmp_path: Path) -> None:
    spool = spool_of(tmp_path)
    spool.append([line(f"t{i}", i) for i in range(6)])
    first = spool.read(2)
    assert first is not None
    ahead = spool.read(2, after=first)
    assert ahead is not None
    spool.commit(first, 1)  # partly stored: the rest of the first batch comes next
    assert not spool.is_head(ahead)
    rest = spool.read(2)
    assert rest is not None and ids(rest)[:1] == ids(first)[1:]
    ahead = spool.read(2, after=rest)
    assert ahead is not None
    spool.commit(rest, 2)  # now the read-ahead batch is next ...
    assert spool.is_head(ahead)
    assert spool.prepend([line("older", 99)])  # ... until a failed batch goes in front
    assert not spool.is_head(ahead)
    head = spool.read(1)
    assert head is not None and ids(head)[0].startswith("older-")


def test_read_after_leaves_a_torn_tail_to_the_head_read(tmp_path: Path) -> None:
    spool = spool_of(tmp_path)
    spool.append([line("whole", 1)])
    first = spool.read(5)
    assert first is not None
    segment = first.segment
    with open(segment.path, "ab") as handle:  # half a line, as a crash leaves it
        handle.write(b"2 {\"run\": ")
    segment.size += 10
    spool.bytes += 10
    assert spool.read(5, after=first) is None
    assert spool.bytes == segment.size and segment.path.exists(), "nothing dropped by it"
    spool.commit(first, 1)
    assert spool.read(5) is None and spool.bytes == 0  # the head read drops the torn tail


class PreparingStore(MemoryStore):
    """A store with ``prepare_batch``: counts which batches were written prepared."""

    accepts_serialized_records = True

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.prepared_writes = 0
        self.prepare_threads: set[int] = set()

    def prepare_batch(self, records: Sequence[AnyRecord]) -> list[AnyRecord]:
        self.prepare_threads.add(threading.get_ident())
        return list(records)

    def write_prepared(self, prepared: list[AnyRecord]) -> None:
        if self.down:
            raise TransientStoreError("injected: store down")
        self.write_batch(prepared)  # type: ignore[arg-type]
        self.prepared_writes += 1

    def write_batch(self, records: Sequence[AnyRecord]) -> None:  # type: ignore[override]
        if self.down:
            raise TransientStoreError("injected: store down")
        super().write_batch(records)  # type: ignore[arg-type]


def test_the_writer_replays_the_spool_with_batches_prepared_ahead(tmp_path: Path) -> None:
    store = PreparingStore()
    store.down = True
    config = WriterConfig(spool_dir=tmp_path / "spool", flush_interval_s=0.02,
                          batch_max_events=10, max_queue_events=40, retry_max_attempts=2,
                          retry_initial_backoff_s=0.001, retry_max_backoff_s=0.01)
    writer = BackgroundWriter(store, config)
    try:
        records = [make_record("ahead") for _ in range(300)]
        for record in records:
            assert writer.offer(record)
            while writer.stats().queue_events >= 30:  # let the spill thread spool them
                time.sleep(0.002)
        assert writer.stats().spool_events > 200
        store.down = False
        assert writer.flush(30)
    finally:
        writer.close(5)
    assert sorted(store.rows) == sorted(r.id for r in records)
    assert max(store.commits.values()) == 1, "a record written twice"
    # Most spooled batches were encoded ahead, on a thread other than the writer's.
    assert store.prepared_writes >= writer.stats().replayed // 10 - 3
    assert store.prepare_threads and not store.prepare_threads & store.threads
    stats = writer.stats()
    assert stats.replayed == stats.spooled and stats.balanced()


class TrapStore(PreparingStore):
    """Rejects ``poison`` for good; when the records right after it are written alone
    (the store bisecting a batch), goes down for ``outage_writes`` writes."""

    def __init__(self) -> None:
        super().__init__()
        self.poison: set[str] = set()
        self.trigger: list[str] = []
        self.outage_writes = 0

    def write_batch(self, records: Sequence[AnyRecord]) -> None:  # type: ignore[override]
        ids = [str(r.id) for r in records]
        if ids == self.trigger:
            self.trigger, self.outage_writes = [], 4
        if self.outage_writes > 0:
            self.outage_writes -= 1
            raise TransientStoreError("injected: down in the middle of a batch")
        if self.poison & set(ids):
            raise PermanentStoreError("injected: poison record")
        super().write_batch(records)


def test_a_batch_read_ahead_is_not_used_after_a_partly_stored_batch(tmp_path: Path) -> None:
    # Spool batch 2 (read ahead: batch 3) holds a poison record; while the writer
    # bisects it the store goes down, so only part of batch 2 is stored. Batch 3,
    # read ahead, must not be replayed next: that would skip the rest of batch 2.
    store = TrapStore()
    store.down = True
    config = WriterConfig(spool_dir=tmp_path / "spool", flush_interval_s=0.02,
                          batch_max_events=10, max_queue_events=40, retry_max_attempts=2,
                          retry_initial_backoff_s=0.001, retry_max_backoff_s=0.01)
    writer = BackgroundWriter(store, config)
    try:
        records = [make_record("trap") for _ in range(60)]
        for record in records:
            assert writer.offer(record)
            while writer.stats().queue_events >= 30:  # let the spill thread spool them
                time.sleep(0.002)
        order = spooled_ids(config.resolved_spool_dir("default"))
        assert len(order) >= 30, "at least three batches wait on disk"
        store.poison, store.trigger = {order[17]}, order[18:20]
        store.down = False
        assert writer.flush(30)
    finally:
        writer.close(5)
    stats = writer.stats()
    assert store.outage_writes == 0 and not store.trigger, "the trap went off"
    assert stats.dead_lettered == 1 and stats.balanced()
    assert sorted(store.rows) == sorted({r.id for r in records} - {order[17]})
    assert max(store.commits.values()) == 1


def spooled_ids(root: Path) -> list[str]:
    """Record ids on the spool in replay order (segments by number, lines in order)."""
    found = []
    for path in sorted(root.rglob("*.jsonl")):
        for raw in path.read_bytes().splitlines(keepends=True):
            if raw.endswith(b"\n"):
                found.append(json.loads(raw.partition(b" ")[2])["run"]["id"])
    return found
