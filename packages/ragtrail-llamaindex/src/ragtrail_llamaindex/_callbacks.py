"""Classic callback events that happen outside every LlamaIndex span.

Inside a span the dispatcher already tells the engine everything, so a callback event
there only adds its id (and a legacy rerank's model) to the run it belongs to. Code
that emits callback events with no dispatcher span around it (older integrations,
hand-written ``callback_manager.event(...)`` blocks) is recorded from the callback
payloads here, with the event id as run id and the callback trace stack as lineage.
What is kept per event rides along with its run in the Recorder (the run table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from llama_index.core.callbacks.schema import CBEventType, EventPayload

from ragtrail.capture import LLMUpdate, Recorder, extract, guarded
from ragtrail.capture.rerank import record_reranking
from ragtrail.schemas import DocStage, Framework, RunKind

from . import _extractors as read
from ._extract import NodeRef, document_inputs, node_refs, plain, query_text
from ._extractors import CallbackLLMStart, llm_answer
from ._infer import node_plan

__all__ = ["LegacyCallbacks", "rerank_details"]

_KINDS = {
    CBEventType.RETRIEVE: RunKind.RETRIEVER,
    CBEventType.RERANKING: RunKind.RERANKER,
    CBEventType.LLM: RunKind.LLM,
    CBEventType.EMBEDDING: RunKind.EMBEDDING,
    CBEventType.FUNCTION_CALL: RunKind.TOOL,
    CBEventType.AGENT_STEP: RunKind.AGENT,
}


@dataclass(eq=False)
class _Event:
    event_type: CBEventType
    top: bool
    input_refs: list[NodeRef] = field(default_factory=list)


def _payload(payload: Mapping[Any, Any] | None) -> dict[str, Any]:
    return {str(getattr(k, "value", k)): v for k, v in (payload or {}).items()}


@guarded(default=None)
def rerank_details(payload: Mapping[Any, Any] | None) -> dict[str, Any] | None:
    """Model name and top_n of a legacy ``RERANKING`` start payload."""
    data = _payload(payload)
    info = {"model_name": data.get(EventPayload.MODEL_NAME.value),
            "top_n": data.get(EventPayload.TOP_K.value)}
    return {k: v for k, v in info.items() if v is not None} or None


class LegacyCallbacks:
    """Runs recorded from callback payloads alone (see module docstring)."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self.last_trace_id: str | None = None

    @guarded
    def start(self, event_type: CBEventType, payload: Mapping[Any, Any] | None,
              event_id: str, parent_id: str | None) -> None:
        """Open a run for a callback event."""
        data = _payload(payload)
        known = parent_id is not None and self._recorder.state_of(parent_id, self) is not None
        parent = parent_id if known else None
        event = _Event(event_type, parent is None)
        if event_type is CBEventType.RERANKING:
            event.input_refs = node_refs(data.get(EventPayload.NODES.value))
        meta = rerank_details(payload) if event_type is CBEventType.RERANKING else None
        self._recorder.start_run(
            event_id, kind=_KINDS.get(event_type, RunKind.CHAIN), name=event_type.value,
            framework=Framework.LLAMAINDEX, parent_id=parent, inputs=_inputs(event, data),
            metadata={**(meta or {}), "llamaindex_event_ids": [event_id]},
            owner=self, state=event, on_end=self._top_ended if event.top else None,
        )
        if event_type is CBEventType.LLM:
            self._recorder.update_llm(event_id, cast(LLMUpdate, extract(
                read.CALLBACK_LLM_START, CallbackLLMStart(data))))

    @guarded
    def end(self, event_type: CBEventType, payload: Mapping[Any, Any] | None,
            event_id: str) -> None:
        """End the run of a callback event this class opened (others are ignored)."""
        event: _Event | None = self._recorder.state_of(event_id, self)
        if event is None:
            return
        data = _payload(payload)
        error = data.get(EventPayload.EXCEPTION.value)
        if isinstance(error, BaseException):
            self._recorder.fail_run(event_id, error)
        else:
            self._recorder.end_run(event_id, outputs=self._outputs(event, event_id, data))

    def _top_ended(self, trace_id: str) -> None:
        self.last_trace_id = trace_id

    def _outputs(self, event: _Event, event_id: str, data: dict[str, Any]) -> Any:
        nodes = data.get(EventPayload.NODES.value)
        if event.event_type is CBEventType.RETRIEVE:
            self._recorder.add_documents(event_id, document_inputs(nodes),
                                         stage=DocStage.RETRIEVED)
        elif event.event_type is CBEventType.RERANKING:
            plan = node_plan(event.input_refs, node_refs(nodes))
            if plan is not None:
                record_reranking(self._recorder, event_id,
                                 document_inputs(nodes, plan.input_ranks), kind=RunKind.RERANKER)
        elif event.event_type is CBEventType.LLM:
            response = data.get(EventPayload.RESPONSE.value) or data.get(
                EventPayload.COMPLETION.value)
            meta = llm_answer(response)
            self._recorder.update_llm(event_id, meta)
            return {"output": meta.get("output_text")}
        if nodes is not None:
            return {"nodes": [ref.as_dict() for ref in node_refs(nodes)]}
        return plain(data)


def _inputs(event: _Event, data: dict[str, Any]) -> Any:
    query = data.get(EventPayload.QUERY_STR.value)
    if event.input_refs:
        return {"query": query_text(query), "nodes": [r.as_dict() for r in event.input_refs]}
    if query is not None:
        return {"query": query_text(query)}
    return plain({k: v for k, v in data.items() if k != EventPayload.SERIALIZED.value})
