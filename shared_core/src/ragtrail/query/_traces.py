"""``traces(engine, ...)``: recent root runs, newest first, with their token and cost totals."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError
from ..schemas import RunStatus, bounded_key
from ..store import _tables
from ..store._payloads import run_columns
from ._common import answer_of, chunks, excerpt, question_of, sum_cost, time_filters
from ._evaluations import not_evaluation
from ._models import TraceSummary

__all__ = ["roots_statement", "traces"]

_runs = _tables.runs
_calls = _tables.llm_calls
#: Characters of the question kept in a summary.
QUESTION_EXCERPT_CHARS = 200


def _conditions(
    *,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    app_name: str | None = None,
    user_hash: str | None = None,
    session_id: str | None = None,
    status: RunStatus | str | None = None,
    model: str | None = None,
    include_evaluations: bool = False,
) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = [_runs.c.parent_id.is_(None)]
    if not include_evaluations:  # judges' own traces
        conditions.append(not_evaluation(_runs.c.request_type))
    conditions += time_filters(_runs.c.started_at, since, until)
    for column, value in (
        (_runs.c.app_name, app_name),
        (_runs.c.user_hash, user_hash),
        (_runs.c.session_id, session_id),
    ):
        if value is not None:
            conditions.append(column == bounded_key(value))  # stored bounded when long
    if status is not None:
        try:
            conditions.append(_runs.c.status == RunStatus(status).value)
        except ValueError:
            valid = ", ".join(s.value for s in RunStatus)
            raise ConfigError(f"unknown status {status!r}; use one of {valid}") from None
    if model is not None:
        conditions.append(
            sa.exists().where(
                _calls.c.trace_id == _runs.c.trace_id,
                _calls.c.provider_model == bounded_key(model),
            )
        )
    return conditions


def roots_statement(*, limit: int, **filters: Any) -> sa.Select[Any]:
    """Root runs matching ``filters`` (see :func:`traces`), newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    return (
        sa.select(*run_columns(_runs))
        .where(*_conditions(**filters))
        .order_by(_runs.c.started_at.desc(), _runs.c.id.desc())
        .limit(limit)
    )


def _call_totals(conn: Connection, trace_ids: list[str]) -> dict[str, list[Any]]:
    by_trace: dict[str, list[Any]] = defaultdict(list)
    columns = (_calls.c.trace_id, _calls.c.provider_model, _calls.c.total_tokens,
               _calls.c.total_cost)
    for batch in chunks(trace_ids):
        for row in conn.execute(sa.select(*columns).where(_calls.c.trace_id.in_(batch))):
            by_trace[row.trace_id].append(row)
    return by_trace


def traces(
    engine: Engine,
    *,
    limit: int = 20,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    app_name: str | None = None,
    user_hash: str | None = None,
    session_id: str | None = None,
    status: RunStatus | str | None = None,
    model: str | None = None,
    include_evaluations: bool = False,
) -> list[TraceSummary]:
    """Root runs newest first, filtered by every argument given.

    ``since`` is inclusive and ``until`` exclusive (naive datetimes are UTC);
    ``model`` keeps traces holding an LLM call of that model. Judges' traces
    (``request_type="evaluation"``) are left out unless ``include_evaluations``.
    """
    stmt = roots_statement(limit=limit, since=since, until=until, app_name=app_name,
                           user_hash=user_hash, session_id=session_id, status=status, model=model,
                           include_evaluations=include_evaluations)
    with engine.connect() as conn:
        roots = conn.execute(stmt).all()
        totals = _call_totals(conn, [row.trace_id for row in roots])
    return [_summary(row, totals.get(row.trace_id, [])) for row in roots]


def _summary(row: Any, calls: list[Any]) -> TraceSummary:
    total_cost: Decimal | None
    total_cost, unpriced = sum_cost(call.total_cost for call in calls)
    models = sorted({call.provider_model for call in calls if call.provider_model})
    return TraceSummary(
        trace_id=row.id,
        name=row.name,
        kind=row.kind,
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_ms=row.duration_ms,
        app_name=row.app_name,
        app_version=row.app_version,
        user_hash=row.user_hash,
        session_id=row.session_id,
        llm_calls=len(calls),
        total_tokens=sum(call.total_tokens or 0 for call in calls),
        total_cost=total_cost,
        unpriced_calls=unpriced,
        models=models,
        question=excerpt(question_of(row.inputs), QUESTION_EXCERPT_CHARS),
        answer=excerpt(answer_of(row.outputs), QUESTION_EXCERPT_CHARS),
    )
