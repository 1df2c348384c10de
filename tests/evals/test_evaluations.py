"""Evaluations linked to traces, on SQLite and PostgreSQL: the public API of issue 22.

Traces and judge traces are recorded through the Trail's own Recorder (manual runs and
LLM calls with provider usage, priced by ragtrail), so what is checked is what the
writer really stores.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from ragtrail import Trail
from ragtrail.errors import ConfigError
from ragtrail.evals import Evaluation, EvaluationSource, judge_trace
from ragtrail.pricing import Pricer
from ragtrail.query import judge_cost_by_provider
from ragtrail.schemas import LLMTokenUsage, RunKind
from ragtrail.testing.internals import store_tables

OPENAI_USAGE = {"input_tokens": 900, "output_tokens": 100, "total_tokens": 1000}
ANTHROPIC_USAGE = {"input_tokens": 3000, "output_tokens": 500, "total_tokens": 3500}


@pytest.fixture
def trail(db_url: str) -> Iterator[Trail]:
    with Trail(db_url) as opened:
        yield opened


def _answer(trail: Trail, question: str = "what is WAL?") -> tuple[str, str]:
    """A stored trace (root chain + a retriever child); returns (trace id, child id)."""
    with trail.run("rag", inputs={"question": question}) as root:
        with trail.run("retrieve", kind="retriever", parent_id=root.id) as child:
            child.set_outputs(["doc"])
        root.set_outputs({"answer": "WAL lets readers go on."})
    trail.flush()
    return root.id, child.id


def _llm_call(trail: Trail, provider: str, model: str, usage: dict[str, int]) -> None:
    """One LLM call started without a parent (a judge's call inside judge_trace)."""
    with trail.run(f"{provider} call", kind=RunKind.LLM) as run:
        trail.recorder.update_llm(run.id, {"provider": provider, "provider_model": model,
                                           "token_usage": usage})


def _judged(trail: Trail, trace_id: str, calls: list[tuple[str, str, dict[str, int]]],
            name: str = "faithfulness", score: float = 0.9) -> Evaluation:
    with judge_trace(trail.recorder, evaluated_trace_id=trace_id, name=name,
                     vendor_name="custom") as judge:
        for provider, model, usage in calls:
            _llm_call(trail, provider, model, usage)
    evaluation_id = trail.add_evaluation(trace_id, name, score=score, source="llm",
                                         judge_trace_id=judge.id)
    (found,) = [e for e in trail.evaluations(trace_id) if e.id == evaluation_id]
    return found


def _cost(model: str, usage: dict[str, int], provider: str) -> Decimal:
    cost = Pricer().cost(LLMTokenUsage(**usage), model=model, provider=provider).total_cost
    assert cost is not None
    return cost


def test_add_and_read_back_every_field(trail: Trail) -> None:
    trace_id, child_id = _answer(trail)
    evaluation_id = trail.add_evaluation(
        child_id, "helpfulness", score=0.75, label="good", passed=True,
        explanation="clear", source="human", vendor_name="Arize Phoenix",
        vendor_version="4.0", document_id="doc-1", metadata={"reviewer": "ann"})
    (found,) = trail.evaluations(trace_id)
    assert found.id == evaluation_id
    assert (found.trace_id, found.run_id, found.document_id) == (trace_id, child_id, "doc-1")
    assert (found.name, found.score, found.label, found.passed) == ("helpfulness", 0.75,
                                                                   "good", True)
    assert (found.explanation, found.source, found.vendor_name, found.vendor_version) == (
        "clear", EvaluationSource.HUMAN, "Arize Phoenix", "4.0")
    assert found.metadata == {"reviewer": "ann"}
    assert found.judge is None and found.judge_trace_id is None and found.error is None
    assert trail.lineage(child_id).evaluations == [found]


def test_evaluation_id_is_an_upsert_key(trail: Trail) -> None:
    trace_id, _ = _answer(trail)
    trail.add_evaluation(trace_id, "tone", score=0.1, evaluation_id="e-1")
    trail.add_evaluation(trace_id, "tone", score=0.9, evaluation_id="e-1")
    assert [(e.id, e.score) for e in trail.evaluations(trace_id)] == [("e-1", 0.9)]


def test_a_target_not_stored_yet_shows_once_its_trace_is(trail: Trail) -> None:
    run_id = "not-yet-stored"
    trail.add_evaluation(run_id, "later", passed=False)
    assert trail.evaluations() == []
    with trail.run("rag", inputs="q", run_id=run_id):
        pass
    trail.flush()
    (found,) = trail.evaluations(run_id)
    assert (found.trace_id, found.run_id, found.passed) == (run_id, run_id, False)


@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"score": math.nan}, "score"),
    ({"score": math.inf}, "score"),
    ({"score": "high"}, "score"),
    ({"label": "x" * 201}, "label"),
    ({"passed": "yes"}, "passed"),
    ({"score": 1.0, "source": "robot"}, "source"),
    ({}, "at least one of score, label or passed"),
    ({"score": 1.0, "vendor_name": ""}, "vendor_name"),
])
def test_bad_arguments_are_named(trail: Trail, kwargs: dict[str, object], argument: str
                                 ) -> None:
    trace_id, _ = _answer(trail)
    with pytest.raises(ConfigError, match=argument):
        trail.add_evaluation(trace_id, "bad", **kwargs)  # type: ignore[arg-type]
    assert trail.evaluations(trace_id) == []


