"""Reranking in LlamaIndex: postprocessors without events, rerank events, legacy events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import MockLLM
from llama_index.core.postprocessor import LLMRerank, SimilarityPostprocessor
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from li_support import ChoiceLLM, build_index, ragtrail_handlers_on_dispatcher, reset_llamaindex
from ragtrail import Trail
from ragtrail.schemas import DocStage, RunKind
from ragtrail_llamaindex import RagtrailHandler, instrument

QUESTION = "how does write ahead logging work in sqlite"
dispatcher = get_dispatcher(__name__)


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


class EventReranker(BaseNodePostprocessor):
    """Reverses its input and reports it the way LlamaIndex's own rerankers do: the
    dispatcher's ReRank events (unless ``legacy_only``, like SentenceTransformerRerank)
    and the classic RERANKING callback event."""

    top_n: int = 3
    legacy_only: bool = False

    def _event(self, event: Any) -> None:
        if not self.legacy_only:
            dispatcher.event(event)

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        self._event(ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=self.top_n,
                                     model_name="reverse-model"))
        with self.callback_manager.event(CBEventType.RERANKING, payload={
            EventPayload.NODES: nodes, EventPayload.MODEL_NAME: "reverse-model",
            EventPayload.QUERY_STR: query_bundle.query_str if query_bundle else None,
            EventPayload.TOP_K: self.top_n,
        }) as event:
            result = [NodeWithScore(node=n.node, score=float(i))
                      for i, n in enumerate(reversed(nodes[-self.top_n:]))]
            event.on_end(payload={EventPayload.NODES: result})
        self._event(ReRankEndEvent(nodes=result))
        return result


class RerankingRetriever(BaseRetriever):
    """Retrieves, then reranks inside its own method (no postprocessor span at all)."""

    start_event: type[ReRankStartEvent] = ReRankStartEvent
    end_event: type[ReRankEndEvent] = ReRankEndEvent
    model_name = "inline-model"

    def __init__(self, inner: BaseRetriever) -> None:
        super().__init__()
        self._inner = inner

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        nodes = self._inner.retrieve(query_bundle)
        dispatcher.event(self.start_event(query=query_bundle, nodes=nodes, top_n=2,
                                          model_name=self.model_name))
        result = list(reversed(nodes))[:2]
        dispatcher.event(self.end_event(nodes=result))
        return result


class Uppercase(BaseNodePostprocessor):
    """Rewrites node text: a transform, not a reranker."""

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text=n.node.get_content().upper(),
                                            id_=n.node.node_id), score=n.score) for n in nodes]


def _query(trail: Trail, postprocessors: list[Any], *, top_k: int = 4) -> Any:
    handler = instrument(trail)
    engine = build_index().as_query_engine(llm=MockLLM(), similarity_top_k=top_k,
                                           node_postprocessors=postprocessors)
    response = engine.query(QUESTION)
    assert trail.flush()
    return response, trail.lineage(handler.last_trace_id)


def _run(lineage: Any, name: str) -> Any:
    (run,) = [r for r in lineage.runs if r.name == name]
    return run


def _docs(lineage: Any, run: Any, stage: DocStage) -> list[Any]:
    return [d for d in lineage.documents if d.run_id == run.id and d.stage is stage]


def test_llm_rerank_without_events_is_a_reranker(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    choice = ChoiceLLM()
    response, lineage = _query(trail, [LLMRerank(llm=choice, top_n=2, choice_batch_size=10)])
    rerank = _run(lineage, "LLMRerank._postprocess_nodes")
    assert [r.id for r in lineage.runs if r.kind is RunKind.RERANKER] == [rerank.id]
    assert rerank.metadata["model_name"] == "choice-model" and rerank.metadata["top_n"] == 2
    retrieved = [d.document_id for d in lineage.documents if d.stage is DocStage.RETRIEVED]
    reranked = _docs(lineage, rerank, DocStage.RERANKED)
    # The choice model picked the 2nd, then the 1st document of its input.
    assert [d.document_id for d in reranked] == [retrieved[1], retrieved[0]]
    assert [(d.input_rank, d.score) for d in reranked] == [(1, 9.0), (0, 4.0)]
    assert [d.document_id for d in reranked] == [n.node.node_id for n in response.source_nodes]
    names = {r.id: r.name for r in lineage.runs}
    choice_call = _run(lineage, "ChoiceLLM.complete")
    assert names[_run(lineage, "ChoiceLLM.predict").parent_id] == rerank.name
    assert names[choice_call.parent_id] == "ChoiceLLM.predict"
    answer_call = _run(lineage, "MockLLM.complete")
    assert {d.document_id for d in _docs(lineage, answer_call, DocStage.IN_PROMPT)} == {
        d.document_id for d in reranked}
    trail.close()


async def test_async_llm_rerank_is_inferred_between_retrieval_and_synthesis(
        sqlite_url: str) -> None:
    # LlamaIndex gives the async postprocessing path no span and LLMRerank no event.
    trail = Trail(sqlite_url)
    engine = build_index().as_query_engine(
        llm=MockLLM(), similarity_top_k=4,
        node_postprocessors=[LLMRerank(llm=ChoiceLLM(), top_n=2, choice_batch_size=10)])
    handler = instrument(trail)
    response = await engine.aquery(QUESTION)
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    (rerank,) = [r for r in lineage.runs if r.kind is RunKind.RERANKER]
    assert rerank.name == "LLMRerank.apostprocess_nodes"
    assert rerank.metadata == {"inferred": True, "postprocessors": ["LLMRerank"],
                               "model_name": "choice-model", "top_n": 2}
    assert rerank.parent_id == lineage.runs[0].id
    reranked = _docs(lineage, rerank, DocStage.RERANKED)
    assert [(d.input_rank, d.score) for d in reranked] == [(1, 9.0), (0, 4.0)]
    assert [d.document_id for d in reranked] == [n.node.node_id for n in response.source_nodes]
    trail.close()


def test_filtering_postprocessor_is_a_reranker_and_a_transform_is_not(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    response, lineage = _query(
        trail, [SimilarityPostprocessor(similarity_cutoff=0.3), Uppercase()], top_k=5)
    similarity = _run(lineage, "SimilarityPostprocessor._postprocess_nodes")
    assert similarity.kind is RunKind.RERANKER
    kept = _docs(lineage, similarity, DocStage.RERANKED)
    retrieved = [d for d in lineage.documents if d.stage is DocStage.RETRIEVED]
    assert 0 < len(kept) < len(retrieved)  # it filtered
    assert [d.input_rank for d in kept] == list(range(len(kept)))
    assert all(d.score is not None and d.score >= 0.3 for d in kept)
    upper = _run(lineage, "Uppercase._postprocess_nodes")
    assert upper.kind is RunKind.CHAIN
    assert [d for d in lineage.documents if d.run_id == upper.id] == []
    assert [n["node_id"] for n in upper.outputs["nodes"]] == [d.document_id for d in kept]
    assert response.source_nodes[0].node.get_content().isupper()
    trail.close()


def test_rerank_events_give_model_and_top_n(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    _, lineage = _query(trail, [EventReranker(top_n=3)])
    rerank = _run(lineage, "EventReranker._postprocess_nodes")
    assert rerank.kind is RunKind.RERANKER
    assert (rerank.metadata["model_name"], rerank.metadata["top_n"]) == ("reverse-model", 3)
    reranked = _docs(lineage, rerank, DocStage.RERANKED)
    assert [(d.input_rank, d.score) for d in reranked] == [(3, 0.0), (2, 1.0), (1, 2.0)]
    assert len(lineage.runs) == 7  # the events add no run of their own
    trail.close()


def test_legacy_reranking_event_in_the_callback_form(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = RagtrailHandler(trail)
    Settings.callback_manager = CallbackManager([handler])
    reranker = EventReranker(top_n=2, legacy_only=True)
    engine = build_index().as_query_engine(llm=MockLLM(), similarity_top_k=4,
                                           node_postprocessors=[reranker])
    engine.query(QUESTION)
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    rerank = _run(lineage, "EventReranker._postprocess_nodes")
    # Model and top_n come from the classic event's payload alone.
    assert (rerank.metadata["model_name"], rerank.metadata["top_n"]) == ("reverse-model", 2)
    (event_id,) = rerank.metadata["llamaindex_event_ids"]  # the RERANKING callback event
    assert len(event_id) == 36
    assert [d.input_rank for d in _docs(lineage, rerank, DocStage.RERANKED)] == [3, 2]
    trail.close()


def test_rerank_events_outside_a_postprocessor_become_their_own_run(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    retriever = RerankingRetriever(build_index().as_retriever(similarity_top_k=4))
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query(QUESTION)
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    names = {r.id: r.name for r in lineage.runs}
    (rerank,) = [r for r in lineage.runs if r.kind is RunKind.RERANKER]
    assert rerank.name == "inline-model" and rerank.metadata["top_n"] == 2
    assert names[rerank.parent_id] == "RerankingRetriever.retrieve"
    reranked = _docs(lineage, rerank, DocStage.RERANKED)
    assert [d.input_rank for d in reranked] == [3, 2]
    assert [d.document_id for d in reranked] == [n.node.node_id for n in response.source_nodes]
    trail.close()


class VendorScoresStart(ReRankStartEvent):
    """An integration's own rerank event: told by its type, whatever its class name."""


