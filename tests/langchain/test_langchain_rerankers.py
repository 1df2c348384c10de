"""Reranking, which LangChain has no callback for: (a) inferred from a step's documents
in and out, (b) inferred between a retriever and its child retriever, (c) marked."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

from lc_support import (
    assert_same_tree,
    build_rag_chain,
    make_retriever,
    open_trail,
    rerank,
    stored,
)
from ragtrail import Trail
from ragtrail.query import Lineage
from ragtrail.schemas import DocStage, RunKind
from ragtrail_langchain import RagtrailCallbackHandler, mark_reranker

trail = pytest.fixture(name="trail")(open_trail)

QUESTION = "Which SQLite lock does a writer take before it writes pages?"
DOCS = [Document(id=f"d{i}", page_content=text) for i, text in enumerate(
    ["alpha beta", "gamma delta", "epsilon zeta", "eta theta"])]


class OverlapCompressor(BaseDocumentCompressor):
    """A compressor reranking like a cross-encoder would: top-n with relevance_score."""

    top_n: int = 2

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        return rerank({"question": query, "documents": list(documents)}, self.top_n)


class CompressionRetriever(BaseRetriever):
    """Does what LangChain's ContextualCompressionRetriever does with its callbacks."""

    base_retriever: BaseRetriever
    base_compressor: BaseDocumentCompressor

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        docs = self.base_retriever.invoke(query, config={"callbacks": run_manager.get_child()})
        return list(self.base_compressor.compress_documents(
            docs, query, callbacks=run_manager.get_child()))

    async def _aget_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        docs = await self.base_retriever.ainvoke(
            query, config={"callbacks": run_manager.get_child()})
        return list(await self.base_compressor.acompress_documents(
            docs, query, callbacks=run_manager.get_child()))


def _run(trail: Trail, runnable: Any, value: Any) -> tuple[Any, Lineage, Any]:
    rid = uuid.uuid4()
    collector = RunCollectorCallbackHandler()
    out = runnable.invoke(value, config={"callbacks": [RagtrailCallbackHandler(trail),
                                                       collector], "run_id": rid})
    return out, stored(trail, rid), collector.traced_runs


def _reranked(lineage: Lineage) -> list[tuple[str, int | None, float | None]]:
    return [(d.document_id, d.input_rank, d.score)
            for d in lineage.documents_at(DocStage.RERANKED)]


def _kinds(lineage: Lineage) -> dict[str, str]:
    return {r.name: str(r.kind) for r in lineage.runs}


# -- (a) inferred from a step's input and output documents -------------------------------


def test_reordering_or_filtering_step_is_a_reranker(trail: Trail) -> None:
    reverse = RunnableLambda(lambda docs: list(reversed(docs))[:3], name="reverse")
    _, lineage, _ = _run(trail, reverse, DOCS)
    assert _kinds(lineage) == {"reverse": "reranker"}
    assert _reranked(lineage) == [("d3", 3, None), ("d2", 2, None), ("d1", 1, None)]


def test_pass_through_of_documents_is_not_a_reranker(trail: Trail) -> None:
    chain = RunnablePassthrough() | RunnableLambda(lambda d: d["documents"], name="take")
    _, lineage, collected = _run(trail, chain, {"documents": DOCS, "question": "q"})
    assert_same_tree(lineage, collected)
    assert RunKind.RERANKER not in {r.kind for r in lineage.runs}
    assert lineage.documents == []


def test_enclosing_steps_of_a_reranker_are_not_rerankers_too(trail: Trail) -> None:
    inner = RunnableLambda(lambda d: rerank(d, top_n=2), name="rerank")
    chain = RunnableLambda(lambda d: d, name="prepare") | inner
    out, lineage, collected = _run(trail, chain, {"documents": DOCS, "question": "zeta"})
    assert_same_tree(lineage, collected)
    assert [r.name for r in lineage.runs if r.kind is RunKind.RERANKER] == ["rerank"]
    assert [d for d, _, _ in _reranked(lineage)] == [d.id for d in out]


def test_documents_scored_in_place_are_stored_as_each_step_saw_them(trail: Trail) -> None:
    # A reranker writing its score into the documents it got, as some do: the step
    # before it must keep the documents as they were, the reranker's output the scores.
    def score_in_place(docs: list[Document]) -> list[Document]:
        for rank, doc in enumerate(docs):
            doc.metadata["relevance_score"] = 1.0 - rank / 10
        return list(reversed(docs))

    docs = [Document(id=d.id, page_content=d.page_content, metadata={"source": d.id})
            for d in DOCS]
    chain = RunnableLambda(lambda d: d, name="fetch") | RunnableLambda(score_in_place,
                                                                       name="score")
    _, lineage, _ = _run(trail, chain, docs)
    runs = {r.name: r for r in lineage.runs}
    assert [d["metadata"] for d in runs["fetch"].outputs] == [
        {"source": d.id} for d in DOCS]
    assert [d["metadata"] for d in runs["score"].inputs] == [{"source": d.id} for d in DOCS]
    assert [(d["id"], d["metadata"]["relevance_score"]) for d in runs["score"].outputs] == [
        ("d3", 0.7), ("d2", 0.8), ("d1", 0.9), ("d0", 1.0)]


