"""``usage(engine, group_by=...)``: tokens and cost of LLM calls, grouped.

A call with no known price (``total_cost`` NULL) is counted in ``unpriced_calls``
and never added to ``total_cost`` as zero. ``day`` is the UTC day of the call's
start, ``YYYY-MM-DD`` on both backends.

Answers come from the pre-aggregated ``usage_rollup`` (see ``store._rollups``) when it
holds the grouping asked for (no user or session): whole UTC days from it, the parts of
a day at either end of [since, until) from the LLM calls; otherwise from the LLM calls
alone. Both give identical rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError
from ..store import _tables
from ..store._types import utc_day
from ._common import excerpt, parse_time, time_filters
from ._evaluations import EVALUATION_REQUEST_TYPE, judge_trace_ids
from ._models import UsageRow

__all__ = ["GROUP_KEYS", "usage"]

_calls = _tables.llm_calls
_run = _tables.runs.alias("call_run")
_root = _tables.runs.alias("root_run")


def _context(column: str) -> sa.ColumnElement[Any]:
    # App context is read from the call's own run, else from its trace's root.
    return sa.func.coalesce(_run.c[column], _root.c[column])


#: group_by key -> SQL expression it groups on.
GROUP_KEYS: dict[str, sa.ColumnElement[Any]] = {
    "model": _calls.c.provider_model,
    "provider": _calls.c.provider,
    "template": _calls.c.prompt_template_hash,
    "day": utc_day(_calls.c.started_at),
    "app_name": _context("app_name"),
    "user": _context("user_hash"),
    "session": _context("session_id"),
    # "ingestion" for the traces an ingestion pipeline started (LlamaIndex).
    "request_type": _context("request_type"),
}
_NEEDS_RUNS = {"app_name", "user", "session", "request_type"}
_TOKENS = ("input", "output", "total", "cache_read", "cache_creation", "reasoning")


def _keys(group_by: Sequence[str] | str) -> list[str]:
    raw = group_by.split(",") if isinstance(group_by, str) else list(group_by)
    keys = [str(key).strip() for key in raw if str(key).strip()]
    unknown = [key for key in keys if key not in GROUP_KEYS]
    if unknown:
        raise ConfigError(
            f"cannot group usage by {', '.join(map(repr, unknown))}; "
            f"use any of {', '.join(GROUP_KEYS)}"
        )
    return list(dict.fromkeys(keys))


def usage(
    engine: Engine,
    *,
    group_by: Sequence[str] | str,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    request_type: str | None = None,
    include_evaluations: bool = False,
) -> list[UsageRow]:
    """Tokens and cost of the LLM calls started in [since, until), per group.

    ``group_by``: any of ``model, provider, app_name, user, session, day, template,
    request_type``
    (a list, or one string, comma-separated); empty gives one row for everything.
    Rows come ordered by their group values (None last). Calls made by judges
    (runs with ``request_type="evaluation"``) are left out unless
    ``include_evaluations``; ``request_type`` keeps only calls of that request type
    (``"evaluation"``: the judges' spend alone).
    """
    keys = _keys(group_by)
    plan = _plan(keys, since, until, request_type, include_evaluations)
    with engine.connect() as conn:
        totals: dict[tuple[Any, ...], dict[str, Any]] = {}
        for stmt in plan:
            for found in conn.execute(stmt):
                _sum_into(totals, keys, found._mapping)
        rows = [_row(keys, data) for data in totals.values()]
        if "template" in keys:
            names = _template_names(conn, {r.group["template"] for r in rows} - {None})
            for row in rows:
                row.template_name = names.get(row.group["template"])
    # Sorted here, not in SQL: NULL placement and collation differ between backends.
    rows.sort(key=lambda row: [(value is None, value or "") for value in row.group.values()])
    return rows


_rollup = _tables.usage_rollup
#: group_by key -> the usage_rollup column holding it (user and session are not there).
ROLLUP_KEYS: dict[str, sa.ColumnElement[Any]] = {
    "model": _rollup.c.provider_model,
    "provider": _rollup.c.provider,
    "template": _rollup.c.prompt_template_hash,
    "day": _rollup.c.day,
    "app_name": _rollup.c.app_name,
    "request_type": _rollup.c.request_type,
}


def _day_bound(value: datetime | str | None, name: str) -> str | None:
    """``value``'s UTC day when it is midnight UTC, else ValueError (not a day bound)."""
    moment = parse_time(value, name)
    if moment is None:
        return None
    if moment.timetz().replace(tzinfo=None) != time(0):
        raise ValueError(name)
    return moment.date().isoformat()


def _sum_into(totals: dict[tuple[Any, ...], dict[str, Any]], keys: list[str],
              data: Any) -> None:
    """Add one result row (of one of the plan's statements) to its group's totals."""
    if not data["calls"]:  # no group: one row of NULL sums over nothing
        return
    group = tuple(data[f"g_{index}"] for index in range(len(keys)))
    entry = totals.get(group)
    if entry is None:
        totals[group] = dict(data)
        return
    for name in ("calls", "priced_calls", *_TOKENS):
        entry[name] += data[name]
    if data["total_cost"] is not None:
        cost = entry["total_cost"]
        entry["total_cost"] = data["total_cost"] if cost is None else cost + data["total_cost"]


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _plan(keys: list[str], since: datetime | str | None, until: datetime | str | None,
          request_type: str | None, include_evaluations: bool) -> list[sa.Select[Any]]:
    """Statements whose rows, summed per group, answer the query: the rollup for the
    whole UTC days in [since, until) and the calls for the parts of a day at either end;
    the calls alone when the rollup cannot help (a grouping it lacks, less than a day)."""
    calls = [_from_calls(keys, since, until, request_type, include_evaluations)]
    if not set(keys) <= set(ROLLUP_KEYS):
        return calls
    start, end = parse_time(since, "since"), parse_time(until, "until")
    first = None if start is None else _midnight(start)
    if first is not None and start is not None and first < start:
        first += timedelta(days=1)
    last = None if end is None else _midnight(end)
    if first is not None and last is not None and first >= last:
        return calls
    plan = [_from_rollup(keys, first, last, request_type, include_evaluations)]
    if start is not None and first is not None and start < first:
        plan.append(_from_calls(keys, start, first, request_type, include_evaluations))
    if end is not None and last is not None and last < end:
        plan.append(_from_calls(keys, last, end, request_type, include_evaluations))
    return [stmt for stmt in plan if stmt is not None]


def _from_rollup(keys: list[str], since: datetime | str | None,
                 until: datetime | str | None, request_type: str | None,
                 include_evaluations: bool) -> sa.Select[Any] | None:
    """The usage query over ``usage_rollup``, or None when it cannot answer it."""
    if not set(keys) <= set(ROLLUP_KEYS):
        return None
    try:
        start, end = _day_bound(since, "since"), _day_bound(until, "until")
    except ValueError:
        return None
    wanted: list[sa.ColumnElement[bool]] = []
    if start is not None:
        wanted.append(_rollup.c.day >= start)
    if end is not None:
        wanted.append(_rollup.c.day < end)
    # As in the query over the calls: a request type is the call's own run's; the
    # judges' calls are those of judges' traces.
    if request_type == EVALUATION_REQUEST_TYPE:
        wanted.append(_rollup.c.judge.is_(True))
    elif request_type is not None:
        wanted.append(_rollup.c.run_request_type == request_type)
    elif not include_evaluations:
        wanted.append(_rollup.c.judge.is_(False))
    groups = [ROLLUP_KEYS[key].label(f"g_{index}") for index, key in enumerate(keys)]
    priced = sa.func.sum(_rollup.c.priced_calls)
    measures = [
        sa.func.sum(_rollup.c.calls).label("calls"),
        priced.label("priced_calls"),
        # NULL when no call is priced, as SUM over the calls' NULL costs gives.
        sa.case((priced > 0, sa.func.sum(_rollup.c.total_cost)), else_=sa.null())
        .label("total_cost"),
        *(sa.func.sum(_rollup.c[f"{name}_tokens"]).label(name) for name in _TOKENS),
    ]
    return sa.select(*groups, *measures).where(*wanted).group_by(*groups)


def _from_calls(keys: list[str], since: datetime | str | None,
                until: datetime | str | None, request_type: str | None,
                include_evaluations: bool) -> sa.Select[Any]:
    """The usage query over the LLM calls themselves (every grouping and filter)."""
    groups = [GROUP_KEYS[key].label(f"g_{index}") for index, key in enumerate(keys)]
    measures = [
        sa.func.count().label("calls"),
        sa.func.count(_calls.c.total_cost).label("priced_calls"),
        sa.func.sum(_calls.c.total_cost).label("total_cost"),
        *(sa.func.coalesce(sa.func.sum(_calls.c[f"{name}_tokens"]), 0).label(name)
          for name in _TOKENS),
    ]
    source: sa.FromClause = _calls
    wanted = time_filters(_calls.c.started_at, since, until)
    # Request type is a run's (inherited by every run of a trace). The judges' traces are
    # found by their roots in a small partial index: no join of every call to its run.
    by_run = request_type is not None and request_type != EVALUATION_REQUEST_TYPE
    if request_type == EVALUATION_REQUEST_TYPE:
        wanted.append(_calls.c.trace_id.in_(judge_trace_ids()))
    elif by_run:
        wanted.append(_run.c.request_type == request_type)
    elif not include_evaluations:
        wanted.append(_calls.c.trace_id.not_in(judge_trace_ids()))
    if _NEEDS_RUNS.intersection(keys):
        source = _calls.outerjoin(_run, _run.c.id == _calls.c.run_id).outerjoin(
            _root, _root.c.id == _calls.c.trace_id
        )
    elif by_run:
        source = _calls.outerjoin(_run, _run.c.id == _calls.c.run_id)
    return (
        sa.select(*groups, *measures)
        .select_from(source)
        .where(*wanted)
        .group_by(*groups)
    )


#: Characters of a template's first line used as its name.
TEMPLATE_LINE_CHARS = 80


def template_label(metadata: Any) -> str | None:
    """A template's name from an LLM call's stored metadata: the name the framework gave
    it, else the first non-blank line of its text (at most :data:`TEMPLATE_LINE_CHARS`)."""
    if not isinstance(metadata, dict):
        return None
    name = metadata.get("prompt_template_name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    text = metadata.get("prompt_template")
    if not isinstance(text, str):
        return None
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return excerpt(line, TEMPLATE_LINE_CHARS) or None


def _template_names(conn: Connection, hashes: set[str]) -> dict[str, str]:
    """Name of each template hash, from its newest call (one indexed lookup per hash)."""
    names: dict[str, str] = {}
    for template_hash in sorted(hashes):
        metadata = conn.execute(
            sa.select(_calls.c.metadata)
            .where(_calls.c.prompt_template_hash == template_hash)
            .order_by(_calls.c.started_at.desc())
            .limit(1)
        ).scalar_one_or_none()
        label = template_label(metadata)
        if label is not None:
            names[template_hash] = label
    return names


def _row(keys: list[str], data: Any) -> UsageRow:
    calls, priced = int(data["calls"]), int(data["priced_calls"])
    return UsageRow(
        group={key: data[f"g_{index}"] for index, key in enumerate(keys)},
        calls=calls,
        priced_calls=priced,
        unpriced_calls=calls - priced,
        total_cost=data["total_cost"],
        **{f"{name}_tokens": int(data[name]) for name in _TOKENS},
    )
