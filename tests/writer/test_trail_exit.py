"""A Trail that is never closed: at interpreter exit its open runs are stored as
abandoned and everything it captured is written, whatever its sink; a forked child
does not store its parent's open runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragtrail import Trail

CHILD = Path(__file__).resolve().parent / "_trail_exit_child.py"


def _run_child(url: str, mode: str) -> None:
    done = subprocess.run([sys.executable, str(CHILD), url, mode], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _stored(url: str) -> dict[str, list[str]]:
    with Trail(url) as trail:
        summaries = trail.traces(limit=50)
        return {s.name: [r.status.value for r in trail.lineage(s.trace_id).runs]
                for s in summaries}


@pytest.mark.parametrize("mode", ["background", "sync"])
def test_exit_stores_open_runs_as_abandoned_and_writes_what_was_not_flushed(
        tmp_path: Path, mode: str) -> None:
    url = f"sqlite:///{tmp_path / 'exit.db'}"
    _run_child(url, mode)
    assert _stored(url) == {"finished-run": ["ok"], "open-at-exit": ["abandoned"]}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_store_its_parents_open_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fork.db'}"
    _run_child(url, "fork")
    # The child left while the parent's run was open: the run is the parent's to end.
    assert _stored(url) == {"parent-run": ["ok"], "child-run": ["ok"]}
