"""``quality(engine, ...)``: how complete the trail is, per group.

Every figure is ``count`` of ``denominator`` with a few example ids (runs or traces, to
open with ``ragtrail show ID``): for a figure where more is better (calls with token
usage) the examples are of what is missing, for one where less is better (runs that
failed) of what was found. Each level is one aggregate query grouped in SQL (LLM calls,
retrieval runs, answers and traces, runs); examples are the smallest and largest
matching id of each group, taken in the same pass (``MIN``/``MAX``), so nothing is read
row by row into Python. Each level reads an index that holds every column it needs
(revision 0009: ``ix_llm_calls_reports`` with the LLM metadata values promoted to
columns, ``ix_runs_kind_started_at`` with ``ix_document_links_reports``,
``ix_runs_roots_quality``, ``ix_runs_quality``), never the rows with their JSON.

Grouping: ``app_name`` groups every level (by the run's own application); ``model``,
``provider`` and ``template`` group the LLM-call figures, and the figures of the other
levels are reported once, under a group whose values are ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from ..errors import ConfigError
from ..schemas import DocStage, PriceStatus, RunKind, RunStatus
from ..store import _tables
from ._common import parse_time, time_filters
from ._evaluations import not_evaluation

__all__ = ["QUALITY_GROUP_KEYS", "QualityFigure", "QualityGroup", "QualityReport", "quality"]

_runs = _tables.runs
_calls = _tables.llm_calls
_links = _tables.document_links
_call_run = _tables.runs.alias("call_run")
#: An LLM call's run. A call is stored with its run's start time: joined on it too, the
#: lookup is served by ix_runs_call_context alone (id, start, application, request type)
#: where SQLite would otherwise take the primary key and read the run's whole row.
CALL_RUN_JOIN = sa.and_(_call_run.c.id == _calls.c.run_id,
                        _call_run.c.started_at == _calls.c.started_at)

#: group_by key -> column of an LLM call (joined with its run for the application).
_LLM_KEYS: dict[str, sa.ColumnElement[Any]] = {
    "app_name": _call_run.c.app_name,
    "model": _calls.c.provider_model,
    "provider": _calls.c.provider,
    "template": _calls.c.prompt_template_hash,
}
QUALITY_GROUP_KEYS = tuple(_LLM_KEYS)
_UNBOUNDED = 2**62


class _Result(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QualityFigure(_Result):
    """One completeness figure of one group."""

    name: str = Field(description="e.g. llm_with_token_usage, answers_grounded, runs_error.")
    description: str
    count: int = Field(description="How many have it (or, when lower_is_better, how many are it).")
    denominator: int = Field(description="Out of how many.")
    share: float | None = Field(description="count / denominator; None when nothing to count.")
    lower_is_better: bool = Field(
        False, description="True for figures that count a defect (errors, abandoned runs).")
    example_ids: list[str] = Field(
        default_factory=list,
        description="Ids to open with `ragtrail show`: of what is missing, or, when "
                    "lower_is_better, of what was counted.")


class QualityGroup(_Result):
    """The figures of one group (``group`` maps each group_by key to its value)."""

    group: dict[str, Any]
    figures: list[QualityFigure] = Field(default_factory=list)
    schema_versions: dict[str, int] = Field(
        default_factory=dict, description="Stored runs per record schema version.")

    def figure(self, name: str) -> QualityFigure:
        """The figure called ``name`` (KeyError when this group has none)."""
        for found in self.figures:
            if found.name == name:
                return found
        raise KeyError(name)


class QualityReport(_Result):
    """What share of what the trail should hold it holds, per group."""

    since: datetime | None
    until: datetime | None
    group_by: list[str]
    groups: list[QualityGroup] = Field(default_factory=list)

    def group(self, **values: Any) -> QualityGroup:
        """The group whose values are ``values`` (KeyError when there is none)."""
        for found in self.groups:
            if all(found.group.get(k) == v for k, v in values.items()):
                return found
        raise KeyError(values)


def _keys(group_by: Sequence[str] | str) -> list[str]:
    raw = group_by.split(",") if isinstance(group_by, str) else list(group_by)
    keys = [str(k).strip() for k in raw if str(k).strip()]
    unknown = [k for k in keys if k not in _LLM_KEYS]
    if unknown:
        raise ConfigError(f"cannot group quality by {', '.join(map(repr, unknown))}; "
                          f"use any of {', '.join(_LLM_KEYS)}")
    return list(dict.fromkeys(keys))


def _count(condition: sa.ColumnElement[bool], label: str) -> sa.Label[Any]:
    return sa.func.sum(sa.case((condition, 1), else_=0)).label(label)


def _examples(condition: sa.ColumnElement[bool], column: sa.ColumnElement[Any],
              label: str) -> list[sa.Label[Any]]:
    """The smallest and largest id matching ``condition`` (two examples, same pass)."""
    chosen = sa.case((condition, column), else_=None)
    return [sa.func.min(chosen).label(f"{label}_lo"), sa.func.max(chosen).label(f"{label}_hi")]


#: (name, description, condition on the row, lower_is_better, the calls it is counted
#: among: None for every call) per LLM-call figure.
_LLMFigure = tuple[str, str, sa.ColumnElement[bool], bool, sa.ColumnElement[bool] | None]


def _llm_figures() -> list[_LLMFigure]:
    status = _calls.c.price_status
    ttft = _calls.c.time_to_first_token_ms.is_not(None)
    # Calls stored before ``streamed`` was recorded: one with a time to first token streamed.
    streamed = sa.or_(_calls.c.streamed.is_(True), ttft)
    every: list[_LLMFigure] = [(*f, None) for f in [
        ("llm_with_token_usage", "LLM calls with token usage",
         _calls.c.total_tokens.is_not(None), False),
        ("llm_priced", "LLM calls with a known price", _calls.c.total_cost.is_not(None), False),
        ("llm_unpriced_unknown_model", "LLM calls unpriced: model not in the price list",
         status == PriceStatus.UNKNOWN_MODEL.value, True),
        ("llm_unpriced_no_usage", "LLM calls unpriced: no token usage reported",
         status == PriceStatus.NO_USAGE.value, True),
        ("llm_with_request_id", "LLM calls with the provider's request id",
         _calls.c.request_id.is_not(None), False),
        ("llm_with_finish_reason", "LLM calls with a finish reason",
         _calls.c.finish_reason.is_not(None), False),
        ("llm_with_model_version", "LLM calls with the exact model version that answered",
         _calls.c.model_version.is_not(None), False),
    ]]
    return [*every, ("llm_with_ttft", "Streamed LLM calls with a time to first token", ttft,
                     False, streamed)]


def _llm_level(conn: sa.Connection, keys: list[str], window: tuple[Any, Any]
               ) -> dict[tuple[Any, ...], list[QualityFigure]]:
    groups = [_LLM_KEYS[k].label(f"g_{i}") for i, k in enumerate(keys)]
    figures = _llm_figures()
    columns: list[Any] = [sa.func.count().label("n")]
    for name, _, cond, lower, among in figures:
        if among is not None:
            columns.append(_count(among, f"{name}_n"))
            cond = sa.and_(among, cond)
        columns.append(_count(cond, name))
        missing = cond if lower else sa.not_(cond)
        columns += _examples(missing if among is None else sa.and_(among, missing),
                             _calls.c.run_id, name)
    stmt = (sa.select(*groups, *columns)
            .select_from(_calls.join(_call_run, CALL_RUN_JOIN))
            .where(*time_filters(_calls.c.started_at, *window))
            .group_by(*groups))
    out: dict[tuple[Any, ...], list[QualityFigure]] = {}
    for row in conn.execute(stmt):
        data = row._mapping
        key = tuple(data[f"g_{i}"] for i in range(len(keys)))
        out[key] = [_figure(name, text, data, data["n" if among is None else f"{name}_n"],
                            lower) for name, text, _, lower, among in figures]
    return out


def _figure(name: str, text: str, data: Any, denominator: int, lower: bool) -> QualityFigure:
    count = int(data[name] or 0)
    examples = [str(v) for v in dict.fromkeys((data[f"{name}_lo"], data[f"{name}_hi"]))
                if v is not None]
    return QualityFigure(name=name, description=text, count=count, denominator=int(denominator),
                         share=count / denominator if denominator else None,
                         lower_is_better=lower, example_ids=examples)


def _retrieval_level(conn: sa.Connection, app: bool, window: tuple[Any, Any]
                     ) -> dict[Any, list[QualityFigure]]:
    """Retriever runs, and tool runs that returned documents: with ids, with scores."""
    # Per run, its retrieved links: three lookups of ix_document_links_reports (which holds
    # all they read) from each run of ix_runs_kind_started_at; nothing is sorted by run.
    own = sa.and_(_links.c.run_id == _runs.c.id, _links.c.stage == DocStage.RETRIEVED.value)

    def of_links(value: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
        return sa.select(value).where(own).scalar_subquery()

    per_run = (
        sa.select(
            _runs.c.id.label("run_id"), _runs.c.app_name.label("app_name"),
            _runs.c.kind.label("kind"),
            of_links(sa.func.count()).label("links"),
            # Without an id a document is stored under its content hash.
            sa.func.coalesce(of_links(sa.func.min(sa.case(
                (_links.c.document_id == _links.c.content_hash, 0), else_=1))), 1
            ).label("all_ids"),
            sa.func.coalesce(of_links(sa.func.max(sa.case(
                (_links.c.score.is_not(None), 1), else_=0))), 0).label("scored"),
        )
        .where(_runs.c.kind.in_([RunKind.RETRIEVER.value, RunKind.TOOL.value]),
               *time_filters(_runs.c.started_at, *window))
        # A bound that is never reached keeps SQLite from inlining the subquery (and its
        # lookups) into every aggregate that reads it: each lookup then runs once a run.
        .limit(_UNBOUNDED)
        .subquery()
    )
    counted = sa.or_(per_run.c.kind == RunKind.RETRIEVER.value, per_run.c.links > 0)
    with_ids = sa.and_(per_run.c.links > 0, per_run.c.all_ids == 1)
    scored = per_run.c.scored == 1
    group = [per_run.c.app_name.label("g")] if app else []
    stmt = (sa.select(*group, sa.func.count().label("n"),
                      _count(with_ids, "retrieval_with_document_ids"),
                      *_examples(sa.not_(with_ids), per_run.c.run_id,
                                 "retrieval_with_document_ids"),
                      _count(scored, "retrieval_with_scores"),
                      *_examples(sa.not_(scored), per_run.c.run_id, "retrieval_with_scores"))
            .where(counted).group_by(*group))
    out: dict[Any, list[QualityFigure]] = {}
    for row in conn.execute(stmt):
        data = row._mapping
        out[data["g"] if app else None] = [
            _figure("retrieval_with_document_ids", "Retriever and tool-retrieval runs whose "
                    "documents all carry an id", data, data["n"], False),
            _figure("retrieval_with_scores", "Retriever and tool-retrieval runs with scores",
                    data, data["n"], False),
        ]
    return out


def _trace_level(conn: sa.Connection, app: bool, window: tuple[Any, Any]
                 ) -> dict[Any, list[QualityFigure]]:
    """Traces (roots, judges' left out): app context; answers with an in-prompt document."""
    answered = sa.exists().where(_calls.c.trace_id == _runs.c.id)
    grounded = sa.exists().where(_links.c.trace_id == _runs.c.id,
                                 _links.c.stage == DocStage.IN_PROMPT.value)
    roots = (sa.select(_runs.c.id.label("id"), _runs.c.app_name.label("app_name"),
                       _runs.c.app_version.label("app_version"),
                       _runs.c.user_hash.label("user_hash"),
                       _runs.c.session_id.label("session_id"),
                       sa.case((answered, 1), else_=0).label("answered"),
                       sa.case((grounded, 1), else_=0).label("cited"))
             .where(_runs.c.parent_id.is_(None), not_evaluation(_runs.c.request_type),
                    *time_filters(_runs.c.started_at, *window))
             .limit(_UNBOUNDED)  # the lookups run once a root (see _retrieval_level)
             .subquery())
    is_grounded = sa.and_(roots.c.answered == 1, roots.c.cited == 1)
    ungrounded = sa.and_(roots.c.answered == 1, roots.c.cited == 0)
    checks = [
        ("traces_with_app_version", "Traces with an app version", roots.c.app_version),
        ("traces_with_user", "Traces with a user", roots.c.user_hash),
        ("traces_with_session", "Traces with a session", roots.c.session_id),
    ]
    group = [roots.c.app_name.label("g")] if app else []
    columns: list[Any] = [sa.func.count().label("n"),
                          sa.func.sum(roots.c.answered).label("answers"),
                          _count(is_grounded, "answers_grounded"),
                          *_examples(ungrounded, roots.c.id, "answers_grounded")]
    for name, _, column in checks:
        columns.append(_count(column.is_not(None), name))
        columns += _examples(column.is_(None), roots.c.id, name)
    out: dict[Any, list[QualityFigure]] = {}
    for row in conn.execute(sa.select(*group, *columns).group_by(*group)):
        data = row._mapping
        out[data["g"] if app else None] = [
            _figure("answers_grounded", "Answers with at least one in_prompt document (the "
                    "examples are answers with no grounding)", data, data["answers"] or 0,
                    False),
            *(_figure(name, text, data, data["n"], False) for name, text, _ in checks),
        ]
    return out


def _run_level(conn: sa.Connection, app: bool, window: tuple[Any, Any]
               ) -> tuple[dict[Any, list[QualityFigure]], dict[Any, dict[str, int]]]:
    """Every run: truncated, redacted, abandoned, failed; runs per schema version.

    One row per combination of the values the figures test (a few dozen at most), read
    in the order of ``ix_runs_quality`` (which holds every column used: no table row is
    read); the figures are sums of those rows, their examples the least and greatest id."""
    checks: list[tuple[str, str, Any]] = [
        ("runs_truncated", "Runs with content cut to the size limits",
         lambda r: bool(r["truncated"])),
        ("runs_redacted", "Runs with content redacted or hidden", lambda r: bool(r["redacted"])),
        ("runs_abandoned", "Runs never closed (stored as abandoned)",
         lambda r: r["status"] == RunStatus.ABANDONED.value),
        ("runs_error", "Runs that failed", lambda r: r["status"] == RunStatus.ERROR.value),
    ]
    split = [_runs.c.schema_version, _runs.c.truncated, _runs.c.redacted, _runs.c.status]
    group = [_runs.c.app_name] if app else []
    stmt = (sa.select(*(c.label(c.name) for c in (*group, *split)), sa.func.count().label("n"),
                      sa.func.min(_runs.c.id).label("lo"), sa.func.max(_runs.c.id).label("hi"))
            .where(*time_filters(_runs.c.started_at, *window))
            .group_by(*split, *group))
    parts: dict[Any, list[Any]] = {}
    for row in conn.execute(stmt):
        parts.setdefault(row._mapping["app_name"] if app else None, []).append(row._mapping)
    figures: dict[Any, list[QualityFigure]] = {}
    versions: dict[Any, dict[str, int]] = {}
    for key, rows in parts.items():
        total = sum(r["n"] for r in rows)
        versions[key] = {}
        for r in rows:
            v = str(r["schema_version"])
            versions[key][v] = versions[key].get(v, 0) + int(r["n"])
        merged: dict[str, Any] = {}
        for name, _, test in checks:  # add up the rows each figure counts
            hits = [r for r in rows if test(r)]
            merged[name] = sum(int(r["n"]) for r in hits)
            merged[f"{name}_lo"] = min((r["lo"] for r in hits), default=None)
            merged[f"{name}_hi"] = max((r["hi"] for r in hits), default=None)
        figures[key] = [_figure(name, text, merged, total, True) for name, text, _ in checks]
    return figures, versions


def quality(engine: Engine, *, since: datetime | str | None = None,
            until: datetime | str | None = None,
            group_by: Sequence[str] | str = ("app_name",)) -> QualityReport:
    """Completeness of what was stored in [since, until), per group (see module docstring)."""
    keys = _keys(group_by)
    window = (parse_time(since, "since"), parse_time(until, "until"))
    app_only = keys == ["app_name"]
    with engine.connect() as conn:
        llm = _llm_level(conn, keys, window)
        retrieval = _retrieval_level(conn, app_only, window)
        trace = _trace_level(conn, app_only, window)
        runs, versions = _run_level(conn, app_only, window)
    report = QualityReport(since=window[0], until=window[1], group_by=keys)
    if app_only:
        names = {k[0] for k in llm} | set(retrieval) | set(trace) | set(runs)
        for name in sorted(names, key=lambda v: (v is None, v or "")):
            report.groups.append(QualityGroup(
                group={"app_name": name},
                figures=[*llm.get((name,), []), *retrieval.get(name, []), *trace.get(name, []),
                         *runs.get(name, [])],
                schema_versions=versions.get(name, {})))
        return report
    for key in sorted(llm, key=lambda k: [(v is None, v or "") for v in k]):
        report.groups.append(QualityGroup(group=dict(zip(keys, key, strict=True)),
                                          figures=llm[key]))
    if retrieval or trace or runs:  # the levels an LLM-call key does not split
        report.groups.append(QualityGroup(
            group={k: None for k in keys},
            figures=[*retrieval.get(None, []), *trace.get(None, []), *runs.get(None, [])],
            schema_versions=versions.get(None, {})))
    return report
