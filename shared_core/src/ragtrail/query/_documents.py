"""``answers_using(engine, document)``: the traces a document took part in.

Served by the ``document_id`` and ``content_hash`` indexes of ``document_links``
(two index lookups, UNION ALL), never a scan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..errors import ConfigError
from ..schemas import DocStage, bounded_key
from ..store import _tables
from ..store._payloads import resolved
from ._common import answer_of, chunks, question_of
from ._evaluations import EVALUATION_REQUEST_TYPE
from ._models import DocumentUsage

__all__ = ["answers_using", "links_statement"]

_links = _tables.document_links
_runs = _tables.runs
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# With a limit, up to this many links per wanted trace are read as they come (a trace
# links a document a few times: retrieved, reranked, in the prompt); a document with
# more is popular, and SQL chooses its newest traces instead.
_LINKS_PER_TRACE = 10


def _stages_from(min_stage: DocStage | None) -> list[sa.ColumnElement[bool]]:
    if min_stage is None or min_stage is DocStage.RETRIEVED:
        return []
    return [_links.c.stage.in_([s.value for s in DocStage if s.order >= min_stage.order])]


def links_statement(document: str, min_stage: DocStage | None = None
                    ) -> sa.CompoundSelect[Any]:
    """The links of a document given by id or content hash (one index lookup each), at
    ``min_stage`` or later when given."""
    stages = _stages_from(min_stage)
    return sa.union_all(
        sa.select(_links).where(_links.c.document_id == document, *stages),
        sa.select(_links).where(_links.c.content_hash == document, *stages),
    )


def _roots(conn: Connection, trace_ids: Iterable[str]) -> dict[str, Any]:
    """id -> (id, inputs, outputs, started_at) of the stored roots among ``trace_ids``.

    Only the columns a usage shows: decoding whole runs (metadata, events, environment)
    and validating them was most of the time of this query.
    """
    columns = (_runs.c.id, resolved(_runs, "inputs").label("inputs"),
               resolved(_runs, "outputs").label("outputs"), _runs.c.started_at,
               _runs.c.request_type)
    found: dict[str, Any] = {}
    for batch in chunks(sorted(set(trace_ids))):
        for row in conn.execute(sa.select(*columns).where(_runs.c.id.in_(batch))):
            found[row.id] = row
    return found


def _newest_first(trace_id: str, roots: dict[str, Any]) -> tuple[bool, datetime, str]:
    """Sort key (reversed): newest root first; traces whose root is not stored yet last."""
    root = roots.get(trace_id)
    started = root.started_at if root is not None else None
    return started is not None, started or _EPOCH, trace_id


def _usage(trace_id: str, links: list[Any], roots: dict[str, Any]) -> DocumentUsage:
    top = max(DocStage(link.stage).order for link in links)
    at_top = sorted(
        (link for link in links if DocStage(link.stage).order == top),
        key=lambda link: (link.rank, link.run_id),
    )
    best = at_top[0]
    root = roots.get(trace_id)
    return DocumentUsage(
        trace_id=trace_id,
        run_ids=sorted({link.run_id for link in links}),
        document_id=best.document_id,
        content_hash=best.content_hash,
        stage=DocStage(best.stage),
        rank=best.rank,
        score=best.score,
        question=question_of(root.inputs) if root is not None else None,
        answer=answer_of(root.outputs) if root is not None else None,
        started_at=root.started_at if root is not None else None,
    )


def answers_using(engine: Engine, document: str, *, limit: int | None = None,
                  min_stage: DocStage | str | None = None,
                  include_evaluations: bool = False) -> list[DocumentUsage]:
    """Traces that used ``document`` (a document id or content hash), newest first.

    Each says the highest stage the document reached in that trace (retrieved <
    reranked < in_prompt) and its best rank and score there. An unknown document
    gives an empty list. ``limit`` keeps the newest ``limit`` traces: for a document
    used by thousands of answers only those are read. ``min_stage`` keeps the traces
    where the document got at least that far (``"in_prompt"``: the answers whose prompt
    it reached; a document an LLM reranker or filter dropped is not among them), and
    their links from that stage on. Judges' traces (which prompt
    with the documents they judge) are left out unless ``include_evaluations``.
    """
    try:
        wanted = DocStage(min_stage) if min_stage is not None else None
    except ValueError:
        valid = ", ".join(s.value for s in DocStage)
        raise ConfigError(f"unknown stage {min_stage!r}; use one of {valid}") from None
    if not isinstance(document, str) or not document:
        raise ConfigError(f"document must be a non-empty id or content hash, got {document!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}")
    document = bounded_key(document)  # a long id is stored bounded
    with engine.connect() as conn:
        if limit is None:
            rows = conn.execute(links_statement(document, wanted)).all()
        else:
            cap = limit * _LINKS_PER_TRACE
            rows = conn.execute(links_statement(document, wanted).limit(cap + 1)).all()
            if len(rows) > cap:  # a popular document: SQL picks its newest traces
                rows = [row for row in conn.execute(
                            _newest_links_statement(document, limit, wanted))
                        if document in (row.document_id, row.content_hash)]
        by_trace: dict[str, dict[tuple[str, str, str], Any]] = defaultdict(dict)
        for row in rows:  # a link can match both by id and by hash: keep it once
            by_trace[row.trace_id][(row.run_id, row.content_hash, row.stage)] = row
        roots = _roots(conn, by_trace)
    if not include_evaluations:
        for trace_id in [t for t, root in roots.items()
                         if root.request_type == EVALUATION_REQUEST_TYPE]:
            del by_trace[trace_id]
    found = [_usage(trace, list(links.values()), roots) for trace, links in by_trace.items()]
    found.sort(key=lambda use: _newest_first(use.trace_id, roots), reverse=True)
    return found if limit is None else found[:limit]


def _newest_links_statement(document: str, limit: int, min_stage: DocStage | None = None
                            ) -> sa.Select[Any]:
    """Every link of the ``limit`` newest traces that used ``document``, chosen in SQL.

    The traces are ordered like the Python sort of :func:`answers_using` (newest root
    first, ties by trace id, traces without a stored root last), so a document used by
    thousands of answers costs one ordered pass over their roots' primary keys, not
    thousands of rows read into Python.
    """
    stages = _stages_from(min_stage)
    traces = sa.union(
        sa.select(_links.c.trace_id).where(_links.c.document_id == document, *stages),
        sa.select(_links.c.trace_id).where(_links.c.content_hash == document, *stages),
    ).subquery()
    newest = (
        sa.select(traces.c.trace_id)
        .select_from(traces.outerjoin(_runs, _runs.c.id == traces.c.trace_id))
        .order_by(_runs.c.id.is_(None), _runs.c.started_at.desc(), traces.c.trace_id.desc())
        .limit(limit)
    )
    # By trace id only (the caller keeps this document's links): with the document
    # condition here too, SQLite would rather read every link of the document again.
    return sa.select(_links).where(_links.c.trace_id.in_(newest.scalar_subquery()), *stages)
