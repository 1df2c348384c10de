"""``quality()`` and ``drift()`` answer from the per-day summaries (``quality_rollup``)
exactly as from the stored rows alone.

Hypothesis builds windows of RAG traces (models, templates, failures, streamed calls,
judges' traces, tenants, sessions; on both sides of midnight UTC), delivers their records
in random batches (a root before or after its LLM call, batches retried), then erases a
session, purges by age and purges a tenant. After each step both reports are read with
and without the summaries, over windows of whole days and of parts of days, on SQLite and
PostgreSQL: the quality reports must be equal, the drift reports equal to 9 decimals (their
means are sums of floats added in another order), every example id a stored one, and the
summaries what a rebuild from the rows gives.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quality_support import TEMPLATE_V2, Window, records

from ragtrail.governance import erase
from ragtrail.governance.retention import purge
from ragtrail.query import drift, quality
from ragtrail.schemas import CapturedRun
from ragtrail.store import SqlStore, open_store
from ragtrail.testing.internals import store_retention, store_summaries, store_tables

UTC = timezone.utc
#: 20:00 UTC: traces every 37 minutes cross midnight into the next UTC day.
BASE = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 11, tzinfo=UTC)
#: Whole days (from the summaries), parts of days (from the rows), open ends.
WINDOWS: list[tuple[Any, Any]] = [
    (None, None), (MIDNIGHT, None), (MIDNIGHT - timedelta(days=1), MIDNIGHT),
    (BASE + timedelta(minutes=50), MIDNIGHT + timedelta(hours=2, minutes=7)),
]
GROUPINGS = [("app_name",), ("model",), ("template", "provider")]
DRIFT_GROUPINGS = [("app_name",), ("template", "provider")]
DRIFTS = [((None, MIDNIGHT), (MIDNIGHT, None)),
          ((BASE, MIDNIGHT + timedelta(hours=1)), (MIDNIGHT + timedelta(hours=1), None))]

window_st = st.fixed_dictionaries({
    "count": st.integers(1, 12),
    "minutes": st.integers(0, 400),
    "app": st.sampled_from(["support", "search"]),
    "model": st.sampled_from(["gpt-4o-mini", "gpt-4o"]),
    "v2": st.booleans(),
    "error_share": st.sampled_from([0.0, 0.3, 1.0]),
    "streamed": st.booleans(),
    "temperature": st.sampled_from([0.2, 0.7]),
    "score_mean": st.sampled_from([0.5, 0.8]),
    "judge": st.booleans(),
    "tenant": st.none() | st.sampled_from(["acme", "globex"]),
})


def _records(index: int, spec: dict[str, Any]) -> list[CapturedRun]:
    window = Window(BASE + timedelta(minutes=spec["minutes"]), count=spec["count"],
                    step=timedelta(minutes=37), app=spec["app"], model=spec["model"],
                    template=TEMPLATE_V2 if spec["v2"] else Window.template,
                    error_share=spec["error_share"], streamed=spec["streamed"],
                    temperature=spec["temperature"], score_mean=spec["score_mean"],
                    seed=index)
    out = records(window)
    for rec in out:
        rec.run.tenant = spec["tenant"]
        if spec["judge"]:
            rec.run.request_type = "evaluation"
    return out


def _deliver(store: SqlStore, found: list[CapturedRun], rng: random.Random) -> None:
    """In random batches and order; some batches written twice (a retried write)."""
    rng.shuffle(found)
    while found:
        size = rng.randint(1, 7)
        batch, found = found[:size], found[size:]
        store.write_batch(batch)
        if rng.random() < 0.25:
            store.write_batch(batch)


def _rounded(report: Any) -> Any:
    return json.loads(json.dumps(report.model_dump(), default=str),
                      parse_float=lambda text: round(float(text), 9))


def _differences(engine: sa.Engine) -> list[Any]:
    """Every report that differs between the two ways of reading it."""
    out: list[Any] = []
    for since, until in WINDOWS:
        for keys in GROUPINGS:
            summed = quality(engine, since=since, until=until, group_by=keys)
            if summed != quality(engine, since=since, until=until, group_by=keys,
                                 summaries=False):
                out.append(("quality", since, until, keys))
            if not _real_examples(engine, summed):
                out.append(("examples not stored", since, until, keys))
    for baseline, current in DRIFTS:
        for keys in DRIFT_GROUPINGS:
            summed = drift(engine, baseline=baseline, current=current, group_by=keys)
            raw = drift(engine, baseline=baseline, current=current, group_by=keys,
                        summaries=False)
            if _rounded(summed) != _rounded(raw):
                out.append(("drift", baseline, current, keys))
    return out


def _real_examples(engine: sa.Engine, report: Any) -> bool:
    """Every example id of ``report`` is a stored run's."""
    shown = {i for group in report.groups for f in group.figures for i in f.example_ids}
    runs = store_tables.runs
    with engine.connect() as conn:
        stored = set(conn.execute(sa.select(runs.c.id).where(runs.c.id.in_(shown))).scalars())
    return shown == stored


