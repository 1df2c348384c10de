"""Issue test 7: a process that flushed 10,000 records and is then killed with SIGKILL
(while its writer is busy) leaves a database that opens, passes an integrity check and
holds every flushed record.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ragtrail.store import open_store
from reliability._db import run_id_counts

pytestmark = pytest.mark.reliability

HERE = Path(__file__).resolve().parent


def test_sigkill_after_flush_loses_nothing_flushed(db_url: str, tmp_path: Path) -> None:
    ids_path = tmp_path / "flushed.txt"
    result = subprocess.run(
        [sys.executable, str(HERE / "_child_crash.py"), db_url, str(tmp_path / "spool"),
         str(ids_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    flushed = ids_path.read_text().split("\n")
    assert len(flushed) == 10_000

    store = open_store(db_url)  # opens: not left locked or half-migrated
    try:
        assert store.integrity_check()
    finally:
        store.close()
    counts = run_id_counts(db_url, "crash")
    after = run_id_counts(db_url, "after")
    print(f"\ncrash: {len(flushed)} flushed, {len(counts)} present; {sum(after.values())} "
          "records written between the flush and the kill")
    assert set(flushed) <= set(counts) and max(counts.values()) == 1
