"""Browsing queries (the web view and the CLI): pages of traces, documents, sessions.

``trace_page`` is :func:`ragtrail.query.traces` with keyset (cursor) pagination, a run
kind filter and a free-text filter over the root's question and answer; ``document``
reads one stored document; ``sessions`` and ``session_turns`` group traces by session.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from ..errors import ConfigError
from ..schemas import RunKind, RunStatus, bounded_key
from ..store import _tables
from ..store._payloads import resolved, run_columns
from ._common import chunks, parse_time, sum_cost
from ._evaluations import Evaluation, _evaluation, _resolved_trace, _statement
from ._models import TraceSummary
from ._traces import _call_totals, _conditions, _summary

__all__ = [
    "SessionSummary",
    "StoredDocument",
    "TraceListItem",
    "TracePage",
    "document",
    "evaluations_by_trace",
    "session_turns",
    "sessions",
    "trace_page",
]

_runs = _tables.runs
_calls = _tables.llm_calls
_docs = _tables.documents
#: Largest page a caller may ask for.
MAX_PAGE = 500


class TraceListItem(TraceSummary):
    """A :class:`TraceSummary` as a page of traces lists it (its answer included)."""


class TracePage(BaseModel):
    """One page of traces, newest first, and the cursor of the next page (None at the end)."""

    model_config = ConfigDict(extra="forbid")

    traces: list[TraceListItem]
    next_cursor: str | None = None


class StoredDocument(BaseModel):
    """A stored document: its id, content hash, content (None when hidden) and metadata."""

    model_config = ConfigDict(extra="forbid")

    document_id: str
    content_hash: str
    content: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class SessionSummary(BaseModel):
    """The traces of one session id: turns, first and last start, tokens and cost."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    turns: int
    first_started_at: datetime
    last_started_at: datetime
    total_tokens: int = 0
    total_cost: Decimal | None = Field(None, description="Priced calls only; None if none.")
    unpriced_calls: int = 0