def test_unknown_vendor_is_added_to_the_catalog(trail: Trail) -> None:
    trace_id, _ = _answer(trail)
    with trail.store.engine.connect() as conn:
        before = set(conn.execute(sa.select(store_tables.vendors.c.name)).scalars())
    assert before == {"DeepEval", "Ragas", "MLflow", "Deepchecks", "Arize Phoenix",
                      "LlamaIndex", "custom"}
    trail.add_evaluation(trace_id, "x", score=1, vendor_name="Galileo")
    trail.add_evaluation(trace_id, "y", score=1, vendor_name="Galileo")
    with trail.store.engine.connect() as conn:
        rows = {row.name: row.builtin for row in conn.execute(sa.select(store_tables.vendors))}
    assert rows["Galileo"] is False and rows["Ragas"] is True and len(rows) == 8
    assert [e.vendor_name for e in trail.evaluations(vendor_name="Galileo")] == ["Galileo"] * 2


def test_explanations_are_redacted(trail: Trail) -> None:
    trace_id, _ = _answer(trail)
    trail.add_evaluation(trace_id, "pii", passed=False,
                         explanation="the answer leaked ann@example.com",
                         metadata={"note": "call +1 415 555 0100"})
    (found,) = trail.evaluations(trace_id)
    assert found.explanation is not None and "ann@example.com" not in found.explanation
    assert "555 0100" not in str(found.metadata)


def test_judge_metadata_is_summed_over_the_judge_trace(trail: Trail) -> None:
    trace_id, _ = _answer(trail)
    found = _judged(trail, trace_id, [("openai", "gpt-4o-mini", OPENAI_USAGE),
                                      ("openai", "gpt-4o-mini", OPENAI_USAGE)])
    judge = found.judge
    assert judge is not None and found.judge_trace_id is not None
    assert (judge.provider, judge.provider_model) == ("openai", "gpt-4o-mini")
    assert judge.token_usage == LLMTokenUsage(input_tokens=1800, output_tokens=200,
                                              total_tokens=2000)
    assert judge.cost_metrics is not None
    assert judge.cost_metrics.total_cost == 2 * _cost("gpt-4o-mini", OPENAI_USAGE, "openai")
    # The judge's trace is its own, marked as an evaluation, below its root.
    judge_lineage = trail.lineage(found.judge_trace_id)
    assert {run.request_type for run in judge_lineage.runs} == {"evaluation"}
    assert len(judge_lineage.llm_calls) == 2
    assert judge_lineage.root is not None
    assert judge_lineage.root.metadata["evaluated_trace_id"] == trace_id


def test_judge_traces_are_left_out_of_traces_usage_and_answers(trail: Trail) -> None:
    trace_id, _ = _answer(trail)
    _llm_call(trail, "openai", "gpt-4o-mini", OPENAI_USAGE)  # the application's own call
    found = _judged(trail, trace_id, [("anthropic", "claude-3-5-haiku-latest",
                                       ANTHROPIC_USAGE)])
    listed = {t.trace_id for t in trail.traces(limit=50)}
    assert trace_id in listed and found.judge_trace_id not in listed
    assert found.judge_trace_id in {t.trace_id for t in trail.traces(
        limit=50, include_evaluations=True)}
    app = trail.usage(["provider"])
    assert [(row.group["provider"], row.total_tokens) for row in app] == [("openai", 1000)]
    both = trail.usage(["provider"], include_evaluations=True)
    assert [row.group["provider"] for row in both] == ["anthropic", "openai"]
    judges = trail.usage(["provider"], request_type="evaluation")
    assert [(row.group["provider"], row.total_tokens) for row in judges] == [
        ("anthropic", 3500)]
    assert judges[0].total_cost == _cost("claude-3-5-haiku-latest", ANTHROPIC_USAGE,
                                         "anthropic")


def test_the_seeds_three_queries(trail: Trail) -> None:
    trace_id, _ = _answer(trail)
    small = _judged(trail, trace_id, [("openai", "gpt-4o-mini", OPENAI_USAGE)], name="a")
    big = _judged(trail, trace_id, [("anthropic", "claude-3-5-haiku-latest",
                                     ANTHROPIC_USAGE)], name="b")
    trail.add_evaluation(trace_id, "human", score=1, source="human")
    assert [e.id for e in trail.evaluations(judge_provider="openai")] == [small.id]
    assert [e.id for e in trail.evaluations(judge_model="claude-3-5-haiku-latest")] == [big.id]
    assert [e.id for e in trail.evaluations(min_judge_tokens=2000)] == [big.id]
    assert {e.id for e in trail.evaluations(min_judge_tokens=1000)} == {small.id, big.id}
    assert [e.name for e in trail.evaluations(source="human")] == ["human"]
    costs = {row.provider: row for row in judge_cost_by_provider(trail.store.engine)}
    assert set(costs) == {"anthropic", "openai"}
    assert costs["openai"].total_cost == _cost("gpt-4o-mini", OPENAI_USAGE, "openai")
    assert (costs["anthropic"].evaluations, costs["anthropic"].total_tokens) == (1, 3500)


