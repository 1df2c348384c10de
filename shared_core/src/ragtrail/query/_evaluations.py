"""Evaluations of traces: the :class:`Evaluation` model and the queries reading them.

An evaluation row keeps the judge's LLM metadata summed over the judge's own trace
(``judge``) and its provider, total tokens and total cost in indexed columns, so the
three questions of the LLM metadata guide are one indexed query each:

- evaluations whose judge is a provider: ``judge_provider = ?`` (index on provider);
- evaluations whose judge used more than N tokens: ``judge_total_tokens >= ?`` (index);
- judge cost summed by provider: :func:`judge_cost_by_provider`, read from the
  ``(judge_provider, judge_total_cost)`` index alone.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError
from ..schemas import (
    LLMCostMetrics,
    LLMMetadata,
    LLMPerformanceMetrics,
    LLMTokenUsage,
    bounded_key,
)
from ..store import _tables
from ._common import llm_call_from_row, time_filters

__all__ = [
    "EVALUATION_REQUEST_TYPE",
    "Evaluation",
    "EvaluationSource",
    "JudgeCost",
    "evaluations",
    "evaluations_of_trace",
    "judge_cost_by_provider",
    "judge_summary",
    "not_evaluation",
]

#: ``request_type`` of the traces judges make (left out of traces, usage, answers_using).
EVALUATION_REQUEST_TYPE = "evaluation"

_ev = _tables.evaluations
_runs = _tables.runs
_calls = _tables.llm_calls
_target = _tables.runs.alias("target_run")


class EvaluationSource(str, enum.Enum):
    """Who judged: a person, an LLM judge, or code (a heuristic, a test, a metric)."""

    HUMAN = "human"
    LLM = "llm"
    CODE = "code"


class Evaluation(BaseModel):
    """One evaluation of a trace (or of one run or retrieved document of it)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    trace_id: str
    run_id: str = Field(description="The run evaluated (the trace id for a whole trace).")
    document_id: str | None = Field(None, description="Set for a document-level evaluation.")
    name: str
    score: float | None = None
    label: str | None = None
    passed: bool | None = None
    explanation: str | None = None
    error: str | None = Field(None, description="Why the evaluator failed (no result then).")
    source: EvaluationSource
    vendor_name: str
    vendor_version: str | None = None
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    judge_trace_id: str | None = Field(None, description="The judge's own trace.")
    judge: LLMMetadata | None = Field(
        None, description="The judge's LLM metadata summed over its trace's LLM calls: "
                          "provider and model of its first call, tokens and cost summed.")


class JudgeCost(BaseModel):
    """Judge tokens and cost of the evaluations judged by one provider."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    evaluations: int
    total_tokens: int
    total_cost: Decimal | None = Field(None, description="Priced judges only; None if none.")


def not_evaluation(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """``column`` (a request_type) is not the judges' one (NULL counts as not)."""
    return sa.or_(column.is_(None), column != EVALUATION_REQUEST_TYPE)


# -- the judge's metadata ----------------------------------------------------------------


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _sum_fields(models: Iterable[Any], fields: Iterable[str]) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for model in models:
        if model is None:
            continue
        for name in fields:
            totals[name] = _add(totals.get(name), getattr(model, name))
    return {k: v for k, v in totals.items() if v is not None}


def summarise_judge(calls: list[LLMMetadata]) -> LLMMetadata | None:
    """One :class:`LLMMetadata` for a judge's calls (in start order): the first call's
    provider, model, parameters and response; tokens, cost buckets and durations summed.

    The total cost is the sum of the priced calls; with an unpriced call among them the
    price status is the unpriced one's, so a partial sum is never shown as complete.
    """
    if not calls:
        return None
    first = calls[0]
    usage = _sum_fields((c.token_usage for c in calls), LLMTokenUsage.model_fields)
    money = ("input_cost", "output_cost", "cache_read_cost", "cache_write_cost",
             "reasoning_cost", "total_cost")
    costs = [c.cost_metrics for c in calls]
    cost: dict[str, Any] = _sum_fields(costs, money)
    known = [c for c in costs if c is not None]
    if known:
        unpriced = next((c for c in known if c.total_cost is None), None)
        chosen = unpriced or known[0]
        cost.update({k: getattr(chosen, k) for k in ("currency", "price_status")
                     if getattr(chosen, k) is not None})
    perf = _sum_fields((c.performance_metrics for c in calls),
                       ("total_duration_ms", "queue_time_ms", "processing_time_ms"))
    return LLMMetadata(
        provider=first.provider,
        provider_model=first.provider_model,
        token_usage=LLMTokenUsage(**usage) if usage else None,
        cost_metrics=LLMCostMetrics(**cost) if cost else None,
        performance_metrics=LLMPerformanceMetrics(**perf) if perf else None,
        request_parameters=first.request_parameters,
        response_metadata=first.response_metadata,
        request_timestamp=first.request_timestamp,
        response_timestamp=calls[-1].response_timestamp,
        provider_specific={"llm_calls": len(calls)},
    )


def judge_summary(conn: Connection, judge_trace_id: str) -> LLMMetadata | None:
    """The summed metadata of the LLM calls stored for ``judge_trace_id`` (None: none)."""
    rows = list(conn.execute(sa.select(_calls).where(_calls.c.trace_id == judge_trace_id)
                             .order_by(_calls.c.started_at, _calls.c.run_id)))
    return summarise_judge([llm_call_from_row(row).metadata for row in rows])


# -- reading -----------------------------------------------------------------------------


