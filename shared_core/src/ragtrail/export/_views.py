"""What the exporters map: one run with its LLM call and its documents, from either side.

Stored traces come from the query layer (:func:`ragtrail.query.lineage`); live export
gets the records the writer has just stored. Both become :class:`RunView` objects, so
the OpenTelemetry and OpenLineage mappings are written once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..query import DocumentUse, Lineage
from ..schemas import CapturedRun, LLMMetadata, Run

__all__ = ["RunView", "views_from_lineage", "views_from_records"]


@dataclass
class RunView:
    """A stored run, its LLM call (if any) and the documents it touched, by stage and rank."""

    run: Run
    llm: LLMMetadata | None = None
    documents: list[DocumentUse] = field(default_factory=list)


def views_from_lineage(lineage: Lineage) -> list[RunView]:
    """Every run of a stored trace, in start order."""
    calls = {call.run_id: call.metadata for call in lineage.llm_calls}
    docs: dict[str, list[DocumentUse]] = defaultdict(list)
    for use in lineage.documents:
        docs[use.run_id].append(use)
    return [RunView(run, calls.get(run.id), docs.get(run.id, [])) for run in lineage.runs]


def views_from_records(records: Iterable[Any]) -> list[RunView]:
    """Records as the writer stored them (CapturedRun, or a spooled record read back).

    A record that cannot be read as a CapturedRun is skipped (it is stored; the
    ``ragtrail export`` command can still send it).
    """
    views = []
    for record in records:
        captured = _captured(record)
        if captured is None:
            continue
        contents = {doc.content_hash: doc for doc in captured.documents}
        uses = []
        for link in captured.links:
            doc = contents.get(link.content_hash)
            uses.append(DocumentUse(
                run_id=link.run_id, stage=link.stage, rank=link.rank, score=link.score,
                input_rank=link.input_rank, document_id=link.document_id,
                content_hash=link.content_hash,
                content=doc.content if doc is not None else None,
                metadata=dict(doc.metadata) if doc is not None else {},
            ))
        uses.sort(key=lambda use: (use.stage.order, use.rank))
        views.append(RunView(captured.run, captured.llm, uses))
    return views


def _captured(record: Any) -> CapturedRun | None:
    if isinstance(record, CapturedRun):
        return record
    to_record = getattr(record, "to_record", None)  # FlatRecord, SerializedRecord
    if to_record is None:
        return None
    try:
        result = to_record()
    except ValueError:
        return None
    return result if isinstance(result, CapturedRun) else None

