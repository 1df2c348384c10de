"""``quality(engine, ...)``: how complete the trail is, per group.

Every figure is ``count`` of ``denominator`` with a few example ids (runs or traces, to
open with ``ragtrail show ID``): for a figure where more is better (calls with token
usage) the examples are of what is missing, for one where less is better (runs that
failed) of what was found. Each level is one aggregate query grouped in SQL (LLM calls,
retrieval runs, answers and traces, runs); examples are the smallest and largest
matching id of each group, taken in the same pass (``MIN``/``MAX``), so nothing is read
row by row into Python. Each level is a summary of ``store._summaries`` (``llm``,
``retrieval``, ``root``, ``run``): the whole UTC days of the window are read from the
per-day ``quality_rollup``, the parts of a day at either end from the rows with the same
aggregate (``summaries=False``: everything from the rows), so both give one report.

Grouping: ``app_name`` groups every level (by the run's own application); ``model``,
``provider`` and ``template`` group the LLM-call figures, and the figures of the other
levels are reported once, under a group whose values are ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from ..errors import ConfigError
from ..schemas import PriceStatus, RunKind, RunStatus
from ..store import _tables
from ..store._summaries import Part, parts
from ._common import parse_time

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

#: group_by key -> the ``llm`` summary's dimension holding it.
_LLM_PART = {"app_name": "app", "model": "model", "provider": "provider",
             "template": "template"}
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


#: (name, description, test of a summary part, lower_is_better, the calls it is counted
#: among: None for every call) per LLM-call figure. A part is one combination of the
#: values the ``llm`` summary keeps (``store._summaries``).
_LLMFigure = tuple[str, str, Callable[[Part], bool], bool, Callable[[Part], bool] | None]


def _llm_figures() -> list[_LLMFigure]:
    every: list[_LLMFigure] = [(*f, None) for f in [
        ("llm_with_token_usage", "LLM calls with token usage", lambda p: p["tokens"], False),
        ("llm_priced", "LLM calls with a known price", lambda p: p["priced"], False),
        ("llm_unpriced_unknown_model", "LLM calls unpriced: model not in the price list",
         lambda p: p["price_status"] == PriceStatus.UNKNOWN_MODEL.value, True),
        ("llm_unpriced_no_usage", "LLM calls unpriced: no token usage reported",
         lambda p: p["price_status"] == PriceStatus.NO_USAGE.value, True),
        ("llm_with_request_id", "LLM calls with the provider's request id",
         lambda p: p["request_id"], False),
        ("llm_with_finish_reason", "LLM calls with a finish reason",
         lambda p: p["finish"], False),
        ("llm_with_model_version", "LLM calls with the exact model version that answered",
         lambda p: p["version"] is not None, False),
    ]]
    # Calls stored before ``streamed`` was recorded: one with a time to first token streamed.
    return [*every, ("llm_with_ttft", "Streamed LLM calls with a time to first token",
                     lambda p: p["ttft"], False, lambda p: p["streamed"] or p["ttft"])]


def _tally(found: list[Part], test: Callable[[Part], bool], examples: Callable[[Part], bool],
           name: str, into: dict[str, Any]) -> None:
    """``into[name]``: the rows of the parts passing ``test``; ``name_lo``/``name_hi``: the
    least and greatest id of those passing ``examples``."""
    into[name] = sum(p["n"] for p in found if test(p))
    shown = [p for p in found if examples(p)]
    into[f"{name}_lo"] = min((p["lo"] for p in shown), default=None)
    into[f"{name}_hi"] = max((p["hi"] for p in shown), default=None)


def _not(test: Callable[[Part], bool]) -> Callable[[Part], bool]:
    return lambda p: not test(p)


def _both(a: Callable[[Part], bool], b: Callable[[Part], bool]) -> Callable[[Part], bool]:
    return lambda p: bool(a(p) and b(p))


def _flag(name: str) -> Callable[[Part], bool]:
    return lambda p: bool(p[name])


def _by(found: list[Part], key: Callable[[Part], Any]) -> dict[Any, list[Part]]:
    out: dict[Any, list[Part]] = {}
    for p in found:
        out.setdefault(key(p), []).append(p)
    return out


def _llm_level(conn: sa.Connection, keys: list[str], window: tuple[Any, Any],
               summaries: bool) -> dict[tuple[Any, ...], list[QualityFigure]]:
    figures = _llm_figures()
    found = parts(conn, "llm", *window, summaries=summaries)
    out: dict[tuple[Any, ...], list[QualityFigure]] = {}
    for key, group in _by(found, lambda p: tuple(p[_LLM_PART[k]] for k in keys)).items():
        data: dict[str, Any] = {"n": sum(p["n"] for p in group)}
        for name, _, test, lower, among in figures:
            if among is None:
                _tally(group, test, test if lower else _not(test), name, data)
                continue
            data[f"{name}_n"] = sum(p["n"] for p in group if among(p))
            _tally(group, _both(among, test), _both(among, _not(test)), name, data)
        out[key] = [_figure(name, text, data, data["n" if among is None else f"{name}_n"],
                            lower) for name, text, _, lower, among in figures]
    return out


def _figure(name: str, text: str, data: Any, denominator: int, lower: bool,
            shown: str | None = None) -> QualityFigure:
    count = int(data[name] or 0)
    examples = [str(v) for v in dict.fromkeys((data[f"{name}_lo"], data[f"{name}_hi"]))
                if v is not None]
    return QualityFigure(name=shown or name, description=text, count=count,
                         denominator=int(denominator),
                         share=count / denominator if denominator else None,
                         lower_is_better=lower, example_ids=examples)


def _retrieval_level(conn: sa.Connection, app: bool, window: tuple[Any, Any],
                     summaries: bool) -> dict[Any, list[QualityFigure]]:
    """Retriever runs, and tool runs that returned documents: with ids, with scores."""
    found = [p for p in parts(conn, "retrieval", *window, summaries=summaries)
             if p["kind"] == RunKind.RETRIEVER.value or p["has_links"]]
    out: dict[Any, list[QualityFigure]] = {}
    for key, group in _by(found, lambda p: p["app"] if app else None).items():
        data: dict[str, Any] = {"n": sum(p["n"] for p in group)}
        for name in ("with_ids", "scored"):
            _tally(group, _flag(name), _not(_flag(name)), name, data)
        out[key] = [
            _figure("with_ids", "Retriever and tool-retrieval runs whose documents all "
                    "carry an id", data, data["n"], False, "retrieval_with_document_ids"),
            _figure("scored", "Retriever and tool-retrieval runs with scores", data,
                    data["n"], False, "retrieval_with_scores"),
        ]
    return out


def _trace_level(conn: sa.Connection, app: bool, window: tuple[Any, Any], summaries: bool
                 ) -> dict[Any, list[QualityFigure]]:
    """Traces (roots, judges' left out): app context; answers with an in-prompt document."""
    checks = [
        ("traces_with_app_version", "Traces with an app version", "app_version"),
        ("traces_with_user", "Traces with a user", "user"),
        ("traces_with_session", "Traces with a session", "session"),
    ]
    found = parts(conn, "root", *window, summaries=summaries)
    out: dict[Any, list[QualityFigure]] = {}
    for key, group in _by(found, lambda p: p["app"] if app else None).items():
        data: dict[str, Any] = {"n": sum(p["n"] for p in group),
                                "answers": sum(p["n"] for p in group if p["answered"])}
        _tally(group, lambda p: p["answered"] and p["cited"],
               lambda p: p["answered"] and not p["cited"], "answers_grounded", data)
        for name, _, flag in checks:
            _tally(group, _flag(flag), _not(_flag(flag)), name, data)
        out[key] = [
            _figure("answers_grounded", "Answers with at least one in_prompt document (the "
                    "examples are answers with no grounding)", data, data["answers"] or 0,
                    False),
            *(_figure(name, text, data, data["n"], False) for name, text, _ in checks),
        ]
    return out


def _run_level(conn: sa.Connection, app: bool, window: tuple[Any, Any], summaries: bool
               ) -> tuple[dict[Any, list[QualityFigure]], dict[Any, dict[str, int]]]:
    """Every run: truncated, redacted, abandoned, failed; runs per schema version.

    One part per combination of the values the figures test (the ``run`` summary); the
    figures are sums of those parts, their examples the least and greatest id."""
    checks: list[tuple[str, str, Any]] = [
        ("runs_truncated", "Runs with content cut to the size limits",
         lambda r: bool(r["truncated"])),
        ("runs_redacted", "Runs with content redacted or hidden", lambda r: bool(r["redacted"])),
        ("runs_abandoned", "Runs never closed (stored as abandoned)",
         lambda r: r["status"] == RunStatus.ABANDONED.value),
        ("runs_error", "Runs that failed", lambda r: r["status"] == RunStatus.ERROR.value),
    ]
    parts_ = _by(parts(conn, "run", *window, summaries=summaries),
                 lambda p: p["app"] if app else None)
    figures: dict[Any, list[QualityFigure]] = {}
    versions: dict[Any, dict[str, int]] = {}
    for key, rows in parts_.items():
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
            group_by: Sequence[str] | str = ("app_name",),
            summaries: bool = True) -> QualityReport:
    """Completeness of what was stored in [since, until), per group (see module docstring).

    ``summaries`` False reads every figure from the stored rows alone (the same report;
    for checking the per-day summaries)."""
    keys = _keys(group_by)
    window = (parse_time(since, "since"), parse_time(until, "until"))
    app_only = keys == ["app_name"]
    with engine.connect() as conn:
        llm = _llm_level(conn, keys, window, summaries)
        retrieval = _retrieval_level(conn, app_only, window, summaries)
        trace = _trace_level(conn, app_only, window, summaries)
        runs, versions = _run_level(conn, app_only, window, summaries)
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
