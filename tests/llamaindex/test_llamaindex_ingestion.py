"""LlamaIndex ingestion: an ``IngestionPipeline`` run is one trace (the pipeline, each
transformation, the extractors' LLM calls, the embedding batches) marked
``request_type="ingestion"``, so that ``usage`` tells ingestion cost from answering cost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.extractors import KeywordExtractor
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter

from li_support import CORPUS, KeywordEmbedding, SpanCollector, UsageLLM, enable, reset_llamaindex
from ragtrail import Trail
from ragtrail.cli import cli
from ragtrail.schemas import RunKind
from ragtrail_llamaindex import instrument

#: UsageLLM reports 1,240 tokens per call (OpenAI shape, priced as gpt-4o-mini).
TOKENS_PER_CALL = 1240


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


def _documents() -> list[Document]:
    return [Document(text=text, doc_id=doc_id) for doc_id, text in CORPUS[:3]]


def _pipeline(llm: Any) -> IngestionPipeline:
    # As LlamaIndex's ingestion guide builds it: split, extract metadata, embed.
    return IngestionPipeline(transformations=[
        SentenceSplitter(chunk_size=256, chunk_overlap=0),
        KeywordExtractor(llm=llm, keywords=3),
        KeywordEmbedding(),
    ])


@pytest.mark.parametrize("form", ["instrument", "classic"])
@pytest.mark.parametrize("mode", ["run", "arun"])
async def test_ingestion_pipeline_is_one_trace(form: str, mode: str, sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = enable(trail, form)
    pipeline = _pipeline(UsageLLM())
    collector = SpanCollector().attach()
    try:
        nodes = pipeline.run(documents=_documents()) if mode == "run" else \
            await pipeline.arun(documents=_documents())
    finally:
        collector.detach()
    assert trail.flush()
    (summary,) = trail.traces()  # one trace, not one per LLM call or embedding batch
    assert summary.trace_id == handler.last_trace_id
    lineage = trail.lineage(summary.trace_id)
    collector.check(lineage.runs)  # LlamaIndex's own span tree
    root = lineage.runs[0]
    assert root.name == f"IngestionPipeline.{mode}" and root.kind is RunKind.CHAIN
    assert root.inputs == {"documents": 3, "nodes": None}
    assert root.outputs == {"nodes": len(nodes)}
    assert root.metadata["transformations"] == ["SentenceSplitter", "KeywordExtractor",
                                                "KeywordEmbedding"]
    by_id = {run.id: run for run in lineage.runs}
    steps = [run.name for run in lineage.runs if run.parent_id == root.id]
    # arun: LlamaIndex spans no transformation's acall, only what runs inside it
    assert steps == (["SentenceSplitter.__call__", "KeywordExtractor.__call__",
                      "KeywordEmbedding.__call__"] if mode == "run" else
                     ["SentenceSplitter._parse_nodes", "KeywordExtractor.aextract",
                      "KeywordEmbedding.aget_text_embedding_batch"])
    calls = [run for run in lineage.runs if run.kind is RunKind.LLM]
    assert len(calls) == len(nodes) == 3  # one keyword extraction per node
    for call in calls:  # under the extractor's run
        parent = by_id[call.parent_id]
        while parent.parent_id != root.id:
            parent = by_id[parent.parent_id]
        assert parent.name.startswith("KeywordExtractor")
    (batch,) = [run for run in lineage.runs if run.kind is RunKind.EMBEDDING]
    assert batch.name.startswith("KeywordEmbedding.") and batch.outputs == {
        "embeddings": 3, "dimensions": 128}
    # the pipeline's tokens and cost are the trace's
    assert summary.llm_calls == 3 and summary.total_tokens == 3 * TOKENS_PER_CALL
    assert lineage.total_cost is not None and lineage.total_cost == sum(
        (c.metadata.cost_metrics.total_cost or Decimal(0) for c in lineage.llm_calls
         if c.metadata.cost_metrics), Decimal(0)) > 0
    assert {run.request_type for run in lineage.runs} == {"ingestion"}
    trail.close()


def test_usage_splits_ingestion_cost_from_answering_cost(db_url: str) -> None:
    trail = Trail(db_url)
    instrument(trail)
    llm = UsageLLM()
    nodes = _pipeline(llm).run(documents=_documents())
    index = VectorStoreIndex(nodes, embed_model=KeywordEmbedding())
    index.as_query_engine(llm=llm).query("how does write ahead logging work?")
    assert trail.flush()
    rows = {row.group["request_type"]: row for row in trail.usage(group_by="request_type")}
    assert set(rows) == {"ingestion", None}
    assert (rows["ingestion"].calls, rows["ingestion"].total_tokens) == (3, 3 * TOKENS_PER_CALL)
    assert (rows[None].calls, rows[None].total_tokens) == (1, TOKENS_PER_CALL)
    assert rows["ingestion"].total_cost == 3 * rows[None].total_cost
    trail.close()


def test_from_documents_steps_are_ingestion_traces(sqlite_url: str) -> None:
    # LlamaIndex opens no span around from_documents: its node parsing, extraction and
    # embedding are separate LlamaIndex roots, so separate traces, each one ingestion.
    trail = Trail(sqlite_url)
    instrument(trail)
    VectorStoreIndex.from_documents(
        _documents(), embed_model=KeywordEmbedding(),
        transformations=[SentenceSplitter(chunk_size=256, chunk_overlap=0),
                         KeywordExtractor(llm=UsageLLM(), keywords=3)])
    assert trail.flush()
    roots = sorted(trail.lineage(t.trace_id).runs[0].name for t in trail.traces())
    assert roots == ["KeywordEmbedding.get_text_embedding_batch", "KeywordExtractor.__call__",
                     "SentenceSplitter.__call__"]
    (row,) = trail.usage(group_by="request_type")
    assert (row.group, row.calls) == ({"request_type": "ingestion"}, 3)
    trail.close()


def test_cli_usage_by_request_type(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    instrument(trail)
    _pipeline(UsageLLM()).run(documents=_documents())
    assert trail.flush()
    trail.close()
    outcome = CliRunner().invoke(cli, ["usage", "--by", "request_type", "--db", sqlite_url,
                                       "--json"], catch_exceptions=False)
    assert outcome.exit_code == 0, outcome.output
    (row,) = json.loads(outcome.stdout)
    assert (row["group"], row["calls"]) == ({"request_type": "ingestion"}, 3)
