"""Streaming, async and chat LlamaIndex runs, and 50 concurrent async queries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms import MockLLM

from li_support import (
    CORPUS,
    KeywordReranker,
    SpanCollector,
    UsageLLM,
    build_index,
    reset_llamaindex,
)
from ragtrail import Trail
from ragtrail.schemas import DocStage, RunKind
from ragtrail_llamaindex import RagtrailHandler, instrument

QUESTION = "how does write ahead logging work in sqlite"


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


def _names(lineage: Any) -> list[tuple[str, str]]:
    return [(run.kind.value, run.name) for run in lineage.runs]


def _stage(lineage: Any, stage: DocStage) -> list[str]:
    return [d.document_id for d in lineage.documents if d.stage is stage]


def test_streaming_query_is_one_trace_with_first_token_time(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    index = build_index()
    llm = UsageLLM()
    engine = index.as_query_engine(llm=llm, streaming=True, similarity_top_k=4,
                                   node_postprocessors=[KeywordReranker(top_n=2)])
    collector = SpanCollector().attach()
    handler = instrument(trail)
    response = engine.query(QUESTION)
    assert handler.last_trace_id is None  # nothing has ended: the answer is still streaming
    streamed = "".join(response.response_gen)
    collector.detach()
    assert streamed == llm.answer
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)

    assert _names(lineage) == [
        ("chain", "RetrieverQueryEngine.query"),
        ("retriever", "VectorIndexRetriever.retrieve"),
        ("embedding", "KeywordEmbedding.get_query_embedding"),
        ("reranker", "KeywordReranker._postprocess_nodes"),
        ("chain", "CompactAndRefine.synthesize"),
        ("chain", "UsageLLM.stream"),
        ("llm", "UsageLLM.stream_complete"),
    ]
    collector.check(lineage.runs)  # the late LLM span is parented in LlamaIndex's tree too
    assert lineage.answer == llm.answer
    root, llm_run = lineage.runs[0], lineage.runs[-1]
    assert root.ended_at is not None and llm_run.ended_at is not None
    assert root.ended_at >= llm_run.ended_at  # the query ends when its answer has streamed
    reranked = _stage(lineage, DocStage.RERANKED)
    assert reranked == [n.node.node_id for n in response.source_nodes]
    assert {d.run_id for d in lineage.documents if d.stage is DocStage.IN_PROMPT} == {llm_run.id}
    assert set(_stage(lineage, DocStage.IN_PROMPT)) == set(reranked)

    (call,) = lineage.llm_calls
    meta = call.metadata
    assert meta.output_text == llm.answer
    perf = meta.performance_metrics
    assert perf is not None and perf.time_to_first_token_ms is not None
    assert perf.time_to_first_token_ms <= perf.total_duration_ms
    assert perf.tokens_per_second is not None and perf.tokens_per_second > 0
    assert meta.token_usage is not None and meta.token_usage.output_tokens == 40
    trail.close()


def test_abandoned_stream_is_not_an_answer(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    engine = build_index().as_query_engine(llm=UsageLLM(), streaming=True)
    instrument(trail)
    response = engine.query(QUESTION)
    gen = response.response_gen
    next(gen)
    gen.close()  # the caller stops reading
    assert trail.flush()
    (summary,) = trail.traces()
    lineage = trail.lineage(summary.trace_id)
    statuses = {run.name: run.status.value for run in lineage.runs}
    assert statuses["RetrieverQueryEngine.query"] == "cancelled"
    assert statuses["CompactAndRefine.synthesize"] == "cancelled"
    assert statuses["VectorIndexRetriever.retrieve"] == "ok"
    trail.close()


async def test_aquery_records_the_async_spans(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    engine = build_index().as_query_engine(llm=MockLLM(), similarity_top_k=4,
                                           node_postprocessors=[KeywordReranker(top_n=2)])
    handler = instrument(trail)
    collector = SpanCollector().attach()
    response = await engine.aquery(QUESTION)
    collector.detach()
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    collector.check(lineage.runs)
    assert _names(lineage) == [
        ("chain", "RetrieverQueryEngine.aquery"),
        ("retriever", "VectorIndexRetriever.aretrieve"),
        ("embedding", "KeywordEmbedding.aget_query_embedding"),
        ("reranker", "KeywordReranker._postprocess_nodes"),
        ("chain", "CompactAndRefine.asynthesize"),
        ("chain", "MockLLM.apredict"),
        ("llm", "MockLLM.acomplete"),  # MockLLM.acomplete calls .complete: one call, one run
    ]
    assert lineage.answer == str(response)
    assert _stage(lineage, DocStage.RERANKED) == [n.node.node_id for n in response.source_nodes]
    assert len(_stage(lineage, DocStage.IN_PROMPT)) == 2
    trail.close()


async def test_fifty_concurrent_async_queries_keep_their_own_traces(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    engine = build_index().as_query_engine(llm=MockLLM(), similarity_top_k=3,
                                           node_postprocessors=[KeywordReranker(top_n=1)])
    instrument(trail)
    questions = [f"{CORPUS[i % len(CORPUS)][1]} (question {i})" for i in range(50)]
    responses = await asyncio.gather(*(engine.aquery(q) for q in questions))
    stats = trail.stats()["capture"]
    assert stats["open_runs"] == 0 and stats["duplicate_starts"] == 0
    assert trail.flush()

    summaries = trail.traces(limit=100)
    assert len(summaries) == 50
    seen = {}
    for summary in summaries:
        lineage = trail.lineage(summary.trace_id)
        assert [run.kind for run in lineage.runs] == [
            RunKind.CHAIN, RunKind.RETRIEVER, RunKind.EMBEDDING, RunKind.RERANKER,
            RunKind.CHAIN, RunKind.CHAIN, RunKind.LLM]
        assert {run.trace_id for run in lineage.runs} == {summary.trace_id}
        assert {d.run_id for d in lineage.documents} <= {run.id for run in lineage.runs}
        seen[lineage.question] = lineage
    assert set(seen) == set(questions)
    for question, response in zip(questions, responses, strict=True):
        lineage = seen[question]
        assert lineage.answer == str(response)
        # Each question's own best document was reranked first and reached its prompt.
        (top,) = [d for d in lineage.documents if d.stage is DocStage.RERANKED]
        assert top.document_id == response.source_nodes[0].node.node_id
        assert top.content is not None and top.content in question
        assert _stage(lineage, DocStage.IN_PROMPT) == [top.document_id]
    trail.close()


@pytest.mark.parametrize("form", ["instrument", "callbacks"])
def test_queries_from_many_threads_keep_their_own_traces(sqlite_url: str, form: str) -> None:
    trail = Trail(sqlite_url)
    if form == "callbacks":
        Settings.callback_manager = CallbackManager([RagtrailHandler(trail)])
    engine = build_index().as_query_engine(llm=MockLLM(), similarity_top_k=2)
    if form == "instrument":
        instrument(trail)
    questions = [f"{CORPUS[i % len(CORPUS)][1]} (thread question {i})" for i in range(24)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda q: str(engine.query(q)), questions))
    assert trail.flush()
    summaries = trail.traces(limit=100)
    lineages = [trail.lineage(s.trace_id) for s in summaries if s.kind is RunKind.CHAIN]
    assert sorted(lin.question for lin in lineages) == sorted(questions)
    for lineage in lineages:
        assert len(lineage.runs) == 6 and {r.trace_id for r in lineage.runs} == {
            lineage.trace_id}
        assert lineage.answer == answers[questions.index(lineage.question)]
    trail.close()


def test_chat_engine_turn(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    chat = build_index().as_chat_engine(chat_mode="condense_plus_context", llm=MockLLM(),
                                        similarity_top_k=2)
    handler = instrument(trail)
    collector = SpanCollector().attach()
    reply = chat.chat("what does VACUUM do in SQLite")
    collector.detach()
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    collector.check(lineage.runs)
    runs = _names(lineage)
    assert runs[0] == ("chain", "CondensePlusContextChatEngine.chat")
    assert ("retriever", "VectorIndexRetriever.retrieve") in runs
    assert runs[-1][0] == "llm"
    assert lineage.question == "what does VACUUM do in SQLite"
    assert lineage.answer == str(reply)
    retrieved = [d for d in lineage.documents if d.stage is DocStage.RETRIEVED]
    assert retrieved[0].metadata["ref_doc_id"] == "vacuum"
    assert retrieved[0].document_id in _stage(lineage, DocStage.IN_PROMPT)
    trail.close()


def test_streaming_chat_turn_ends_when_the_answer_has_streamed(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    chat = build_index().as_chat_engine(chat_mode="context", llm=UsageLLM(), similarity_top_k=2)
    handler = instrument(trail)
    reply = chat.stream_chat("what does VACUUM do in SQLite")
    text = "".join(reply.response_gen)
    assert text == UsageLLM().answer
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    root, llm_run = lineage.runs[0], lineage.runs[-1]
    assert (root.kind.value, root.name) == ("chain", "ContextChatEngine.stream_chat")
    assert llm_run.kind is RunKind.LLM and llm_run.status.value == "ok"
    assert root.ended_at is not None and llm_run.ended_at is not None
    assert root.ended_at >= llm_run.ended_at
    assert lineage.llm_calls[-1].metadata.performance_metrics.time_to_first_token_ms is not None
    trail.close()
