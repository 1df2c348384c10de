"""ragtrail for LlamaIndex: one handler captures queries, retrieval, reranking,
synthesis and LLM calls, with lineage, documents by stage and LLM metadata.

    from ragtrail import Trail
    from ragtrail_llamaindex import RagtrailHandler, instrument, uninstrument

    Settings.callback_manager = CallbackManager([RagtrailHandler(trail)])  # classic
    handler = instrument(trail)          # or: the root dispatcher (every component)
    handler.last_trace_id                # trace of the latest finished query
    evaluate(trail, FaithfulnessEvaluator(llm=judge), trace_id)   # judge a stored trace
"""

from __future__ import annotations

from ._evaluate import evaluate
from ._handler import RagtrailHandler, instrument, uninstrument

__all__ = ["RagtrailHandler", "evaluate", "instrument", "uninstrument"]