def encode_cursor(started_at: datetime, run_id: str) -> str:
    """An opaque cursor naming the last trace of a page."""
    raw = json.dumps([started_at.isoformat(), run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (started_at, id) a cursor names; ConfigError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        started, run_id = json.loads(raw)
        when = parse_time(str(started), "cursor")
        if when is None or not isinstance(run_id, str):
            raise ValueError
    except (ValueError, TypeError, ConfigError):
        raise ConfigError(f"not a cursor from a previous page: {cursor!r}") from None
    return when, run_id


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ConfigError(f"limit must be an integer from 1 to {MAX_PAGE}, got {limit!r}")
    return limit


def trace_page(
    engine: Engine,
    *,
    limit: int = 50,
    cursor: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    app_name: str | None = None,
    user_hash: str | None = None,
    session_id: str | None = None,
    status: RunStatus | str | None = None,
    model: str | None = None,
    kind: RunKind | str | None = None,
    text: str | None = None,
) -> TracePage:
    """Root runs newest first, ``limit`` at a time, after ``cursor`` (a page's ``next_cursor``).

    Filters as :func:`ragtrail.query.traces`, plus ``kind`` (traces holding a run of that
    kind) and ``text`` (case-insensitive substring of the root's inputs or outputs).
    """
    conditions = _conditions(since=since, until=until, app_name=app_name, user_hash=user_hash,
                             session_id=session_id, status=status, model=model)
    if kind is not None:
        try:
            wanted = RunKind(kind).value
        except ValueError:
            valid = ", ".join(k.value for k in RunKind)
            raise ConfigError(f"unknown kind {kind!r}; use one of {valid}") from None
        inner = _runs.alias("kind_run")
        conditions.append(sa.or_(
            _runs.c.kind == wanted,
            sa.exists().where(inner.c.trace_id == _runs.c.id, inner.c.kind == wanted),
        ))
    if text is not None and text.strip():
        needle = text.strip().lower()
        conditions.append(sa.or_(
            *(sa.func.lower(sa.cast(column, sa.Text)).contains(needle, autoescape=True)
              for column in (resolved(_runs, "inputs"), resolved(_runs, "outputs")))
        ))
    if cursor:
        when, last_id = decode_cursor(cursor)
        conditions.append(sa.tuple_(_runs.c.started_at, _runs.c.id) < sa.tuple_(
            sa.bindparam(None, when, type_=_runs.c.started_at.type),
            sa.bindparam(None, last_id, type_=_runs.c.id.type),
        ))
    size = _limit(limit)
    stmt = (sa.select(*run_columns(_runs)).where(*conditions)
            .order_by(_runs.c.started_at.desc(), _runs.c.id.desc()).limit(size + 1))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        more = len(rows) > size
        rows = rows[:size]
        totals = _call_totals(conn, [row.trace_id for row in rows])
    items = [
        TraceListItem(**_summary(row, totals.get(row.trace_id, [])).model_dump())
        for row in rows
    ]
    last = rows[-1] if rows and more else None
    return TracePage(traces=items,
                     next_cursor=encode_cursor(last.started_at, last.id) if last else None)


def document(engine: Engine, doc: str) -> StoredDocument | None:
    """The stored document with this content hash, else the newest-hashed one with this id."""
    if not isinstance(doc, str) or not doc:
        raise ConfigError(f"document must be a non-empty id or content hash, got {doc!r}")
    key = bounded_key(doc)
    with engine.connect() as conn:
        row = conn.execute(sa.select(_docs).where(_docs.c.content_hash == key)).first()
        if row is None:
            row = conn.execute(sa.select(_docs).where(_docs.c.document_id == key)
                               .order_by(_docs.c.content_hash).limit(1)).first()
    if row is None:
        return None
    return StoredDocument(document_id=row.document_id, content_hash=row.content_hash,
                          content=row.content, metadata=row.metadata or {})


def sessions(engine: Engine, *, limit: int = 50, since: datetime | str | None = None,
             until: datetime | str | None = None) -> list[SessionSummary]:
    """Sessions (traces sharing a session id), most recently active first."""
    size = _limit(limit)
    last = sa.func.max(_runs.c.started_at).label("last_started_at")
    conditions = _conditions(since=since, until=until)
    conditions.append(_runs.c.session_id.is_not(None))
    stmt = (sa.select(_runs.c.session_id, sa.func.count().label("turns"),
                      sa.func.min(_runs.c.started_at).label("first_started_at"), last)
            .where(*conditions).group_by(_runs.c.session_id)
            .order_by(last.desc(), _runs.c.session_id).limit(size))
    with engine.connect() as conn:
        groups = conn.execute(stmt).all()
        costs: dict[str, list[Any]] = defaultdict(list)
        ids = [group.session_id for group in groups]
        for batch in chunks(ids):
            call_stmt = (sa.select(_runs.c.session_id, _calls.c.total_tokens, _calls.c.total_cost)
                         .select_from(_calls.join(_runs, _runs.c.id == _calls.c.trace_id))
                         .where(_runs.c.session_id.in_(batch), _runs.c.parent_id.is_(None)))
            for row in conn.execute(call_stmt):
                costs[row.session_id].append(row)
    found = []
    for group in groups:
        calls = costs.get(group.session_id, [])
        total, unpriced = sum_cost(call.total_cost for call in calls)
        found.append(SessionSummary(
            session_id=group.session_id, turns=group.turns,
            first_started_at=_tables_time(group.first_started_at),
            last_started_at=_tables_time(group.last_started_at),
            total_tokens=sum(call.total_tokens or 0 for call in calls),
            total_cost=total, unpriced_calls=unpriced,
        ))
    return found


def _tables_time(value: Any) -> datetime:
    # min()/max() lose the column type on SQLite: the stored text comes back.
    parsed = parse_time(value, "started_at")
    assert parsed is not None
    return parsed


def session_turns(engine: Engine, session_id: str, *, limit: int = MAX_PAGE
                  ) -> list[TraceListItem]:
    """The traces of one session, oldest first (the conversation's order)."""
    if not isinstance(session_id, str) or not session_id:
        raise ConfigError(f"session id must be a non-empty string, got {session_id!r}")
    page = trace_page(engine, limit=limit, session_id=session_id)
    return list(reversed(page.traces))


def evaluations_by_trace(engine: Engine, trace_ids: list[str]) -> dict[str, list[Evaluation]]:
    """The evaluations of each of ``trace_ids`` (a page of traces), newest first."""
    ev = _tables.evaluations
    found: dict[str, list[Evaluation]] = defaultdict(list)
    with engine.connect() as conn:
        for batch in chunks(sorted(set(trace_ids))):
            # Two index lookups (trace_id, and the few rows whose target was not stored
            # when they were written); one OR would read the whole table on SQLite.
            lookups: list[list[sa.ColumnElement[bool]]] = [
                [ev.c.trace_id.in_(batch)],
                [ev.c.trace_id.is_(None), _resolved_trace().in_(batch)],
            ]
            for conditions in lookups:
                for row in conn.execute(_statement(conditions, None)):
                    evaluation = _evaluation(row)
                    found[evaluation.trace_id].append(evaluation)
    for items in found.values():
        items.sort(key=lambda e: (e.created_at, e.id), reverse=True)
    return dict(found)
