"""Callbacks of chains, prompts, parsers and retrievers, with reranking detection."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from ragtrail.capture import extract, guarded
from ragtrail.capture.rerank import record_inferred_reranker, record_reranking
from ragtrail.schemas import DocStage, Framework, RunKind

from . import _extractors as read
from ._convert import plain, run_name
from ._core import UNSET, HandlerCore
from ._documents import DocList, Reranking, reranking
from ._extractors import ChainStart, Documents
from ._names import (
    CREATE_AGENT_INTEGRATION,
    INFERRED_RERANKER_NAME,
    KIND_KEY,
    LS_INTEGRATION,
    REACT_AGENT_CALLS,
    REACT_AGENT_NODE,
    RERANKER_MARK,
    RUN_TYPE_KINDS,
)
from ._state import RunState

__all__ = ["StepCallbacks"]


class StepCallbacks(HandlerCore):
    """Chains (prompts, parsers, rerankers among them) and retrievers."""

    # -- chains, prompts, parsers, rerankers ------------------------------------------

    @guarded
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a chain, prompt, parser or reranker run."""
        kind = RUN_TYPE_KINDS.get(kwargs.get("run_type") or "chain", RunKind.CHAIN)
        marked = (metadata or {}).get(KIND_KEY) == RERANKER_MARK
        parent = self._state(parent_run_id) if parent_run_id else None
        if marked and not (parent is not None and parent.marked):
            kind = RunKind.RERANKER  # the outermost run carrying the mark
        elif ((metadata or {}).get(LS_INTEGRATION) == CREATE_AGENT_INTEGRATION
              and (parent is None or parent.integration != CREATE_AGENT_INTEGRATION)):
            kind = RunKind.AGENT  # the graph create_agent built (its nodes inherit the mark)
        deferred = bool(kwargs.get("defers_inputs"))  # streaming: inputs come at the end
        name = run_name(serialized, kwargs.get("name"), "Unnamed") or "Unnamed"
        state = self._start(run_id, parent_run_id, kind, name, None if deferred else inputs,
                            tags, metadata, marked=marked)
        if state is None:
            return
        if name in REACT_AGENT_CALLS and parent is not None:
            self._react_agent(parent)
        if kind is RunKind.PROMPT:
            found = extract(read.PROMPT_START, ChainStart(
                serialized, inputs, kwargs.get("name"), metadata,
                self.recorder.config.max_list_items))
            template = found.get("template")
            if template:
                self.recorder.note_prompt_template(state.key, template, found.get("variables"),
                                                   name=found.get("template_name"))
        elif not deferred:
            state.input_docs = extract(read.CHAIN_START, Documents(inputs)).get("documents")

    def _react_agent(self, node: RunState) -> None:
        """``create_react_agent``'s model node runs ``call_model``: its graph is an agent."""
        graph = self._state_of(node.parent) if node.name == REACT_AGENT_NODE else None
        if graph is not None and graph.kind is RunKind.CHAIN:
            graph.kind = RunKind.AGENT
            self.recorder.set_kind(graph.key, RunKind.AGENT)

    @guarded
    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a chain run; recognise reranking from its documents in and out."""
        state = self._state(run_id)
        if state is None:
            return
        inputs = kwargs.get("inputs", UNSET)
        reranked = self._detect_reranking(state, outputs, inputs)
        self._report_to_parent(state, docs=None, reranked=reranked)
        self._end(state, outputs, inputs=inputs)

    @guarded
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a chain run with its error (``cancelled`` for a closed stream)."""
        state = self._state(run_id)
        if state is not None:
            self._end(state, error=error, inputs=kwargs.get("inputs", UNSET))

    def _detect_reranking(
        self, state: RunState, outputs: Any, inputs: Any
    ) -> tuple[str, ...] | None:
        """Record a reranking step; returns the reranked hashes to report upwards."""
        if state.kind not in (RunKind.CHAIN, RunKind.RERANKER):
            return None
        out: DocList | None = extract(read.CHAIN_END, Documents(outputs)).get("documents")
        if out is None:
            return None
        if state.reranked == out.hashes:
            return out.hashes  # a step below already reranked into this very list
        source = state.input_docs or (
            extract(read.CHAIN_START, Documents(inputs)).get("documents")
            if inputs is not UNSET else None)
        found = reranking(source, out, explicit=state.kind is RunKind.RERANKER) if source else None
        if found is None:
            return None
        record_reranking(self.recorder, state.key, found.inputs(), kind=state.kind)
        return out.hashes

    # -- retrievers ----------------------------------------------------------------------

    @guarded
    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a retriever run."""
        name = run_name(serialized, kwargs.get("name"), "Retriever") or "Retriever"
        self._start(run_id, parent_run_id, RunKind.RETRIEVER, name, {"query": query}, tags,
                    metadata)

    @guarded
    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        """Close a retriever run with its ranked documents (or an inferred reranking)."""
        state = self._state(run_id)
        if state is None:
            return
        docs: DocList | None = extract(read.RETRIEVER_END, Documents(documents)).get("documents")
        reranked = None
        if docs is not None:
            if state.reranked == docs.hashes:
                reranked = docs.hashes  # a marked reranker below holds these documents
            elif state.child_retrievers == 1 and state.child_docs is not None and (
                found := reranking(state.child_docs, docs)
            ):
                self._inferred_reranker(state, state.child_docs, found)
                reranked = docs.hashes
            else:
                self.recorder.add_documents(state.key, docs.inputs(), stage=DocStage.RETRIEVED)
        self._report_to_parent(state, docs=docs, reranked=reranked)
        self._end(state, list(documents))

    def _inferred_reranker(self, state: RunState, source: DocList, found: Reranking) -> None:
        # LangChain emits no callback for document compressors, so a reranker inside a
        # ContextualCompressionRetriever is inferred from the child and parent outputs.
        recorder = self.recorder
        limit = recorder.config.max_list_items
        record_inferred_reranker(
            recorder, str(uuid.uuid5(uuid.NAMESPACE_URL, f"ragtrail:rerank:{state.key}")),
            parent_id=state.key, name=INFERRED_RERANKER_NAME, framework=Framework.LANGCHAIN,
            inputs={"documents": plain(list(source.documents), limit)},
            outputs=plain(list(found.output.documents), limit), documents=found.inputs())

    @guarded
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a retriever run with its error."""
        state = self._state(run_id)
        if state is not None:
            self._end(state, error=error)

