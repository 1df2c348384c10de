"""Errors in LlamaIndex runs, callback events outside spans, and capture that never
gets in the application's way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.llms import MockLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle

from li_support import UsageLLM, build_index, nodes_of, reset_llamaindex
from ragtrail import Trail
from ragtrail.schemas import DocStage, RunKind, RunStatus
from ragtrail_llamaindex import RagtrailHandler, instrument


class IndexUnavailable(Exception):
    """The vector store is down."""


class FailingRetriever(BaseRetriever):
    """Raises the exception it was given."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self._error = error

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        raise self._error


class BrokenStreamLLM(UsageLLM):
    """Streams one token, then fails."""

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False,
                        **kwargs: Any) -> CompletionResponseGen:
        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text="WAL", delta="WAL")
            raise IndexUnavailable("connection reset mid-stream")

        return gen()


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


def _statuses(lineage: Any) -> dict[str, Any]:
    return {run.name: run.status for run in lineage.runs}


@pytest.mark.parametrize("form", ["instrument", "callbacks"])
def test_error_inside_retrieval_reaches_the_caller_and_is_stored(sqlite_url: str,
                                                                  form: str) -> None:
    trail = Trail(sqlite_url)
    if form == "instrument":
        handler = instrument(trail)
    else:
        handler = RagtrailHandler(trail)
        Settings.callback_manager = CallbackManager([handler])
    error = IndexUnavailable("vector store down")
    engine = RetrieverQueryEngine.from_args(FailingRetriever(error), llm=MockLLM())
    with pytest.raises(IndexUnavailable) as raised:
        engine.query("what is WAL?")
    assert raised.value is error  # unchanged, not wrapped
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    assert [(r.kind, r.name) for r in lineage.runs] == [
        (RunKind.CHAIN, "RetrieverQueryEngine.query"),
        (RunKind.RETRIEVER, "FailingRetriever.retrieve")]
    for run in lineage.runs:
        assert run.status is RunStatus.ERROR
        assert (run.error.type, run.error.message) == ("IndexUnavailable", "vector store down")
    assert lineage.documents == []
    trail.close()


async def test_async_error_inside_retrieval(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    engine = RetrieverQueryEngine.from_args(FailingRetriever(IndexUnavailable("down")),
                                            llm=MockLLM())
    with pytest.raises(IndexUnavailable):
        await engine.aquery("what is WAL?")
    assert trail.flush()
    assert set(_statuses(trail.lineage(handler.last_trace_id)).values()) == {RunStatus.ERROR}
    trail.close()


def test_error_while_streaming_fails_the_llm_call_and_the_answer(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    engine = build_index().as_query_engine(llm=BrokenStreamLLM(), streaming=True)
    instrument(trail)
    response = engine.query("what is WAL?")
    with pytest.raises(IndexUnavailable, match="mid-stream"):
        "".join(response.response_gen)
    assert trail.flush()
    (summary,) = trail.traces()
    statuses = _statuses(trail.lineage(summary.trace_id))
    assert statuses["BrokenStreamLLM.stream_complete"] is RunStatus.ERROR
    assert statuses["BrokenStreamLLM.stream"] is RunStatus.ERROR
    assert statuses["CompactAndRefine.synthesize"] is RunStatus.ERROR
    assert statuses["RetrieverQueryEngine.query"] is RunStatus.ERROR
    assert statuses["VectorIndexRetriever.retrieve"] is RunStatus.OK
    trail.close()


def test_capture_never_breaks_the_application(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    instrument(trail)
    trail.close()  # every record is now refused
    engine = build_index().as_query_engine(llm=UsageLLM())
    assert str(engine.query("what is WAL?")) == UsageLLM().answer


def test_callback_events_outside_any_span_are_recorded_from_payloads(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = RagtrailHandler(trail)
    manager = CallbackManager([handler])
    retrieved = nodes_of(["alpha text", "beta text", "gamma text"])
    with manager.event(CBEventType.QUERY, payload={EventPayload.QUERY_STR: "q?"}) as query:
        with manager.event(CBEventType.RETRIEVE,
                           payload={EventPayload.QUERY_STR: "q?"}) as retrieve:
            retrieve.on_end(payload={EventPayload.NODES: retrieved})
        with manager.event(CBEventType.RERANKING, payload={
                EventPayload.NODES: retrieved, EventPayload.MODEL_NAME: "legacy-model",
                EventPayload.TOP_K: 2}) as rerank:
            rerank.on_end(payload={EventPayload.NODES: [retrieved[2], retrieved[0]]})
        with manager.event(CBEventType.LLM, payload={
                EventPayload.PROMPT: "Context: gamma text\nalpha text\nQ: q?",
                EventPayload.SERIALIZED: {"model": "gpt-4o-mini", "class_name": "X"}}) as llm:
            llm.on_end(payload={EventPayload.COMPLETION: CompletionResponse(text="an answer")})
        query.on_end(payload={EventPayload.RESPONSE: "an answer"})
    with pytest.raises(IndexUnavailable), manager.event(CBEventType.RETRIEVE):
        raise IndexUnavailable("legacy failure")
    assert trail.flush()

    lineage = trail.lineage(query._event_id)
    assert handler.last_trace_id is not None
    assert [(r.kind, r.name) for r in lineage.runs] == [
        (RunKind.CHAIN, "query"), (RunKind.RETRIEVER, "retrieve"),
        (RunKind.RERANKER, "reranking"), (RunKind.LLM, "llm")]
    assert {r.parent_id for r in lineage.runs[1:]} == {query._event_id}
    by_stage = {s: [(d.document_id, d.input_rank) for d in lineage.documents if d.stage is s]
                for s in DocStage}
    assert by_stage[DocStage.RETRIEVED] == [("n0", None), ("n1", None), ("n2", None)]
    assert by_stage[DocStage.RERANKED] == [("n2", 2), ("n0", 0)]
    assert sorted(by_stage[DocStage.IN_PROMPT]) == [("n0", None), ("n2", None)]
    assert lineage.runs[2].metadata["model_name"] == "legacy-model"
    (call,) = lineage.llm_calls
    assert (call.metadata.provider_model, call.metadata.output_text) == ("gpt-4o-mini",
                                                                         "an answer")
    assert lineage.question == "q?" and lineage.answer == "an answer"
    failed = trail.lineage(handler.last_trace_id).runs[0]
    assert (failed.status, failed.error.type) == (RunStatus.ERROR, "IndexUnavailable")
    trail.close()
