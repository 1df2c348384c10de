"""``trail.quality()`` and ``trail.drift()`` on the scale database (``scale_traces`` RAG
traces of 10 runs: 1,000,000 runs by default), against issue 27's targets on SQLite:
quality at most 2 s, drift at most 5 s.

The database is the one ``--only scale`` generates and keeps (generated here when
missing, migrated like a user's). Quality reads everything stored (no ``since``, the
worst case); drift compares the first half of the 90 days with the second. Each is run
``repeats`` times: the first pass reads pages from disk, the next ones find them cached.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ._common import Sizes, say
from ._data import SPAN, START

#: Issue 27's targets (seconds, SQLite, 1,000,000 runs).
TARGETS_S = {"quality": 2.0, "drift": 5.0}


def run(sizes: Sizes, cache_dir: Path, *, repeats: int = 2) -> dict[str, Any]:
    from ragtrail import Trail

    try:
        import scipy  # noqa: F401
    except ImportError as exc:
        return {"skipped": f"drift needs the drift extra ({exc.name} is missing)"}
    from ragtrail.store import upgrade_database

    from . import _scale

    traces = sizes.scale_traces
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{_scale._key(traces)}.db"
    url = f"sqlite:///{path}"
    if path.exists() and not _scale._complete(sa.create_engine(url)):
        path.unlink()
    out: dict[str, Any] = {"traces": traces, "runs": traces * 10, "targets_s": TARGETS_S}
    if not path.exists():
        say(f"quality: generating {traces:,} traces for the scale database")
        out["generate_s"] = _scale._generate(url, traces)
    start = time.perf_counter()
    upgrade_database(url)  # an older database: migrated (0010 fills the summaries)
    out["upgrade_s"] = time.perf_counter() - start
    middle = START + SPAN / 2
    with Trail.open_readonly(url) as trail:
        timings: dict[str, list[float]] = {"quality": [], "drift": []}
        for _ in range(repeats):
            start = time.perf_counter()
            report = trail.quality()
            timings["quality"].append(time.perf_counter() - start)
            start = time.perf_counter()
            found = trail.drift(baseline=(START, middle), current=(middle, START + SPAN))
            timings["drift"].append(time.perf_counter() - start)
        engine = trail._store.engine
        out["ceilings_s"] = _ceilings(engine, middle)
        out["rows_only_s"] = _rows_only(engine, middle)
        out["quality_groups"] = len(report.groups)
        out["drift_comparisons"] = len(found.comparisons)
        out["drift_findings"] = len(found.findings)
    for name, samples in timings.items():
        out[name] = {"first_s": samples[0], "median_s": statistics.median(samples),
                     "n": len(samples), "met": statistics.median(samples) <= TARGETS_S[name]}
        say(f"  {name:8} first {samples[0]:7.2f} s  median {statistics.median(samples):7.2f} s"
            f"  (target <= {TARGETS_S[name]} s)")
    return out


def _ceilings(engine: sa.Engine, middle: Any) -> dict[str, float]:
    """In the same run: counting the window's runs (the bare index pass any row-backed
    report needs at least) and reading every summary row."""
    from ragtrail.store import _tables

    runs, rollup = _tables.runs, _tables.quality_rollup
    out: dict[str, float] = {}
    statements = {
        "count_runs_first_half": sa.select(sa.func.count()).select_from(runs).where(
            runs.c.started_at >= START, runs.c.started_at < middle),
        "read_quality_rollup": sa.select(sa.func.count(), sa.func.sum(rollup.c.n)),
    }
    with engine.connect() as conn:
        for name, stmt in statements.items():
            begin = time.perf_counter()
            conn.execute(stmt).all()
            out[name] = time.perf_counter() - begin
            say(f"  ceiling {name:24} {out[name]:7.3f} s")
    return out


def _rows_only(engine: sa.Engine, middle: Any) -> dict[str, float]:
    """The same reports from the stored rows alone (``summaries=False``), once each."""
    from ragtrail.query import drift, quality

    out: dict[str, float] = {}
    begin = time.perf_counter()
    quality(engine, summaries=False)
    out["quality"] = time.perf_counter() - begin
    begin = time.perf_counter()
    drift(engine, baseline=(START, middle), current=(middle, START + SPAN), summaries=False)
    out["drift"] = time.perf_counter() - begin
    say(f"  rows only: quality {out['quality']:.2f} s, drift {out['drift']:.2f} s")
    return out
