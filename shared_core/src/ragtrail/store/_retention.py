"""Retention: delete whole traces whose root started before a cutoff."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError
from ._tables import document_links, documents, llm_calls, runs

__all__ = ["purge_before"]

_IN_CHUNK = 500  # bound on SQL IN lists (SQLite allows 32766 variables)


def _delete_traces(conn: Connection, trace_ids: list[str]) -> set[str]:
    """Delete the traces' rows; return the content hashes their links pointed to."""
    hashes = set(conn.execute(
        sa.select(document_links.c.content_hash).where(document_links.c.trace_id.in_(trace_ids))
    ).scalars())
    for table in (document_links, llm_calls, runs):
        conn.execute(sa.delete(table).where(table.c.trace_id.in_(trace_ids)))
    return hashes


def _delete_unlinked_documents(conn: Connection, hashes: list[str]) -> None:
    still_linked = sa.exists().where(document_links.c.content_hash == documents.c.content_hash)
    conn.execute(
        sa.delete(documents).where(documents.c.content_hash.in_(hashes), ~still_linked)
    )


def purge_before(engine: Engine, before: datetime) -> int:
    """Delete every trace whose root run started before ``before``; return how many.

    Runs, LLM calls and document links of those traces go, and so do documents no
    remaining trace links to. Runs whose root was never stored are kept.
    """
    if not isinstance(before, datetime):
        raise ConfigError(f"before must be a datetime, got {type(before).__name__}")
    cutoff = before.replace(tzinfo=timezone.utc) if before.tzinfo is None else before
    roots = sa.select(runs.c.trace_id).where(runs.c.parent_id.is_(None), runs.c.started_at < cutoff)
    with engine.begin() as conn:
        trace_ids = sorted(set(conn.execute(roots).scalars()))
        hashes: set[str] = set()
        for start in range(0, len(trace_ids), _IN_CHUNK):
            hashes |= _delete_traces(conn, trace_ids[start : start + _IN_CHUNK])
        ordered = sorted(hashes)
        for start in range(0, len(ordered), _IN_CHUNK):
            _delete_unlinked_documents(conn, ordered[start : start + _IN_CHUNK])
    return len(trace_ids)