class VendorScoresEnd(ReRankEndEvent):
    """The end of it."""


class VendorRerankingRetriever(RerankingRetriever):
    start_event = VendorScoresStart
    end_event = VendorScoresEnd
    model_name = "vendor-model"


def test_rerank_events_are_recognised_by_type_not_by_name(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    retriever = VendorRerankingRetriever(build_index().as_retriever(similarity_top_k=4))
    RetrieverQueryEngine.from_args(retriever, llm=MockLLM()).query(QUESTION)
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    (rerank,) = [r for r in lineage.runs if r.kind is RunKind.RERANKER]
    assert rerank.name == "vendor-model"
    assert rerank.metadata["llamaindex_event"] == "VendorScoresStart"
    assert [d.input_rank for d in _docs(lineage, rerank, DocStage.RERANKED)] == [3, 2]
    trail.close()


def test_rerank_events_outside_every_span_become_a_run_of_their_own(sqlite_url: str) -> None:
    # No span around the events (the application dispatching them itself): the start
    # and end still pair up, and leave nothing behind in the span bookkeeping.
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    nodes = build_index().as_retriever(similarity_top_k=3).retrieve(QUESTION)
    dispatcher.event(ReRankStartEvent(query=QueryBundle(QUESTION), nodes=nodes, top_n=2,
                                      model_name="spanless-model"))
    dispatcher.event(ReRankEndEvent(nodes=list(reversed(nodes))[:2]))
    assert trail.flush()
    (rerank,) = [r for r in trail.lineage(handler.last_trace_id).runs
                 if r.kind is RunKind.RERANKER]
    assert rerank.name == "spanless-model" and rerank.parent_id is None
    assert [d.input_rank for d in _docs(trail.lineage(handler.last_trace_id), rerank,
                                        DocStage.RERANKED)] == [2, 1]
    assert trail.recorder.stats()["open_runs"] == 0
    spans = [h for h in ragtrail_handlers_on_dispatcher() if hasattr(h, "open_spans")]
    assert len(spans) == 1 and spans[0].open_spans == {}
    trail.close()