def _resolved_trace() -> sa.ColumnElement[Any]:
    """The evaluated trace: as stored, else the stored run's trace, else the id itself
    when runs of a trace with that id are stored (NULL: nothing of the target yet)."""
    trace_named = sa.exists().where(_runs.c.trace_id == _ev.c.run_id)
    return sa.case(
        (_ev.c.trace_id.is_not(None), _ev.c.trace_id),
        (_target.c.trace_id.is_not(None), _target.c.trace_id),
        (trace_named, _ev.c.run_id),
        else_=sa.null(),
    )


def _statement(conditions: list[sa.ColumnElement[bool]], limit: int | None) -> sa.Select[Any]:
    trace = _resolved_trace().label("resolved_trace_id")
    stmt = (
        sa.select(_ev, trace)
        .select_from(_ev.outerjoin(_target, _target.c.id == _ev.c.run_id))
        .where(*conditions, trace.is_not(None))
        .order_by(_ev.c.created_at.desc(), _ev.c.id.desc())
    )
    return stmt.limit(limit) if limit is not None else stmt


def _evaluation(row: Any) -> Evaluation:
    data = dict(row._mapping)
    judge = data.get("judge")
    return Evaluation(
        id=data["id"], trace_id=data["resolved_trace_id"], run_id=data["run_id"],
        document_id=data["document_id"], name=data["name"], score=data["score"],
        label=data["label"], passed=data["passed"], explanation=data["explanation"],
        error=data["error"], source=EvaluationSource(data["source"]),
        vendor_name=data["vendor_name"], vendor_version=data["vendor_version"],
        created_at=data["created_at"], metadata=data["metadata"] or {},
        judge_trace_id=data["judge_trace_id"],
        judge=LLMMetadata.model_validate(judge) if judge else None,
    )


def _trace_condition(trace_id: str) -> sa.ColumnElement[bool]:
    key = bounded_key(trace_id)
    return sa.or_(_ev.c.trace_id == key,
                  sa.and_(_ev.c.trace_id.is_(None), _resolved_trace() == key))


def evaluations_of_trace(conn: Connection, trace_id: str) -> list[Evaluation]:
    """Every evaluation of ``trace_id``, newest first."""
    return [_evaluation(row) for row in conn.execute(
        _statement([_trace_condition(trace_id)], None))]


def evaluations(
    engine: Engine,
    trace_id: str | None = None,
    *,
    name: str | None = None,
    vendor_name: str | None = None,
    source: EvaluationSource | str | None = None,
    judge_provider: str | None = None,
    judge_model: str | None = None,
    min_judge_tokens: int | None = None,
    since: datetime | str | None = None,
    limit: int | None = 100,
) -> list[Evaluation]:
    """Evaluations newest first, filtered by every argument given.

    ``trace_id`` is the evaluated trace's id; ``min_judge_tokens`` keeps evaluations
    whose judge used at least that many tokens in all. An evaluation whose target is not
    stored yet is left out until it is.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}")
    conditions: list[sa.ColumnElement[bool]] = time_filters(_ev.c.created_at, since, None)
    if trace_id is not None:
        conditions.append(_trace_condition(trace_id))
    for column, value in ((_ev.c.name, name), (_ev.c.vendor_name, vendor_name),
                          (_ev.c.judge_provider, judge_provider),
                          (_ev.c.judge_model, judge_model)):
        if value is not None:
            conditions.append(column == bounded_key(str(value)))
    if source is not None:
        conditions.append(_ev.c.source == coerce_source(source).value)
    if min_judge_tokens is not None:
        if isinstance(min_judge_tokens, bool) or not isinstance(min_judge_tokens, int):
            raise ConfigError(f"min_judge_tokens must be an integer, got {min_judge_tokens!r}")
        conditions.append(_ev.c.judge_total_tokens >= min_judge_tokens)
    with engine.connect() as conn:
        return [_evaluation(row) for row in conn.execute(_statement(conditions, limit))]


def coerce_source(source: EvaluationSource | str) -> EvaluationSource:
    """``source`` as an :class:`EvaluationSource`; ConfigError naming the valid ones."""
    try:
        return EvaluationSource(source)
    except ValueError:
        valid = ", ".join(s.value for s in EvaluationSource)
        raise ConfigError(f"source must be one of {valid}, got {source!r}") from None


def judge_cost_by_provider(engine: Engine, *, since: datetime | str | None = None
                           ) -> list[JudgeCost]:
    """Judge tokens and cost summed by the judge's provider (evaluations with a judge)."""
    stmt = (
        sa.select(_ev.c.judge_provider, sa.func.count().label("n"),
                  sa.func.coalesce(sa.func.sum(_ev.c.judge_total_tokens), 0).label("tokens"),
                  sa.func.sum(_ev.c.judge_total_cost).label("cost"))
        .where(_ev.c.judge_provider.is_not(None),
               *time_filters(_ev.c.created_at, since, None))
        .group_by(_ev.c.judge_provider)
        .order_by(_ev.c.judge_provider)
    )
    with engine.connect() as conn:
        return [JudgeCost(provider=row.judge_provider, evaluations=row.n,
                          total_tokens=int(row.tokens), total_cost=row.cost)
                for row in conn.execute(stmt)]


def evaluation_by_id(engine: Engine, evaluation_id: str) -> Evaluation | None:
    """One evaluation by id (None: unknown, or its target is not stored yet)."""
    with engine.connect() as conn:
        row = conn.execute(_statement([_ev.c.id == evaluation_id], 1)).first()
    return _evaluation(row) if row is not None else None
