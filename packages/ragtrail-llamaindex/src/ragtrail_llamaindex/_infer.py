"""Reranking that LlamaIndex reports neither as a span nor as an event.

LlamaIndex puts a dispatcher span on ``_postprocess_nodes`` but not on the async path
``aquery`` takes (``apostprocess_nodes``): ``LLMRerank`` and every postprocessor that
overrides ``_apostprocess_nodes`` then run silently. When a query's synthesizer receives
a reordered or filtered subset of what the query's retriever returned, and no
postprocessor run was seen in between, the step is stored as a reranker run marked
``inferred`` (its timing is not known: it starts and ends when the synthesizer starts).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from ragtrail.capture import Recorder, guarded
from ragtrail.schemas import DocStage, Framework, RunKind

from ._extract import NodeRef, document_inputs, node_refs
from ._families import rerank_plan, reranker_info

__all__ = ["Pipeline", "infer_rerank", "pipeline_of"]


@dataclass(eq=False)
class Pipeline:
    """What a query (or chat) run has seen of its retrieve -> postprocess -> synthesize."""

    postprocessors: list[Any] = field(default_factory=list)
    retrieved: list[NodeRef] | None = None
    postprocessed: bool = False


@guarded(default=None)
def pipeline_of(engine: Any) -> Pipeline:
    """A fresh pipeline for a query or chat engine (its postprocessors, if it has any)."""
    found = getattr(engine, "_node_postprocessors", None) or getattr(
        engine, "node_postprocessors", None)
    return Pipeline(postprocessors=list(found) if isinstance(found, (list, tuple)) else [])


@guarded
def infer_rerank(recorder: Recorder, parent_id: str, pipeline: Pipeline, nodes: Any) -> None:
    """Record the silent reranking between retrieval and synthesis, if there was one."""
    retrieved, pipeline.retrieved = pipeline.retrieved, None
    if retrieved is None or pipeline.postprocessed:
        return
    plan = rerank_plan(retrieved, node_refs(nodes))
    if plan is None or plan == list(range(len(retrieved))):
        return  # not a subset of what was retrieved, or nothing changed
    names = [type(p).__name__ for p in pipeline.postprocessors] or ["NodePostprocessor"]
    metadata: dict[str, Any] = {"inferred": True, "postprocessors": names}
    if len(pipeline.postprocessors) == 1:
        metadata.update(reranker_info(pipeline.postprocessors[0]))
    run_id = str(uuid.uuid4())
    refs = node_refs(nodes)
    recorder.start_run(run_id, kind=RunKind.RERANKER, name="+".join(names) + ".apostprocess_nodes",
                       framework=Framework.LLAMAINDEX, parent_id=parent_id,
                       inputs={"nodes": [r.as_dict() for r in retrieved]}, metadata=metadata)
    recorder.add_documents(run_id, document_inputs(nodes, plan), stage=DocStage.RERANKED)
    recorder.end_run(run_id, outputs={"nodes": [r.as_dict() for r in refs]})
