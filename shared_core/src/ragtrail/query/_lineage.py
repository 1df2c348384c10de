"""``lineage(engine, run_id)``: every run, LLM call and document of one trace."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import NotFoundError
from ..schemas import LLMCallRecord, Run, bounded_key
from ..schemas.flat import TOOL_REF_KEY, expand_tools
from ..store import _tables
from ..store._payloads import run_columns
from ._common import (
    answer_of,
    chunks,
    llm_call_from_row,
    question_of,
    run_from_row,
    sum_cost,
)
from ._evaluations import evaluations_of_trace
from ._models import DocumentUse, Lineage, RunNode

__all__ = ["lineage"]

_runs = _tables.runs
_calls = _tables.llm_calls
_links = _tables.document_links
_docs = _tables.documents
_tools = _tables.tool_definitions


def _trace_of(conn: Connection, run_id: str) -> str:
    key = bounded_key(run_id)  # as the Recorder stored it
    trace_id = conn.execute(
        sa.select(_runs.c.trace_id).where(_runs.c.id == key)
    ).scalar_one_or_none()
    if trace_id is not None:
        return str(trace_id)
    # The id of a trace whose root is not stored yet still names the trace.
    if conn.execute(sa.select(_runs.c.id).where(_runs.c.trace_id == key).limit(1)).first():
        return key
    raise NotFoundError(f"no run or trace with id {run_id!r} is stored")


def _tree(runs: list[Run], trace_id: str) -> tuple[RunNode | None, list[RunNode]]:
    nodes = {run.id: RunNode(run=run) for run in runs}
    roots: list[RunNode] = []
    for run in runs:
        parent = nodes.get(run.parent_id) if run.parent_id is not None else None
        if parent is None or run.parent_id == run.id:
            roots.append(nodes[run.id])
        else:
            parent.children.append(nodes[run.id])
    tree = nodes.get(trace_id) or (roots[0] if roots else None)
    return tree, roots


def _document_uses(conn: Connection, trace_id: str, order: dict[str, int]) -> list[DocumentUse]:
    stmt = (
        sa.select(_links, _docs.c.content, _docs.c.metadata)
        .select_from(_links.outerjoin(_docs, _docs.c.content_hash == _links.c.content_hash))
        .where(_links.c.trace_id == trace_id)
    )
    uses = []
    for row in conn.execute(stmt):
        data: dict[str, Any] = dict(row._mapping)
        data.pop("trace_id")
        data["metadata"] = data["metadata"] or {}
        uses.append(DocumentUse.model_validate(data))
    uses.sort(key=lambda use: (order.get(use.run_id, len(order)), use.stage.order, use.rank))
    return uses


def _expand_tools(conn: Connection, calls: list[LLMCallRecord]) -> None:
    """Replace the calls' tool references by the stored definitions (one query)."""
    wanted = {str(t[TOOL_REF_KEY]) for call in calls for t in call.metadata.tools or ()
              if isinstance(t, dict) and TOOL_REF_KEY in t}
    if not wanted:
        return
    definitions: dict[str, Any] = {}
    for batch in chunks(sorted(wanted)):
        stmt = sa.select(_tools.c.definition_hash, _tools.c.definition).where(
            _tools.c.definition_hash.in_(batch))
        definitions.update({row.definition_hash: row.definition for row in conn.execute(stmt)})
    for call in calls:
        if call.metadata.tools:
            call.metadata.tools = expand_tools(call.metadata.tools, definitions)


def lineage(engine: Engine, run_id: str) -> Lineage:
    """The lineage of the trace holding ``run_id`` (any run of it, or the trace id).

    Raises :class:`~ragtrail.errors.NotFoundError` naming the id when nothing is stored.
    """
    with engine.connect() as conn:
        trace_id = _trace_of(conn, run_id)
        rows = conn.execute(sa.select(*run_columns(_runs)).where(_runs.c.trace_id == trace_id))
        runs = sorted((run_from_row(row) for row in rows), key=lambda r: (r.started_at, r.path))
        order = {run.id: index for index, run in enumerate(runs)}
        call_rows = list(
            conn.execute(sa.select(_calls).where(_calls.c.trace_id == trace_id))
        )
        documents = _document_uses(conn, trace_id, order)
        call_rows.sort(key=lambda row: order.get(row.run_id, len(order)))
        calls: list[LLMCallRecord] = [llm_call_from_row(row) for row in call_rows]
        _expand_tools(conn, calls)
        judged = evaluations_of_trace(conn, trace_id)
    total_cost, unpriced = sum_cost(row.total_cost for row in call_rows)
    tree, roots = _tree(runs, trace_id)
    root = tree.run if tree is not None and tree.run.id == trace_id else None
    return Lineage(
        trace_id=trace_id,
        runs=runs,
        tree=tree,
        roots=roots,
        llm_calls=calls,
        documents=documents,
        question=question_of(root.inputs) if root is not None else None,
        answer=answer_of(root.outputs) if root is not None else None,
        total_tokens=sum(row.total_tokens or 0 for row in call_rows),
        total_cost=total_cost,
        unpriced_calls=unpriced,
        evaluations=judged,
    )

