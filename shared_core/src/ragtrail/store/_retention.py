"""Retention: delete whole traces whose root started before a cutoff."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError
from ._rollups import forget_traces
from ._tables import document_links, documents, evaluations, llm_calls, runs

__all__ = ["delete_traces", "purge_before"]

_IN_CHUNK = 500  # bound on SQL IN lists (SQLite allows 32766 variables)


def _delete_traces(conn: Connection, trace_ids: list[str], counts: dict[str, int]
                   ) -> set[str]:
    """Delete the traces' rows, their evaluations and those evaluations' judge traces
    (adding the rows deleted per table to ``counts``); return the content hashes their
    links pointed to."""
    hashes: set[str] = set()
    seen: set[str] = set()
    pending = list(trace_ids)
    while pending:
        batch = [t for t in dict.fromkeys(pending[:_IN_CHUNK]) if t not in seen]
        pending = pending[_IN_CHUNK:]
        if not batch:
            continue
        seen.update(batch)
        hashes |= set(conn.execute(
            sa.select(document_links.c.content_hash)
            .where(document_links.c.trace_id.in_(batch))).scalars())
        # An evaluation stored before its target keeps only the run id (trace_id NULL).
        unresolved = evaluations.c.trace_id.is_(None) & (
            evaluations.c.run_id.in_(batch)
            | evaluations.c.run_id.in_(sa.select(runs.c.id).where(runs.c.trace_id.in_(batch))))
        judged = evaluations.c.trace_id.in_(batch) | unresolved
        pending += [t for t in conn.execute(
            sa.select(evaluations.c.judge_trace_id)
            .where(judged, evaluations.c.judge_trace_id.is_not(None))).scalars()]
        _count(counts, evaluations.name, conn.execute(sa.delete(evaluations).where(judged)))
        forget_traces(conn, batch)  # before the calls go: usage_rollup subtracts them
        for table in (document_links, llm_calls, runs):
            _count(counts, table.name,
                   conn.execute(sa.delete(table).where(table.c.trace_id.in_(batch))))
    return hashes


def _count(counts: dict[str, int], table: str, result: sa.CursorResult[Any]) -> None:
    counts[table] = counts.get(table, 0) + max(result.rowcount, 0)


def delete_traces(conn: Connection, trace_ids: list[str]) -> dict[str, int]:
    """Delete whole traces with their evaluations (and judge traces), and documents no
    remaining trace links to, inside the caller's transaction; returns the rows deleted
    per table."""
    counts = {name: 0 for name in ("runs", "llm_calls", "document_links", "documents",
                                   "evaluations")}
    ordered = sorted(_delete_traces(conn, trace_ids, counts))
    for start in range(0, len(ordered), _IN_CHUNK):
        _delete_unlinked_documents(conn, ordered[start : start + _IN_CHUNK], counts)
    return counts


def _delete_unlinked_documents(conn: Connection, hashes: list[str],
                               counts: dict[str, int]) -> None:
    still_linked = sa.exists().where(document_links.c.content_hash == documents.c.content_hash)
    _count(counts, documents.name, conn.execute(
        sa.delete(documents).where(documents.c.content_hash.in_(hashes), ~still_linked)
    ))


def purge_before(engine: Engine, before: datetime) -> int:
    """Delete every trace whose root run started before ``before``; return how many.

    Runs, LLM calls and document links of those traces go, their evaluations and the
    judge traces of those, and documents no remaining trace links to. Runs whose root
    was never stored are kept.
    """
    if not isinstance(before, datetime):
        raise ConfigError(f"before must be a datetime, got {type(before).__name__}")
    cutoff = before.replace(tzinfo=timezone.utc) if before.tzinfo is None else before
    roots = sa.select(runs.c.trace_id).where(runs.c.parent_id.is_(None), runs.c.started_at < cutoff)
    with engine.begin() as conn:
        trace_ids = sorted(set(conn.execute(roots).scalars()))
        delete_traces(conn, trace_ids)
    return len(trace_ids)
