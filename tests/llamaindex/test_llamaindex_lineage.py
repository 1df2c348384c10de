"""LlamaIndex query lineage: stored runs, documents by stage, both registration forms.

Real LlamaIndex objects, offline: a vector index over our own corpus with a
deterministic embedding, a reranking node postprocessor and MockLLM.
"""

from __future__ import annotations

import gc
import inspect
import time
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Settings, get_response_synthesizer
from llama_index.core.callbacks import CallbackManager
from llama_index.core.instrumentation.dispatcher import instrument_tags
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine

from li_support import (
    KeywordEmbedding,
    KeywordReranker,
    SpanCollector,
    build_index,
    ragtrail_handlers_on_dispatcher,
    reset_llamaindex,
)
from ragtrail import Trail
from ragtrail.schemas import DocStage, PriceStatus, content_hash
from ragtrail_llamaindex import RagtrailHandler, instrument, uninstrument

QUESTION = "how does write ahead logging work in sqlite"
EXPECTED_RUNS = [
    ("chain", "RetrieverQueryEngine.query", None),
    ("retriever", "VectorIndexRetriever.retrieve", "RetrieverQueryEngine.query"),
    ("embedding", "KeywordEmbedding.get_query_embedding", "VectorIndexRetriever.retrieve"),
    ("reranker", "KeywordReranker._postprocess_nodes", "RetrieverQueryEngine.query"),
    ("chain", "CompactAndRefine.synthesize", "RetrieverQueryEngine.query"),
    ("chain", "MockLLM.predict", "CompactAndRefine.synthesize"),
    ("llm", "MockLLM.complete", "MockLLM.predict"),
]


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


def _engine(index: Any) -> Any:
    return index.as_query_engine(llm=MockLLM(), similarity_top_k=4,
                                 node_postprocessors=[KeywordReranker(top_n=2)])


def _runs(lineage: Any) -> list[tuple[str, str, str | None]]:
    names = {run.id: run.name for run in lineage.runs}
    return [(run.kind.value, run.name, names.get(run.parent_id)) for run in lineage.runs]


def _documents(lineage: Any) -> list[tuple[Any, ...]]:
    names = {run.id: run.name for run in lineage.runs}
    return [(names[d.run_id], d.stage.value, d.rank, d.metadata["ref_doc_id"], d.input_rank,
             d.score) for d in lineage.documents]


def test_query_lineage_matches_the_dispatcher_span_tree(db_url: str) -> None:
    trail = Trail(db_url)
    index = build_index()
    expected_retrieval = index.as_retriever(similarity_top_k=4).retrieve(QUESTION)
    collector = SpanCollector().attach()
    handler = instrument(trail)
    try:
        response = _engine(index).query(QUESTION)
    finally:
        collector.detach()
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)

    assert _runs(lineage) == EXPECTED_RUNS
    ids = {run.id for run in lineage.runs}
    assert ids <= set(collector.spans)  # run ids are LlamaIndex span ids
    for run in lineage.runs:
        assert run.parent_id == collector.nearest(run.id, ids)
        assert run.framework.value == "llamaindex" and run.status.value == "ok"
    root = lineage.runs[0]
    assert root.id == lineage.trace_id == handler.last_trace_id
    assert collector.spans[root.id] is None
    assert lineage.question == QUESTION and lineage.answer == str(response)

    by_stage = {stage: [d for d in lineage.documents if d.stage is stage] for stage in DocStage}
    retrieved_ids = [n.node.node_id for n in expected_retrieval]
    assert [d.document_id for d in by_stage[DocStage.RETRIEVED]] == retrieved_ids
    assert [d.score for d in by_stage[DocStage.RETRIEVED]] == pytest.approx(
        [n.score for n in expected_retrieval])
    reranked = by_stage[DocStage.RERANKED]
    assert [d.document_id for d in reranked] == [n.node.node_id for n in response.source_nodes]
    assert [d.score for d in reranked] == [n.score for n in response.source_nodes]
    assert [d.input_rank for d in reranked] == [retrieved_ids.index(d.document_id)
                                                for d in reranked]
    assert [d.input_rank for d in reranked] != [0, 1]  # the reranker did reorder
    assert {d.document_id for d in by_stage[DocStage.IN_PROMPT]} == {
        d.document_id for d in reranked}
    first = reranked[0]
    node = response.source_nodes[0].node
    assert first.content == node.get_content()
    assert first.content_hash == content_hash(node.get_content())
    assert first.metadata == {"ref_doc_id": node.ref_doc_id, "source": f"{node.ref_doc_id}.md"}
    assert first.metadata["ref_doc_id"] == "pragma"  # most query words

    (call,) = lineage.llm_calls
    assert call.run_id == lineage.runs[-1].id
    meta = call.metadata
    assert first.content in (meta.prompt_text or "")
    assert meta.token_usage is None  # MockLLM reports none: unknown, never zero
    assert meta.cost_metrics is not None and meta.cost_metrics.total_cost is None
    assert meta.cost_metrics.price_status is PriceStatus.NO_USAGE  # MockLLM reports no usage
    assert meta.prompt_template is not None and "{context_str}" in meta.prompt_template
    assert meta.prompt_variables is not None and meta.prompt_variables["query_str"] == QUESTION
    assert meta.provider_specific == {"llm_class": "MockLLM"}
    trail.close()