def _summary_rows(conn: sa.Connection) -> dict[str, tuple[Any, ...]]:
    table = store_tables.quality_rollup
    # Buckets emptied by a recomputation may stay (n = 0): read as absent.
    return {row.bucket: tuple(round(v, 6) if isinstance(v, float) else v for v in row)
            for row in conn.execute(sa.select(table).where(table.c.n > 0))}


def _wipe(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(store_tables.metadata.sorted_tables):
            conn.execute(sa.delete(table))


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = open_store(db_url)
    yield opened
    opened.close()


@pytest.mark.timeout(900)  # five reports read both ways after each of five steps
@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(windows=st.lists(window_st, min_size=1, max_size=4), seed=st.integers(0, 2**16),
       erased=st.integers(0, 9), purged_tenant=st.sampled_from(["acme", "globex"]))
def test_summaries_answer_like_the_rows_through_writes_and_deletes(
    store: SqlStore, windows: list[dict[str, Any]], seed: int, erased: int,
    purged_tenant: str,
) -> None:
    engine = store.engine
    _wipe(engine)
    found = [rec for index, spec in enumerate(windows) for rec in _records(index, spec)]
    _deliver(store, found, random.Random(seed))
    assert _differences(engine) == []
    erase(engine, session_id=f"s-{erased}")
    assert _differences(engine) == []
    store.purge(before=MIDNIGHT + timedelta(hours=1))
    assert _differences(engine) == []
    purge(engine, older_than=timedelta(days=1), tenant=purged_tenant)
    assert _differences(engine) == []
    # Rebuilt from the rows, the summaries are what the store kept.
    with engine.begin() as conn:
        kept = _summary_rows(conn)
        store_summaries.rebuild(conn)
        assert _summary_rows(conn) == kept


def test_the_comparison_fails_when_deletes_leave_the_summaries(
        store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a store that no longer keeps the summaries when it deletes
    traces answers differently from its rows."""
    spec = {"count": 12, "minutes": 0, "app": "support", "model": "gpt-4o", "v2": False,
            "error_share": 0.3, "streamed": False, "temperature": 0.2, "score_mean": 0.8,
            "judge": False, "tenant": None}
    store.write_batch(_records(0, spec))
    assert _differences(store.engine) == []
    monkeypatch.setattr(store_retention, "forget_days", lambda conn, days: None)
    store.purge(before=MIDNIGHT)
    assert _differences(store.engine) != []


def test_a_root_stored_before_its_answer_moves_to_answered(store: SqlStore) -> None:
    spec = {"count": 3, "minutes": 0, "app": "support", "model": "gpt-4o", "v2": False,
            "error_share": 0.0, "streamed": False, "temperature": 0.2, "score_mean": 0.8,
            "judge": False, "tenant": None}
    found = _records(0, spec)
    roots = [rec for rec in found if rec.run.parent_id is None]
    store.write_batch(roots)
    group = quality(store.engine).groups[0]
    assert group.figure("answers_grounded").denominator == 0
    store.write_batch([rec for rec in found if rec.run.parent_id is not None])
    group = quality(store.engine).groups[0]
    assert (group.figure("answers_grounded").count,
            group.figure("answers_grounded").denominator) == (3, 3)
    assert _differences(store.engine) == []
