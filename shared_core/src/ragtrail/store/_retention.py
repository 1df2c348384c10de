"""Retention: delete whole traces whose root started before a cutoff.

Every deletion of traces (:func:`delete_traces`: retention, ``ragtrail purge``, erasure)
also deletes what only those traces used: documents no remaining trace links to, tool
definitions no remaining LLM call references (a call keeps ``{name,
definition_hash}`` references in its metadata's ``tools``) and payloads no remaining run
references (``inputs_ref`` / ``outputs_ref``, see ``_payloads``), in the same transaction:
an erased trace's content is gone unless another stored run holds the same payload.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError
from ..schemas.flat import TOOL_REF_KEY
from ._rollups import forget_traces
from ._summaries import forget_days, summary_days
from ._tables import (
    document_links,
    documents,
    evaluations,
    llm_calls,
    payloads,
    runs,
    tool_definitions,
)

__all__ = ["delete_traces", "purge_before"]

_IN_CHUNK = 500  # bound on SQL IN lists (SQLite allows 32766 variables)


def _tool_refs(conn: Connection) -> sa.Select[Any]:
    """``SELECT hash FROM ...``: the tool definition hash of each reference in an LLM
    call's stored ``tools``, one row per reference (filter on ``llm_calls``' columns)."""
    if conn.dialect.name == "postgresql":
        path: sa.ColumnElement[Any] = sa.literal_column(
            f"'$.tools[*].{TOOL_REF_KEY}'::jsonpath")  # a constant
        found = sa.func.jsonb_path_query(llm_calls.c.metadata, path).op("#>>")(
            sa.literal_column("'{}'"))
        return sa.select(found.label("hash")).select_from(llm_calls)
    tool = sa.func.json_each(llm_calls.c.metadata, "$.tools").table_valued("value").alias("tool")
    ref = sa.func.json_extract(tool.c.value, f"$.{TOOL_REF_KEY}")
    return sa.select(ref.label("hash")).select_from(llm_calls).join(tool, sa.true())


def _delete_unused_tool_definitions(conn: Connection, hashes: list[str],
                                    counts: dict[str, int]) -> None:
    """Delete the definitions among ``hashes`` that no remaining LLM call references."""
    refs = _tool_refs(conn).subquery()
    used = set(conn.execute(sa.select(refs.c.hash).where(refs.c.hash.in_(hashes))
                            .distinct()).scalars())
    unused = [h for h in hashes if h not in used]
    if unused:
        _count(counts, tool_definitions.name, conn.execute(
            sa.delete(tool_definitions).where(tool_definitions.c.definition_hash.in_(unused))))


def _delete_unreferenced_payloads(conn: Connection, keys: list[str],
                                  counts: dict[str, int]) -> None:
    """Delete the payloads among ``keys`` that no remaining run references."""
    referenced = (sa.exists().where(runs.c.inputs_ref == payloads.c.hash)
                  | sa.exists().where(runs.c.outputs_ref == payloads.c.hash))
    _count(counts, payloads.name, conn.execute(
        sa.delete(payloads).where(payloads.c.hash.in_(keys), ~referenced)))


def _delete_traces(conn: Connection, trace_ids: list[str], counts: dict[str, int],
                   days: set[str]) -> tuple[set[str], set[str], set[str]]:
    """Delete the traces' rows, their evaluations and those evaluations' judge traces
    (adding the rows deleted per table to ``counts``); return the content hashes their
    links pointed to, the tool definitions their LLM calls referenced and the payloads
    their runs referenced."""
    hashes: set[str] = set()
    tools: set[str] = set()
    keys: set[str] = set()
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
        refs = _tool_refs(conn).where(llm_calls.c.trace_id.in_(batch)).subquery()
        tools |= {h for h in conn.execute(sa.select(refs.c.hash).distinct()).scalars()
                  if isinstance(h, str)}
        for ref in (runs.c.inputs_ref, runs.c.outputs_ref):
            keys.update(conn.execute(sa.select(ref).where(
                runs.c.trace_id.in_(batch), ref.is_not(None)).distinct()).scalars())
        forget_traces(conn, batch)  # before the calls go: usage_rollup subtracts them
        days |= summary_days(conn, batch)  # quality_rollup: recomputed once they are gone
        for table in (document_links, llm_calls, runs):
            _count(counts, table.name,
                   conn.execute(sa.delete(table).where(table.c.trace_id.in_(batch))))
    return hashes, tools, keys


def _count(counts: dict[str, int], table: str, result: sa.CursorResult[Any]) -> None:
    counts[table] = counts.get(table, 0) + max(result.rowcount, 0)


def delete_traces(conn: Connection, trace_ids: list[str]) -> dict[str, int]:
    """Delete whole traces with their evaluations (and judge traces), documents no
    remaining trace links to, tool definitions no remaining LLM call references and
    payloads no remaining run references, inside the caller's transaction; returns the
    rows deleted per table."""
    counts = {name: 0 for name in ("runs", "llm_calls", "document_links", "documents",
                                   "evaluations", "tool_definitions", "payloads")}
    days: set[str] = set()
    linked, offered, referenced = _delete_traces(conn, trace_ids, counts, days)
    forget_days(conn, days)
    ordered = sorted(linked)
    for start in range(0, len(ordered), _IN_CHUNK):
        _delete_unlinked_documents(conn, ordered[start : start + _IN_CHUNK], counts)
    tools = sorted(offered)
    for start in range(0, len(tools), _IN_CHUNK):
        _delete_unused_tool_definitions(conn, tools[start : start + _IN_CHUNK], counts)
    keys = sorted(referenced)
    for start in range(0, len(keys), _IN_CHUNK):
        _delete_unreferenced_payloads(conn, keys[start : start + _IN_CHUNK], counts)
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
    judge traces of those, documents no remaining trace links to and tool definitions
    no remaining LLM call references. Runs whose root was never stored are kept.
    """
    if not isinstance(before, datetime):
        raise ConfigError(f"before must be a datetime, got {type(before).__name__}")
    cutoff = before.replace(tzinfo=timezone.utc) if before.tzinfo is None else before
    roots = sa.select(runs.c.trace_id).where(runs.c.parent_id.is_(None), runs.c.started_at < cutoff)
    with engine.begin() as conn:
        trace_ids = sorted(set(conn.execute(roots).scalars()))
        delete_traces(conn, trace_ids)
    return len(trace_ids)
