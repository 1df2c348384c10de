"""Pre-aggregated usage (``usage_rollup``) answers exactly like the query over the calls.

Hypothesis builds traces (judges' traces, unpriced calls, several tenants, calls on both
sides of midnight UTC, roots that never arrive, calls whose own run sets the app or
request type and calls that inherit them from the root), delivers their records in random
batches (children and roots in any order, batches retried), then erases sessions, purges
by age and purges a tenant. After each step every grouping and filter the rollup holds is
read both ways, on SQLite and PostgreSQL, and must be identical.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragtrail.governance import erase
from ragtrail.governance.retention import purge
from ragtrail.query import usage
from ragtrail.schemas import (
    CapturedRun,
    LLMCostMetrics,
    LLMMetadata,
    LLMTokenUsage,
    Run,
    RunKind,
)
from ragtrail.store import SqlStore, open_store
from ragtrail.testing.internals import query_usage, store_rollups, store_tables

UTC = timezone.utc
#: 22:00 UTC: calls up to four hours later fall on the next UTC day.
BASE = datetime(2024, 3, 10, 22, 0, tzinfo=UTC)
GROUPINGS = [(), ("app_name",), ("request_type", "model"),
             ("model", "provider", "template", "day"), ("day", "app_name")]
FILTERS: list[dict[str, Any]] = [
    {}, {"include_evaluations": True}, {"request_type": "evaluation"},
    {"request_type": "query", "since": "2024-03-11"}, {"until": datetime(2024, 3, 11)},
    {"since": "2024-03-10T00:00:00Z", "until": "2024-03-11T00:00:00+00:00",
     "include_evaluations": True},
    # Parts of a day at either end: those parts from the calls, whole days from the rollup.
    {"since": "2024-03-10T22:45:00Z"}, {"until": "2024-03-11T01:30:00.5+00:00"},
    {"since": "2024-03-09T23:59:59Z", "until": "2024-03-11T00:00:01Z",
     "request_type": "evaluation"},
]
#: Less than a day, or by session: from the calls alone.
CALLS_ONLY: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    ((), {"since": "2024-03-10T23:00:00Z", "until": "2024-03-11T01:00:00Z"}),
    (("session", "model"), {}),
]


def calls_only(keys: list[str], since: Any, until: Any, request_type: str | None,
               include_evaluations: bool) -> list[sa.Select[Any]]:
    """The query plan of ``usage()`` before the rollup: the calls alone."""
    return [query_usage._from_calls(keys, since, until, request_type, include_evaluations)]


def _reads_rollup(keys: tuple[str, ...], filters: dict[str, Any]) -> bool:
    plan = query_usage._plan(list(keys), filters.get("since"), filters.get("until"),
                        filters.get("request_type"), filters.get("include_evaluations", False))
    return any("usage_rollup" in str(stmt) for stmt in plan)

call_st = st.fixed_dictionaries({
    "model": st.none() | st.sampled_from(["gpt-4o-mini", "claude-3-5-haiku"]),
    "provider": st.none() | st.sampled_from(["openai", "anthropic"]),
    "template": st.none() | st.sampled_from(["t" * 64, "u" * 64]),
    "cost": st.none() | st.decimals(min_value=0, max_value=Decimal("0.5"), places=10),
    "tokens": st.none() | st.integers(min_value=0, max_value=5000),
    "minutes": st.integers(min_value=0, max_value=240),
    "app": st.none() | st.sampled_from(["support-bot", "other-app"]),
    "request_type": st.none() | st.sampled_from(["query", "evaluation", "ingestion"]),
})
trace_st = st.fixed_dictionaries({
    "root_stored": st.booleans(),
    "app": st.none() | st.sampled_from(["support-bot", "other-app", "judge-app"]),
    "request_type": st.none() | st.sampled_from(["query", "evaluation", "ingestion"]),
    "tenant": st.none() | st.sampled_from(["acme", "globex"]),
    "session": st.sampled_from(["s1", "s2", "s3"]),
    "minutes": st.integers(min_value=0, max_value=240),
    "calls": st.lists(call_st, min_size=0, max_size=4),
})


def _records(index: int, trace: dict[str, Any]) -> tuple[CapturedRun, list[CapturedRun]]:
    tid = f"trace-{index}"
    start = BASE + timedelta(minutes=trace["minutes"])
    root = Run(id=tid, trace_id=tid, parent_id=None, path=tid, kind=RunKind.CHAIN,
               name="chain", started_at=start, app_name=trace["app"],
               request_type=trace["request_type"], tenant=trace["tenant"],
               session_id=trace["session"])
    children = []
    for number, call in enumerate(trace["calls"]):
        at = BASE + timedelta(minutes=call["minutes"], microseconds=number)
        run = Run(id=f"{tid}-llm{number}", trace_id=tid, parent_id=tid,
                  path=f"{tid}.{number}", kind=RunKind.LLM, name="llm", started_at=at,
                  app_name=call["app"], request_type=call["request_type"],
                  tenant=trace["tenant"], session_id=trace["session"])
        tokens = call["tokens"]
        meta = LLMMetadata(
            provider=call["provider"], provider_model=call["model"],
            prompt_template_hash=call["template"],
            token_usage=LLMTokenUsage(
                input_tokens=tokens, output_tokens=None if tokens is None else tokens // 3,
                total_tokens=None if tokens is None else tokens + tokens // 3,
                cache_read_tokens=tokens and tokens // 7, reasoning_tokens=tokens and 1),
            cost_metrics=LLMCostMetrics(total_cost=call["cost"]))
        children.append(CapturedRun(run=run, llm=meta))
    return CapturedRun(run=root), children


def _deliver(store: SqlStore, records: list[CapturedRun], rng: random.Random) -> None:
    """In random batches and order; some batches written twice (a retried write)."""
    rng.shuffle(records)
    while records:
        size = rng.randint(1, 6)
        batch, records = records[:size], records[size:]
        store.write_batch(batch)
        if rng.random() < 0.25:
            store.write_batch(batch)


def _both_ways(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [(keys, filters) for keys in GROUPINGS for filters in FILTERS]
    for keys, filters in cases + CALLS_ONLY:
        assert _reads_rollup(keys, filters) is ((keys, filters) not in CALLS_ONLY)
        rolled = usage(engine, group_by=keys, **filters)
        with monkeypatch.context() as patched:
            patched.setattr(query_usage, "_plan", calls_only)
            raw = usage(engine, group_by=keys, **filters)
        assert rolled == raw, (keys, filters)


def _wipe(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for table in reversed(store_tables.metadata.sorted_tables):
            conn.execute(sa.delete(table))


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    opened = open_store(db_url)
    yield opened
    opened.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(traces=st.lists(trace_st, min_size=1, max_size=8), seed=st.integers(0, 2**16),
       erased=st.sampled_from(["s1", "s2", "s3"]), purged_tenant=st.sampled_from(["acme", "globex"]))
def test_rollup_answers_like_the_calls_through_writes_and_deletes(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch, traces: list[dict[str, Any]], seed: int,
    erased: str, purged_tenant: str,
) -> None:
    engine = store.engine
    _wipe(engine)
    rng = random.Random(seed)
    records: list[CapturedRun] = []
    for index, trace in enumerate(traces):
        root, children = _records(index, trace)
        records += children + ([root] if trace["root_stored"] else [])
    _deliver(store, records, rng)
    _both_ways(engine, monkeypatch)
    erase(engine, session_id=erased)
    _both_ways(engine, monkeypatch)
    store.purge(before=BASE + timedelta(minutes=120))
    _both_ways(engine, monkeypatch)
    purge(engine, older_than=timedelta(days=1), tenant=purged_tenant)
    _both_ways(engine, monkeypatch)
    # Rebuilt from the calls, the rollup is what the store kept (no bucket drifted).
    with engine.begin() as conn:
        kept = _rollup_rows(conn)
        store_rollups.rebuild(conn)
        assert _rollup_rows(conn) == {k: v for k, v in kept.items() if v["calls"]}


def _rollup_rows(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    table = store_tables.usage_rollup
    return {row.bucket: dict(row._mapping) for row in conn.execute(sa.select(table))}


def test_usage_outside_the_rollup_still_answers(store: SqlStore) -> None:
    root, children = _records(0, {
        "root_stored": True, "app": "support-bot", "request_type": None, "tenant": None,
        "session": "s1", "minutes": 0,
        "calls": [{"model": "m", "provider": "p", "template": None, "cost": Decimal("0.1"),
                   "tokens": 10, "minutes": 30, "app": None, "request_type": None}]})
    store.write_batch([*children, root])
    # By session: answered from the calls.
    assert not _reads_rollup(("session",), {})
    [row] = usage(store.engine, group_by="session")
    assert (row.group, row.calls, row.total_cost) == ({"session": "s1"}, 1, Decimal("0.1"))
    assert usage(store.engine, group_by=(), since="2024-03-10T22:31:00Z") == []