def _callback_query(trail: Trail) -> tuple[Any, RagtrailHandler]:
    handler = RagtrailHandler(trail)
    Settings.callback_manager = CallbackManager([handler])
    Settings.embed_model = KeywordEmbedding()
    index = build_index(Settings.embed_model)  # components built after registration
    return _engine(index).query(QUESTION), handler


def test_callback_form_and_instrument_form_store_the_same_lineage(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    collector = SpanCollector().attach()
    response, handler = _callback_query(trail)
    collector.detach()
    assert trail.flush()
    via_callbacks = trail.lineage(handler.last_trace_id)
    collector.check(via_callbacks.runs)

    Settings._callback_manager = Settings._embed_model = None  # they held the handler
    del handler
    # The callback form's span handlers leave the dispatcher when the handler is
    # collected; a frame of another test's finished thread can hold it a moment longer.
    for _ in range(20):
        gc.collect()
        if not ragtrail_handlers_on_dispatcher():
            break
        time.sleep(0.1)
    assert ragtrail_handlers_on_dispatcher() == []
    instrumented = instrument(trail)
    _engine(build_index()).query(QUESTION)
    assert trail.flush()
    via_dispatcher = trail.lineage(instrumented.last_trace_id)

    assert via_callbacks.trace_id != via_dispatcher.trace_id
    assert _runs(via_callbacks) == _runs(via_dispatcher) == EXPECTED_RUNS
    assert _documents(via_callbacks) == _documents(via_dispatcher)
    reranked = [d.document_id for d in via_callbacks.documents if d.stage is DocStage.RERANKED]
    assert reranked == [n.node.node_id for n in response.source_nodes]
    # The classic callback event ids are kept on the runs they belong to.
    noted = {run.name: run.metadata.get("llamaindex_event_ids") for run in via_callbacks.runs}
    for name in ("RetrieverQueryEngine.query", "VectorIndexRetriever.retrieve",
                 "KeywordEmbedding.get_query_embedding", "CompactAndRefine.synthesize",
                 "MockLLM.complete"):
        assert noted[name] and len(noted[name][0]) == 36, name
    assert not any(run.metadata.get("llamaindex_event_ids") for run in via_dispatcher.runs)
    trail.close()


def test_both_forms_at_once_record_each_run_once(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    instrumented = instrument(trail)
    response, handler = _callback_query(trail)
    assert handler.last_trace_id == instrumented.last_trace_id is not None
    stats = trail.stats()["capture"]
    # + the index build: its node parser (SentenceSplitter.__call__) and its embedding batch
    assert stats["started"] == stats["ended"] == len(EXPECTED_RUNS) + 2
    assert stats["duplicate_starts"] == 0 and stats["unknown_ends"] == 0
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    assert _runs(lineage) == EXPECTED_RUNS
    assert str(response) == lineage.answer
    trail.close()


def test_callback_form_records_only_components_holding_the_handler(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    index = build_index()  # built before any handler is registered
    handler = RagtrailHandler(trail)
    _engine(index).query(QUESTION)  # no callback manager holds the handler
    assert trail.stats()["capture"]["started"] == 0
    manager = CallbackManager([handler])
    engine = RetrieverQueryEngine(
        index.as_retriever(similarity_top_k=4), callback_manager=manager,
        response_synthesizer=get_response_synthesizer(llm=MockLLM(), callback_manager=manager))
    engine.query(QUESTION)
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    # The query engine and the synthesizer (which hands its manager to its LLM) hold
    # the handler; the index's retriever and embedding model have their own managers.
    assert [r.name for r in lineage.runs] == ["RetrieverQueryEngine.query",
                                              "CompactAndRefine.synthesize",
                                              "MockLLM.predict", "MockLLM.complete"]
    trail.close()


def test_uninstrument_removes_the_dispatcher_handlers(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    index = build_index()
    assert instrument(trail) is instrument(trail)
    assert len(ragtrail_handlers_on_dispatcher()) == 2
    uninstrument()
    assert ragtrail_handlers_on_dispatcher() == []
    _engine(index).query(QUESTION)
    assert trail.stats()["capture"]["started"] == 0

    handler = RagtrailHandler(trail)  # the callback form keeps the handlers attached
    instrument(trail)
    uninstrument(trail)
    assert len(ragtrail_handlers_on_dispatcher()) == 2
    del handler
    # The callback form's span handlers leave the dispatcher when the handler is
    # collected; a frame of another test's finished thread can hold it a moment longer.
    for _ in range(20):
        gc.collect()
        if not ragtrail_handlers_on_dispatcher():
            break
        time.sleep(0.1)
    assert ragtrail_handlers_on_dispatcher() == []
    trail.close()


def test_instrument_tags_give_user_and_session(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    engine = _engine(build_index())
    handler = instrument(trail)
    with instrument_tags({"user_id": "u-42", "session_id": "s-1", "tenant": "acme"}):
        engine.query(QUESTION)
    assert trail.flush()
    for run in trail.lineage(handler.last_trace_id).runs:
        assert run.session_id == "s-1"
        assert run.user_hash is not None and "u-42" not in run.user_hash
        assert run.metadata["instrument_tags"] == {"session_id": "s-1", "tenant": "acme"}
    (summary,) = trail.traces(user_id="u-42")
    assert summary.trace_id == handler.last_trace_id
    trail.close()


def test_handler_needs_a_trail_and_survives_deep_copies(sqlite_url: str) -> None:
    with pytest.raises(TypeError, match=r"ragtrail\.Trail"):
        RagtrailHandler("sqlite:///x.db")
    trail = Trail(sqlite_url)
    handler = RagtrailHandler(trail)
    llm = MockLLM(callback_manager=CallbackManager([handler]))
    assert llm.model_copy(deep=True).callback_manager.handlers == [handler]
    trail.close()


def test_span_bookkeeping_holds_only_open_steps(sqlite_url: str) -> None:
    # The span handler files each open step by key (the dispatcher drops what is left
    # at shutdown) and forgets it when it ends: nothing accumulates over queries.
    trail = Trail(sqlite_url)
    instrument(trail)
    engine = _engine(build_index())
    spans = [h for h in ragtrail_handlers_on_dispatcher() if hasattr(h, "open_spans")]
    assert len(spans) == 1
    for _ in range(3):
        engine.query(QUESTION)
    assert spans[0].open_spans == {}
    opened = "BaseQueryEngine.query-00000000-0000-4000-8000-000000000000"
    bound = inspect.signature(engine.query).bind(QUESTION)
    spans[0].span_enter(id_=opened, bound_args=bound, instance=engine, parent_id=None)
    assert list(spans[0].open_spans) == [opened]
    spans[0].span_drop(id_=opened, bound_args=bound, instance=engine,
                       err=RuntimeError("dispatcher shutdown"))
    assert spans[0].open_spans == {}
    trail.flush()
    dropped = [t for t in trail.traces(limit=10)
               if t.name == "BaseQueryEngine.query" and t.status.value == "error"]
    assert dropped, "the dropped span was not stored as a failed run"
    trail.close()
