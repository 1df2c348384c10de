"""Ids survive copies: langchain-classic's compressors return copies of the retrieved
documents without their ``Document.id`` (``EmbeddingsFilter``) or pieces of them (a text
splitter in a ``DocumentCompressorPipeline``). A copy keeps the id of the document it was
copied from; a piece names its source, so ``answers_using(source_id)`` finds the answer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import (
    DocumentCompressorPipeline,
    EmbeddingsFilter,
)
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.runnables import RunnableLambda
from langchain_text_splitters import CharacterTextSplitter

from lc_support import build_rag_chain, make_retriever, open_trail, stored
from ragtrail import Trail
from ragtrail.capture import SOURCE_ID_KEY
from ragtrail.schemas import DocStage, content_hash
from ragtrail_langchain import RagtrailCallbackHandler

trail = pytest.fixture(name="trail")(open_trail)

QUESTION = "How does SQLite WAL let readers and a writer work together?"


def _run(trail: Trail, compressor: Any) -> tuple[str, list[Any], list[Any]]:
    base = make_retriever(k=4)
    retriever = ContextualCompressionRetriever(base_compressor=compressor, base_retriever=base)
    retrieved = base.invoke(QUESTION)
    compressed = retriever.invoke(QUESTION)
    passthrough = RunnableLambda(lambda inputs: list(inputs["documents"]), name="passthrough")
    rid = uuid.uuid4()
    build_rag_chain(retriever=retriever, reranker=passthrough).invoke(
        QUESTION, config={"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    return str(rid), retrieved, compressed


def test_an_embeddings_filter_copy_keeps_its_id_and_input_rank(trail: Trail) -> None:
    filt = EmbeddingsFilter(embeddings=DeterministicFakeEmbedding(size=32), k=2)
    rid, retrieved, compressed = _run(trail, filt)
    assert len(compressed) == 2 and all(d.id is None for d in compressed)  # copies, no id
    lineage = stored(trail, rid)
    by_text = {d.page_content: (d.id, rank) for rank, d in enumerate(retrieved)}
    reranked = lineage.documents_at(DocStage.RERANKED)
    assert [(u.document_id, u.input_rank) for u in reranked] == [
        by_text[d.page_content] for d in compressed]
    # One chunk, one id in the trace: every link of it is found by that id.
    ids = {u.content_hash: set() for u in lineage.documents}
    for use in lineage.documents:
        ids[use.content_hash].add(use.document_id)
    assert all(len(found) == 1 for found in ids.values())
    for doc in compressed:
        doc_id = by_text[doc.page_content][0]
        (usage,) = trail.answers_using(doc_id, min_stage="in_prompt")
        assert usage.trace_id == rid and usage.stage is DocStage.IN_PROMPT


def test_a_split_piece_names_its_source(trail: Trail) -> None:
    splitter = CharacterTextSplitter(separator=" ", chunk_size=40, chunk_overlap=0)
    pipeline = DocumentCompressorPipeline(transformers=[
        splitter, EmbeddingsFilter(embeddings=DeterministicFakeEmbedding(size=32), k=3)])
    rid, retrieved, compressed = _run(trail, pipeline)
    assert compressed and all(d.page_content not in {r.page_content for r in retrieved}
                              for d in compressed)  # pieces, not copies
    lineage = stored(trail, rid)

    def source_of(piece: str) -> tuple[str, int]:
        return next((d.id, rank) for rank, d in enumerate(retrieved) if piece in d.page_content)

    reranked = lineage.documents_at(DocStage.RERANKED)
    assert [(u.content_hash, u.document_id, u.input_rank) for u in reranked] == [
        (content_hash(d.page_content), *source_of(d.page_content)) for d in compressed]
    assert all(u.metadata[SOURCE_ID_KEY] == u.document_id for u in reranked)
    in_prompt = lineage.documents_at(DocStage.IN_PROMPT)
    assert {u.content_hash for u in in_prompt} == {content_hash(d.page_content)
                                                   for d in compressed}
    for source_id in {source_of(d.page_content)[0] for d in compressed}:
        (usage,) = trail.answers_using(source_id, min_stage="in_prompt")
        assert usage.trace_id == rid
    # A retrieved document none of whose pieces was kept reached no prompt.
    unused = {d.id for d in retrieved} - {source_of(d.page_content)[0] for d in compressed}
    for doc_id in unused:
        assert trail.answers_using(doc_id, min_stage="in_prompt") == []
