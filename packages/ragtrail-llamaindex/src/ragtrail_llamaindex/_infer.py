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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ragtrail.capture import Recorder, guarded
from ragtrail.capture.rerank import RerankPlan, record_inferred_reranker, rerank_plan
from ragtrail.schemas import Framework

from ._extract import NodeRef, document_inputs, node_refs
from ._families import reranker_info

__all__ = ["Pipeline", "infer_rerank", "node_plan", "pipeline_of"]


@dataclass(eq=False)
class Pipeline:
    """What a query (or chat) run has seen of its retrieve -> postprocess -> synthesize."""

    postprocessors: list[Any] = field(default_factory=list)
    retrieved: list[NodeRef] | None = None
    postprocessed: bool = False


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
    plan = node_plan(retrieved, node_refs(nodes))
    if plan is None or plan.identity:
        return  # not a subset of what was retrieved, or nothing changed
    names = [type(p).__name__ for p in pipeline.postprocessors] or ["NodePostprocessor"]
    metadata: dict[str, Any] = {"postprocessors": names}
    if len(pipeline.postprocessors) == 1:
        metadata.update(reranker_info(pipeline.postprocessors[0]))
    refs = node_refs(nodes)
    record_inferred_reranker(
        recorder, str(uuid.uuid4()), parent_id=parent_id,
        name="+".join(names) + ".apostprocess_nodes", framework=Framework.LLAMAINDEX,
        inputs={"nodes": [r.as_dict() for r in retrieved]},
        outputs={"nodes": [r.as_dict() for r in refs]},
        documents=document_inputs(nodes, plan.input_ranks), metadata=metadata)


def node_plan(inputs: Sequence[NodeRef], outputs: Sequence[NodeRef]) -> RerankPlan | None:
    """The rerank plan of a step from the nodes in and out (same node, same text), or
    None when it changed or added nodes (then it is not a reranker)."""
    return rerank_plan([ref.key for ref in inputs], [ref.key for ref in outputs])
