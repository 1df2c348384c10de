"""Per-day summaries of what ``quality()`` and ``drift()`` count: ``quality_rollup``.

Each *summary* is one aggregate over stored rows, grouped by the UTC day of the row's
start and by *dimensions* (the values a report groups on or tests: an application, a
model, whether a call has token usage, a run's status, ...), with additive measures:
``n`` rows, the least and greatest id (``lo``/``hi``: the examples a report names) and of
a second id (``lo2``/``hi2``), and sums ``x0``-``x5`` (counts, sums, sums of squares of
numbers a report averages). A report sums the rows of the whole days of its window from
here and computes the parts of a day at either end from the stored rows with the *same*
query (:func:`parts`), so both give the same figures.

The summaries (dimensions per summary; the source rows):

- ``llm``: LLM calls joined to their run (``app``, model, provider, template, version,
  the tested values of ``quality()``'s LLM figures, whether the run is a judge's);
- ``retrieval``: retriever and tool runs with their retrieved links counted
  (``app``, kind, has links, all with ids, any scored; links summed for top-k);
- ``root``: roots of non-judge traces (``app``, has app version / user / session,
  answered by an LLM call, cites an in-prompt document, status);
- ``run``: every run (``app``, schema version, truncated, redacted, status).

Kept in the store's transactions, as ``usage_rollup`` is (``store._rollups``):

- a batch's new rows (looked up before the insert: a retried batch adds nothing) are
  summed after the insert and added to their buckets (``lo``/``hi`` merged by least and
  greatest);
- a root stored before some of its trace's LLM calls or in-prompt links (runs arrive
  child-before-parent, so rarely) changes ``answered``/``cited``: the ``root`` summary of
  its day is recomputed from the rows;
- deleting traces (retention, purge, tenant purge, erasure) recomputes every summary of
  the days their rows were on, after the delete: a least or greatest id cannot be
  subtracted, and the examples must stay ids that exist.

A run's links are stored with it (one record), an LLM call with its run: both in the
batch that stores the run. :func:`rebuild` recomputes the whole table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ..schemas import DocStage, RunKind
from ._rows import COLUMNS, Encoded
from ._seen import IN_CHUNK, Stored, chunks
from ._tables import document_links, llm_calls, quality_rollup, runs
from ._types import utc_day

__all__ = ["SUMMARIES", "forget_days", "parts", "rebuild", "recompute_days",
           "summary_days", "track_summaries"]

_EVALUATION = "evaluation"  # request type of judges' traces (query._evaluations)
_UNBOUNDED = 2**62
_LINK_TRACE = COLUMNS["document_links"].index("trace_id")
_LINK_STAGE = COLUMNS["document_links"].index("stage")
_CALL_TRACE = COLUMNS["llm_calls"].index("trace_id")
_RUN_KIND = COLUMNS["runs"].index("kind")
_RUN_PARENT = COLUMNS["runs"].index("parent_id")
#: Additive measures besides ``n``: the least/greatest of two ids, six sums.
IDS = ("lo", "hi", "lo2", "hi2")
SUMS = tuple(f"x{i}" for i in range(6))

_call_run = runs.alias("call_run")


def _not_evaluation(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    return sa.or_(column.is_(None), column != _EVALUATION)


def _flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    return sa.case((condition, 1), else_=0)


@dataclass(frozen=True)
class Summary:
    """One summary: its dimensions (name -> SQL value), measures, source and start."""

    name: str
    dims: tuple[tuple[str, Any], ...]
    measures: tuple[tuple[str, Any], ...]
    source: Any
    started: Any  # the start column whose UTC day the rows are summed under
    tenant: Any  # the tenant column the rows are kept under (row-level security)
    where: tuple[Any, ...] = ()
    flags: frozenset[str] = frozenset()  # dimensions read back as booleans

    def select(self, conditions: Iterable[sa.ColumnElement[bool]], by_day: bool
               ) -> sa.Select[Any]:
        """The aggregate over the rows matching ``conditions``, per dimensions (and day)."""
        dims = [value.label(f"d_{name}") for name, value in self.dims]
        if by_day:  # stored per day and tenant
            dims[:0] = [utc_day(self.started).label("day"), self.tenant.label("tenant")]
        measures = [value.label(name) for name, value in self.measures]
        return (sa.select(*dims, sa.func.count().label("n"), *measures)
                .select_from(self.source).where(*self.where, *conditions)
                .group_by(*dims))


def _llm() -> Summary:
    calls = llm_calls.c
    temp = sa.cast(calls.temperature, sa.Float)
    maxt = sa.cast(calls.max_tokens, sa.Float)
    source = llm_calls.join(_call_run, sa.and_(_call_run.c.id == calls.run_id,
                                               _call_run.c.started_at == calls.started_at))
    flags = ("tokens", "priced", "request_id", "finish", "ttft", "streamed", "judge")
    return Summary(
        "llm",
        dims=(("app", _call_run.c.app_name), ("model", calls.provider_model),
              ("provider", calls.provider), ("template", calls.prompt_template_hash),
              ("version", calls.model_version),
              ("tokens", _flag(calls.total_tokens.is_not(None))),
              ("priced", _flag(calls.total_cost.is_not(None))),
              ("price_status", calls.price_status),
              ("request_id", _flag(calls.request_id.is_not(None))),
              ("finish", _flag(calls.finish_reason.is_not(None))),
              ("ttft", _flag(calls.time_to_first_token_ms.is_not(None))),
              ("streamed", _flag(calls.streamed.is_(True))),
              ("judge", _flag(sa.not_(_not_evaluation(_call_run.c.request_type))))),
        measures=(("lo", sa.func.min(calls.run_id)), ("hi", sa.func.max(calls.run_id)),
                  ("lo2", sa.func.min(calls.trace_id)), ("hi2", sa.func.max(calls.trace_id)),
                  ("x0", sa.func.count(temp)), ("x1", sa.func.sum(temp)),
                  ("x2", sa.func.sum(temp * temp)), ("x3", sa.func.count(maxt)),
                  ("x4", sa.func.sum(maxt)), ("x5", sa.func.sum(maxt * maxt))),
        source=source, started=calls.started_at, tenant=_call_run.c.tenant,
        flags=frozenset(flags))


def _retrieval(conditions: Iterable[sa.ColumnElement[bool]] = ()) -> Summary:
    """The retrieval summary over the runs matching ``conditions`` (filtered inside its
    per-run subquery, so each run's link lookups run once)."""
    link = document_links.c
    own = sa.and_(link.run_id == runs.c.id, link.stage == DocStage.RETRIEVED.value)

    def of_links(value: sa.ColumnElement[Any]) -> sa.ScalarSelect[Any]:
        return sa.select(value).where(own).scalar_subquery()

    per_run = (
        sa.select(
            runs.c.id.label("id"), runs.c.trace_id.label("trace_id"),
            runs.c.app_name.label("app"), runs.c.kind.label("kind"),
            runs.c.started_at.label("started_at"), runs.c.tenant.label("tenant"),
            of_links(sa.func.count()).label("links"),
            # Without an id a document is stored under its content hash.
            sa.func.coalesce(of_links(sa.func.min(sa.case(
                (link.document_id == link.content_hash, 0), else_=1))), 1).label("all_ids"),
            sa.func.coalesce(of_links(sa.func.max(sa.case(
                (link.score.is_not(None), 1), else_=0))), 0).label("scored"))
        .where(runs.c.kind.in_([RunKind.RETRIEVER.value, RunKind.TOOL.value]), *conditions)
        # A bound never reached keeps SQLite from inlining the subquery into each
        # aggregate (query._quality does the same).
        .limit(_UNBOUNDED)
        .subquery("per_run"))
    k = sa.cast(per_run.c.links, sa.Float)
    return Summary(
        "retrieval",
        dims=(("app", per_run.c.app), ("kind", per_run.c.kind),
              ("has_links", _flag(per_run.c.links > 0)),
              ("with_ids", _flag(sa.and_(per_run.c.links > 0, per_run.c.all_ids == 1))),
              ("scored", _flag(per_run.c.scored == 1))),
        measures=(("lo", sa.func.min(per_run.c.id)), ("hi", sa.func.max(per_run.c.id)),
                  ("hi2", sa.func.max(per_run.c.trace_id)), ("x0", sa.func.sum(k)),
                  ("x1", sa.func.sum(k * k))),
        source=per_run, started=per_run.c.started_at, tenant=per_run.c.tenant,
        flags=frozenset({"has_links", "with_ids", "scored"}))


def _root() -> Summary:
    # EXISTS of a named column, not ``*``: the writer role may read only some columns.
    answered = sa.select(llm_calls.c.trace_id).where(llm_calls.c.trace_id == runs.c.id).exists()
    cited = sa.select(document_links.c.trace_id).where(
        document_links.c.trace_id == runs.c.id,
        document_links.c.stage == DocStage.IN_PROMPT.value).exists()
    flags = ("app_version", "user", "session", "answered", "cited")
    return Summary(
        "root",
        dims=(("app", runs.c.app_name),
              ("app_version", _flag(runs.c.app_version.is_not(None))),
              ("user", _flag(runs.c.user_hash.is_not(None))),
              ("session", _flag(runs.c.session_id.is_not(None))),
              ("answered", _flag(answered)), ("cited", _flag(cited)),
              ("status", runs.c.status)),
        measures=(("lo", sa.func.min(runs.c.id)), ("hi", sa.func.max(runs.c.id))),
        source=runs, started=runs.c.started_at, tenant=runs.c.tenant,
        where=(runs.c.parent_id.is_(None), _not_evaluation(runs.c.request_type)),
        flags=frozenset(flags))


def _run() -> Summary:
    return Summary(
        "run",
        dims=(("app", runs.c.app_name), ("schema_version", runs.c.schema_version),
              ("truncated", runs.c.truncated), ("redacted", runs.c.redacted),
              ("status", runs.c.status)),
        measures=(("lo", sa.func.min(runs.c.id)), ("hi", sa.func.max(runs.c.id))),
        source=runs, started=runs.c.started_at, tenant=runs.c.tenant,
        flags=frozenset({"truncated", "redacted"}))


SUMMARIES: dict[str, Summary] = {s.name: s for s in (_llm(), _retrieval(), _root(), _run())}


# -- reading -----------------------------------------------------------------------------


Part = dict[str, Any]


def _merge(into: dict[str, Part], summary: Summary, dims: dict[str, Any], data: Any) -> None:
    key = json.dumps([dims[name] for name, _ in summary.dims], separators=(",", ":"))
    entry = into.get(key)
    if entry is None:
        entry = into[key] = {**dims, **_empty()}
    _fold(entry, data)


def _empty() -> dict[str, Any]:
    """The measures of a group no row has reached yet."""
    return {"n": 0, **{m: None for m in IDS}, **{m: 0.0 for m in SUMS}}


def _fold(entry: dict[str, Any], data: Any) -> None:
    """Add one summary row's measures (``data``) to ``entry``: counts and sums added,
    least ids kept least and greatest ids greatest."""
    entry["n"] += int(data["n"])
    for m in IDS:
        value = data.get(m)
        if value is not None:
            old = entry[m]
            low = m.startswith("lo")
            entry[m] = value if old is None else (min(old, value) if low else max(old, value))
    for m in SUMS:
        value = data.get(m)
        if value is not None:
            entry[m] += float(value)


def _dims(summary: Summary, data: Any, prefix: str) -> dict[str, Any]:
    out = {}
    for name, _ in summary.dims:
        value = data[f"{prefix}{name}"]
        out[name] = bool(value) if name in summary.flags and value is not None else value
    return out


def _window_plan(since: datetime | None, until: datetime | None
                 ) -> tuple[tuple[str | None, str | None] | None,
                            list[tuple[datetime | None, datetime | None]]]:
    """The whole UTC days of [since, until) (as day bounds; None: none) and the ranges
    at either end to read from the rows."""
    first = None if since is None else _midnight(since)
    if first is not None and since is not None and first < since:
        first += timedelta(days=1)
    last = None if until is None else _midnight(until)
    if first is not None and last is not None and first >= last:
        return None, [(since, until)]
    ranges: list[tuple[datetime | None, datetime | None]] = []
    if since is not None and first is not None and since < first:
        ranges.append((since, first))
    if until is not None and last is not None and last < until:
        ranges.append((last, until))
    days = (None if first is None else first.date().isoformat(),
            None if last is None else last.date().isoformat())
    return days, ranges


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _time(column: Any, start: datetime | None, end: datetime | None
          ) -> list[sa.ColumnElement[bool]]:
    out: list[sa.ColumnElement[bool]] = []
    if start is not None:
        out.append(column >= start)
    if end is not None:
        out.append(column < end)
    return out


def _rows_select(summary: Summary, conditions: list[sa.ColumnElement[bool]],
                 by_day: bool) -> sa.Select[Any]:
    """The summary's aggregate over the rows matching ``conditions`` (on ``runs`` /
    ``llm_calls`` columns)."""
    if summary.name != "retrieval":
        return summary.select(conditions, by_day)
    return _retrieval(conditions).select((), by_day)


def parts(conn: Connection, name: str, since: datetime | None, until: datetime | None,
          *, summaries: bool = True) -> list[Part]:
    """The summary ``name`` over [since, until): one entry per combination of its
    dimensions, with its measures summed (ids: least and greatest). Whole UTC days come
    from ``quality_rollup`` (unless ``summaries`` is False), the rest from the rows."""
    summary = SUMMARIES[name]
    days, ranges = _window_plan(since, until) if summaries else (None, [(since, until)])
    merged: dict[str, Part] = {}
    if days is not None:
        q = quality_rollup.c
        wanted = [q.summary == name]
        if days[0] is not None:
            wanted.append(q.day >= days[0])
        if days[1] is not None:
            wanted.append(q.day < days[1])
        stmt = (sa.select(q.dims, sa.func.sum(q.n).label("n"),
                          *(getattr(sa.func, "min" if m.startswith("lo") else "max")(q[m])
                            .label(m) for m in IDS),
                          *(sa.func.sum(q[m]).label(m) for m in SUMS))
                .where(*wanted).group_by(q.dims).having(sa.func.sum(q.n) > 0))
        for row in conn.execute(stmt):
            data = row._mapping
            values = json.loads(data["dims"])
            _merge(merged, summary, dict(zip((n for n, _ in summary.dims), values,
                                             strict=True)), data)
    for start, end in ranges:
        stmt = _rows_select(summary, _time(_started_column(summary), start, end), False)
        for row in conn.execute(stmt):
            data = row._mapping
            _merge(merged, summary, _dims(summary, data, "d_"), data)
    return list(merged.values())


def _started_column(summary: Summary) -> Any:
    """The start column the rows are filtered on (the source table's, not a subquery's)."""
    return runs.c.started_at if summary.name == "retrieval" else summary.started


# -- keeping -----------------------------------------------------------------------------


Deltas = dict[str, dict[str, Any]]


def _add(deltas: Deltas, summary: Summary, result: Iterable[Any]) -> None:
    """Fold the per-day rows of ``summary``'s aggregate (``result``) into ``deltas``."""
    for row in result:
        data = row._mapping
        dims = _dims(summary, data, "d_")
        values = json.dumps([dims[name] for name, _ in summary.dims], separators=(",", ":"))
        bucket = json.dumps([summary.name, data["day"], data["tenant"], values],
                            separators=(",", ":"))
        entry = deltas.get(bucket)
        if entry is None:
            entry = deltas[bucket] = {"bucket": bucket, "summary": summary.name,
                                      "day": data["day"], "tenant": data["tenant"],
                                      "dims": values, **_empty()}
        _fold(entry, data)


@cache
def _upsert(dialect: str) -> sa.Insert:
    q = quality_rollup.c
    pg = dialect == "postgresql"
    insert: Any = (postgresql.insert if pg else sqlite.insert)(quality_rollup)
    low, high = ("least", "greatest") if pg else ("min", "max")

    def pick(fn: str, name: str) -> Any:
        # SQLite's two-argument min/max are NULL when either is: keep the other one.
        return sa.func.coalesce(getattr(sa.func, fn)(q[name], insert.excluded[name]),
                                q[name], insert.excluded[name])

    upsert: sa.Insert = insert.on_conflict_do_update(
        index_elements=[q.bucket],
        set_={"n": q.n + insert.excluded.n,
              **{m: pick(low if m.startswith("lo") else high, m) for m in IDS},
              **{m: q[m] + insert.excluded[m] for m in SUMS}})
    return upsert


def _apply(conn: Connection, deltas: Deltas) -> None:
    rows = [entry for _key, entry in sorted(deltas.items()) if entry["n"]]
    if rows:
        conn.execute(_upsert(conn.dialect.name), rows)


@cache
def _of_keys(name: str) -> sa.Select[Any]:
    """The summary ``name``'s per-day aggregate over the rows whose id (an LLM call's run
    id for ``llm``) is in the expanding ``keys`` parameter. Built once: the insert path
    runs it per batch, and building it cost more than running it."""
    column = llm_calls.c.run_id if name == "llm" else runs.c.id
    return _rows_select(SUMMARIES[name], [column.in_(sa.bindparam("keys", expanding=True))],
                        True)


@cache
def _root_days() -> sa.Select[Any]:
    """The UTC days of the stored roots whose id is in the expanding ``keys``."""
    return sa.select(utc_day(runs.c.started_at)).where(
        runs.c.id.in_(sa.bindparam("keys", expanding=True)), runs.c.parent_id.is_(None))


def _root_days_of(conn: Connection, trace_ids: Iterable[str]) -> set[str]:
    days: set[str] = set()
    for chunk in chunks(trace_ids):
        days.update(conn.execute(_root_days(), {"keys": chunk}).scalars())
    return days


@contextmanager
def track_summaries(conn: Connection, encoded: Encoded, stored: Stored) -> Iterator[None]:
    """Keep ``quality_rollup`` right around the insert of ``encoded`` (inside ``conn``'s
    transaction; ``stored``: what of it was stored before): what is new is added after."""
    run_rows = encoded.rows["runs"]
    call_ids = list(encoded.rows["llm_calls"])
    if not run_rows and not call_ids:
        yield
        return
    new_runs = set(run_rows) - stored.runs
    new_calls = set(call_ids) - stored.calls
    # Traces this batch gives an LLM call or an in-prompt link: a root stored before
    # them may now count as answered or grounded.
    touched = {row[_LINK_TRACE] for row in encoded.rows["document_links"].values()
               if row[_LINK_STAGE] == DocStage.IN_PROMPT.value}
    touched.update(row[_CALL_TRACE] for key, row in encoded.rows["llm_calls"].items()
                   if key in new_calls)
    # Roots of this batch are not stored yet: only earlier ones are looked up.
    touched.difference_update(new_runs)
    moved_days = _root_days_of(conn, touched) if touched else set()
    yield
    deltas: Deltas = {}
    # Each summary reads only the new rows it can count (its own conditions still apply).
    kinds = (RunKind.RETRIEVER.value, RunKind.TOOL.value)
    wanted = {
        "llm": new_calls,
        "retrieval": {rid for rid in new_runs if run_rows[rid][_RUN_KIND] in kinds},
        "root": {rid for rid in new_runs if run_rows[rid][_RUN_PARENT] is None},
        "run": new_runs,
    }
    for name, ids in wanted.items():
        for chunk in chunks(ids):
            _add(deltas, SUMMARIES[name], conn.execute(_of_keys(name), {"keys": chunk}))
    if moved_days:
        # Recomputed below from the rows (new roots of those days included): not added.
        deltas = {k: v for k, v in deltas.items()
                  if not (v["summary"] == "root" and v["day"] in moved_days)}
    _apply(conn, deltas)
    if moved_days:
        recompute_days(conn, moved_days, names=("root",))


def summary_days(conn: Connection, trace_ids: list[str]) -> set[str]:
    """The UTC days the rows of ``trace_ids`` were started on (before deleting them)."""
    days: set[str] = set()
    for chunk in chunks(trace_ids):
        days.update(conn.execute(sa.select(utc_day(runs.c.started_at)).distinct()
                                 .where(runs.c.trace_id.in_(chunk))).scalars())
        days.update(conn.execute(sa.select(utc_day(llm_calls.c.started_at)).distinct()
                                 .where(llm_calls.c.trace_id.in_(chunk))).scalars())
    return days


def _day_range(day: str) -> tuple[datetime, datetime]:
    start = datetime.combine(date.fromisoformat(day), time(0), tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def recompute_days(conn: Connection, days: Iterable[str],
                   names: Iterable[str] = tuple(SUMMARIES)) -> None:
    """Recompute the ``names`` summaries of ``days`` from the stored rows: their buckets
    are emptied, then refilled. (Emptied with UPDATE: the writer role has no DELETE; a
    bucket left at n = 0 is read as absent.)"""
    chosen = list(names)
    q = quality_rollup.c
    for day in sorted(set(days)):
        conn.execute(sa.update(quality_rollup)
                     .where(q.day == day, q.summary.in_(chosen))
                     .values(n=0, **{m: None for m in IDS}, **{m: 0.0 for m in SUMS}))
        deltas: Deltas = {}
        start, end = _day_range(day)
        for name in chosen:
            summary = SUMMARIES[name]
            conditions = _time(_started_column(summary), start, end)
            _add(deltas, summary, conn.execute(_rows_select(summary, conditions, True)))
        _apply(conn, deltas)


def forget_days(conn: Connection, days: Iterable[str]) -> None:
    """After deleting traces: recompute the summaries of the days their rows were on
    (buckets left empty go)."""
    chosen = sorted(set(days))
    recompute_days(conn, chosen)
    q = quality_rollup.c
    for start in range(0, len(chosen), IN_CHUNK):
        conn.execute(sa.delete(quality_rollup).where(q.day.in_(chosen[start:start + IN_CHUNK]),
                                                     q.n == 0))


def rebuild(conn: Connection) -> int:
    """Recompute ``quality_rollup`` from every stored row (the migration's backfill; a
    repair); returns the number of buckets."""
    conn.execute(sa.delete(quality_rollup))
    deltas: Deltas = {}
    for summary in SUMMARIES.values():
        _add(deltas, summary, conn.execute(_rows_select(summary, [], True)))
    _apply(conn, deltas)
    return len(deltas)
