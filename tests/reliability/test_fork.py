"""Issue test 9: records offered before and after a fork are stored exactly once.

The parent has records queued (not yet written) when it forks; the child must not
write them again, and both processes keep working. Every committed batch is logged
with the writing process's id, so a record written twice would show.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from ragtrail.store import open_store
from ragtrail.writer import BackgroundWriter, WriterConfig
from reliability._db import run_id_counts
from reliability._factory import make_record
from reliability._stores import LoggingStore

pytestmark = [pytest.mark.reliability,
              pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")]


def offer(writer: BackgroundWriter, prefix: str, count: int) -> list[str]:
    records = [make_record(prefix) for _ in range(count)]
    assert all(writer.offer(r) for r in records)
    return [r.id for r in records]


def test_fork_stores_everything_exactly_once(db_url: str, tmp_path: Path) -> None:
    open_store(db_url).close()
    log_path = str(tmp_path / "writes.log")
    # A long flush interval keeps the parent's records queued across the fork.
    config = WriterConfig(spool_dir=tmp_path / "spool", flush_interval_s=3600)
    writer = BackgroundWriter(lambda: LoggingStore(open_store(db_url), log_path), config)
    assert all(writer.offer(make_record("fkwarm")) for _ in range(5)) and writer.flush(30)
    before = offer(writer, "fkbefore", 2_000)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child = offer(writer, "fkchild", 1_000)
            stats = writer.stats()
            ok = stats.offered == len(child) and writer.close(60)
            code = 0 if ok and writer.stats().stored == len(child) else 2
        finally:
            os._exit(code)
    after = offer(writer, "fkafter", 1_000)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert writer.close(60)

    writes = Counter(line.split()[1] for line in Path(log_path).read_text().splitlines())
    by_process = Counter(line.split()[0] for line in Path(log_path).read_text().splitlines())
    counts = run_id_counts(db_url, "fk")
    child_ids = {i for i in counts if i.startswith("fkchild")}
    print(f"\nfork: parent pid {os.getpid()} and child pid {pid} wrote {dict(by_process)}")
    assert len(child_ids) == 1_000
    expected = set(before) | set(after) | child_ids
    assert set(counts) - {i for i in counts if i.startswith("fkwarm")} == expected
    assert max(counts.values()) == 1
    assert all(writes[i] == 1 for i in expected), "a record was written twice"
    assert by_process[str(pid)] == 1_000  # the child wrote only its own records