# -- (b) inferred between a retriever and its child retriever ----------------------------


def test_compression_retriever_gets_an_inferred_reranker(trail: Trail) -> None:
    retriever = CompressionRetriever(base_retriever=make_retriever(),
                                     base_compressor=OverlapCompressor())
    chain = build_rag_chain(retriever=retriever,
                            reranker=RunnableLambda(lambda d: d["documents"], name="take"))
    _, lineage, collected = _run(trail, chain, QUESTION)
    assert_same_tree(lineage, collected, kinds={})
    outer = next(r for r in lineage.runs if r.name == "CompressionRetriever")
    inner = next(r for r in lineage.runs if r.name == "ScoredRetriever")
    (inferred,) = [r for r in lineage.runs if r.kind is RunKind.RERANKER]
    assert inferred.name == "InferredReranker" and inferred.parent_id == outer.id
    assert inner.parent_id == outer.id
    assert inferred.started_at >= inner.ended_at  # type: ignore[operator]

    retrieved = [d.document_id for d in lineage.documents_at(DocStage.RETRIEVED)]
    expected = rerank({"question": QUESTION,
                       "documents": make_retriever().invoke(QUESTION)})
    assert {d.run_id for d in lineage.documents_at(DocStage.RETRIEVED)} == {inner.id}
    assert _reranked(lineage) == [(d.id, retrieved.index(d.id), d.metadata["relevance_score"])
                                  for d in expected]
    assert {d.run_id for d in lineage.documents} - {inner.id, inferred.id} == {
        next(r.id for r in lineage.runs if r.kind is RunKind.LLM)}  # in_prompt only
    assert {d.document_id for d in lineage.documents_at(DocStage.IN_PROMPT)} == {
        d.id for d in expected}


# -- (c) marked explicitly -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_marked_compressor_is_a_reranker_run(trail: Trail, mode: str) -> None:
    retriever = CompressionRetriever(base_retriever=make_retriever(),
                                     base_compressor=mark_reranker(OverlapCompressor()))
    handler, collector = RagtrailCallbackHandler(trail), RunCollectorCallbackHandler()
    config: Any = {"callbacks": [handler, collector]}  # retrievers ignore config run_id
    docs = (retriever.invoke(QUESTION, config=config) if mode == "sync"
            else await retriever.ainvoke(QUESTION, config=config))
    rid = handler.last_trace_id
    lineage = stored(trail, rid)
    assert_same_tree(lineage, collector.traced_runs, kinds={"OverlapCompressor": "reranker"})
    assert [r.name for r in lineage.runs] == [
        "CompressionRetriever", "ScoredRetriever", "OverlapCompressor"]  # nothing inferred
    (marked,) = [r for r in lineage.runs if r.kind is RunKind.RERANKER]
    assert marked.name == "OverlapCompressor" and marked.parent_id == rid
    retrieved = [d.document_id for d in lineage.documents_at(DocStage.RETRIEVED)]
    assert _reranked(lineage) == [(d.id, retrieved.index(d.id), d.metadata["relevance_score"])
                                  for d in docs]
    assert {d.run_id for d in lineage.documents_at(DocStage.RERANKED)} == {marked.id}


def test_marked_runnable_is_a_reranker_even_unchanged(trail: Trail) -> None:
    step = mark_reranker(RunnableLambda(lambda d: d, name="first")
                         | RunnableLambda(lambda d: d, name="second"), name="identity")
    _, lineage, collected = _run(trail, step, DOCS)
    assert_same_tree(lineage, collected, kinds={"identity": "reranker"})
    assert _kinds(lineage) == {"identity": "reranker", "first": "chain", "second": "chain"}
    assert _reranked(lineage) == [(d.id, i, None) for i, d in enumerate(DOCS)]


def test_marked_function(trail: Trail) -> None:
    step = mark_reranker(lambda d: d[::-1], name="flip")
    _, lineage, _ = _run(trail, step, DOCS[:2])
    assert _kinds(lineage) == {"flip": "reranker"}
    assert _reranked(lineage) == [("d1", 1, None), ("d0", 0, None)]


def test_mark_reranker_refuses_what_it_cannot_mark() -> None:
    with pytest.raises(TypeError, match="int"):
        mark_reranker(42)