def test_the_seeds_queries_use_their_indexes(sqlite_url: str) -> None:
    with Trail(sqlite_url) as trail:
        _answer(trail)
        engine = trail.store.engine
        ev = store_tables.evaluations
        queries = {
            "ix_evaluations_judge_provider_judge_total_cost":
                sa.select(ev.c.id).where(ev.c.judge_provider == "openai"),
            "ix_evaluations_judge_total_tokens":
                sa.select(ev.c.id).where(ev.c.judge_total_tokens >= 5000),
        }
        with engine.connect() as conn:
            for index, query in queries.items():
                sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
                plan = " ".join(str(row) for row in conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {sql}"))
                assert index in plan, plan
            by_provider = sa.select(ev.c.judge_provider, sa.func.sum(ev.c.judge_total_cost)
                                    ).where(ev.c.judge_provider.is_not(None)).group_by(
                ev.c.judge_provider)
            sql = str(by_provider.compile(engine))
            plan = " ".join(str(row) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            assert "COVERING INDEX ix_evaluations_judge_provider_judge_total_cost" in plan, plan


def test_judge_metadata_is_jsonb_with_a_gin_index_on_postgres(pg_url: str) -> None:
    with Trail(pg_url) as trail:
        trace_id, _ = _answer(trail)
        found = _judged(trail, trace_id, [("openai", "gpt-4o-mini", OPENAI_USAGE)])
        with trail.store.engine.connect() as conn:
            kind = conn.execute(sa.text(
                "select data_type from information_schema.columns where "
                "table_name = 'evaluations' and column_name = 'judge' "
                "and table_schema = current_schema()")).scalar()
            indexes = conn.execute(sa.text(
                "select indexdef from pg_indexes where tablename = 'evaluations' "
                "and schemaname = current_schema()")).scalars().all()
            hit = conn.execute(sa.text(
                "select id from evaluations where judge @> '{\"provider\": \"openai\"}'"
            )).scalars().all()
    assert kind == "jsonb"
    assert any("USING gin (judge)" in index for index in indexes)
    assert hit == [found.id]


def test_purge_deletes_evaluations_and_their_judge_traces(trail: Trail) -> None:
    from datetime import datetime, timedelta, timezone

    trace_id, child_id = _answer(trail)
    kept_id, _ = _answer(trail, "kept?")
    found = _judged(trail, trace_id, [("openai", "gpt-4o-mini", OPENAI_USAGE)])
    trail.add_evaluation(child_id, "child", score=1)
    kept = trail.add_evaluation(kept_id, "kept", score=1)
    with trail.store.engine.begin() as conn:  # only the evaluated trace is old
        conn.execute(sa.update(store_tables.runs).where(store_tables.runs.c.trace_id == trace_id)
                     .values(started_at=datetime(2020, 1, 1, tzinfo=timezone.utc)))
    assert trail.store.purge(before=datetime.now(timezone.utc) - timedelta(days=1)) == 1
    # The evaluated trace and its judge's (whose root is newer) both went.
    with trail.store.engine.connect() as conn:
        left = set(conn.execute(sa.select(store_tables.runs.c.trace_id)).scalars())
        evaluations = set(conn.execute(sa.select(store_tables.evaluations.c.id)).scalars())
    assert left == {kept_id}
    assert found.judge_trace_id not in left
    assert evaluations == {kept}


def test_reevaluating_with_the_same_name_replaces_and_drops_the_old_judge(trail: Trail) -> None:
    trace_id, _ = _answer(trail)
    first = _judged(trail, trace_id, [("openai", "gpt-4o-mini", OPENAI_USAGE)], score=0.2)
    second = _judged(trail, trace_id, [("openai", "gpt-4o-mini", OPENAI_USAGE)], score=0.8)
    assert first.id == second.id
    assert [e.score for e in trail.evaluations(trace_id)] == [0.8]
    assert first.judge_trace_id is not None
    with trail.store.engine.connect() as conn:
        gone = conn.execute(sa.select(sa.func.count()).select_from(store_tables.runs).where(
            store_tables.runs.c.trace_id == first.judge_trace_id)).scalar()
    assert gone == 0


def test_run_coroutine_inside_a_running_loop_keeps_the_context() -> None:
    import asyncio
    import contextvars

    from ragtrail.evals import run_coroutine

    active: contextvars.ContextVar[str | None] = contextvars.ContextVar("active", default=None)

    async def read() -> str | None:
        return active.get()

    async def caller() -> str | None:  # e.g. a notebook's loop
        active.set("judge-run")
        return run_coroutine(read())

    assert asyncio.run(caller()) == "judge-run"
    assert run_coroutine(read()) is None
