"""Issue test 8: 4 processes write 20,000 records each into one SQLite file, and into
PostgreSQL: every record is present once and the integrity check passes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragtrail.store import open_store
from reliability._db import run_id_counts

pytestmark = pytest.mark.reliability

HERE = Path(__file__).resolve().parent
PROCESSES = 4
PER_PROCESS = 20_000


def test_four_processes_share_one_database(db_url: str, tmp_path: Path) -> None:
    open_store(db_url).close()  # created once, before the writers race for it
    spool_dir = tmp_path / "spool"  # shared, like the default spool of one database
    start = time.monotonic()
    children = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_child_multi.py"), db_url, str(spool_dir), f"mp{n}-",
             str(PER_PROCESS), str(tmp_path / f"ids{n}.txt")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(PROCESSES)
    ]
    outputs = [child.communicate(timeout=400) for child in children]
    elapsed = time.monotonic() - start
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err[-2000:]
    stats = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    offered = [
        (tmp_path / f"ids{n}.txt").read_text().split("\n") for n in range(PROCESSES)
    ]
    counts = run_id_counts(db_url, "mp")
    store = open_store(db_url)
    try:
        assert store.integrity_check()
    finally:
        store.close()
    print(f"\nmulti-process: {PROCESSES} x {PER_PROCESS} in {elapsed:.1f} s; retried "
          f"{[s['retried'] for s in stats]}, spooled {[s['spooled'] for s in stats]}")
    expected = [record_id for ids in offered for record_id in ids]
    assert all(s["stored"] == PER_PROCESS and s["dropped_total"] == 0 for s in stats), stats
    assert len(expected) == PROCESSES * PER_PROCESS
    assert sorted(counts) == sorted(expected) and max(counts.values()) == 1
