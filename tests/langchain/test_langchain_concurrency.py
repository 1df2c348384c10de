"""50 concurrent traces through one handler: no cross-talk between them.

Each trace must hold exactly its own runs, with its own question in its LLM call, its
own documents and its own answer, whatever the threads or tasks interleaving.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

from lc_support import CORPUS, assert_same_tree, build_rag_chain, open_trail, rerank, stored
from ragtrail import Trail
from ragtrail.schemas import DocStage, RunStatus
from ragtrail_langchain import RagtrailCallbackHandler

trail = pytest.fixture(name="trail")(open_trail)

TRACES = 50
_TOPICS = [text.split(" ", 3)[-1].rstrip(".") for _, text in CORPUS]


def questions() -> list[str]:
    """Distinct questions, each naming its index so answers can be told apart."""
    return [f"Q{i}: what about {_TOPICS[i % len(_TOPICS)]}?" for i in range(TRACES)]


def _check_isolated(trail: Trail, rids: list[uuid.UUID], answers: list[str],
                    collector: RunCollectorCallbackHandler) -> None:
    assert trail.flush(30.0)
    assert trail.stats()["capture"]["open_runs"] == 0
    for question, rid, answer in zip(questions(), rids, answers, strict=True):
        assert answer == f"The context answers: {question}"
        lineage = stored(trail, rid)
        assert len(lineage.runs) == 12
        assert {r.trace_id for r in lineage.runs} == {str(rid)}
        assert all(r.status is RunStatus.OK for r in lineage.runs)
        assert_same_tree(lineage, [r for r in collector.traced_runs if r.id == rid])
        (call,) = lineage.llm_calls
        sent = " ".join(m["content"] for m in call.metadata.messages or [])
        assert question in sent
        assert [q for q in questions() if q.split(":")[0] + ":" in sent] == [question]
        assert call.metadata.output_text == answer
        assert lineage.question == question and lineage.answer == answer
        reranked = lineage.documents_at(DocStage.RERANKED)
        retrieved_ids = [d.document_id for d in lineage.documents_at(DocStage.RETRIEVED)]
        assert len(retrieved_ids) == 4 and len(reranked) == 2
        assert all(d.input_rank is not None and retrieved_ids[d.input_rank] == d.document_id
                   for d in reranked)
        assert {d.document_id for d in lineage.documents_at(DocStage.IN_PROMPT)} == {
            d.document_id for d in reranked}


def test_fifty_traces_in_threads(trail: Trail) -> None:
    handler, collector = RagtrailCallbackHandler(trail), RunCollectorCallbackHandler()
    chain = build_rag_chain()
    rids = [uuid.uuid4() for _ in range(TRACES)]

    def one(args: tuple[str, uuid.UUID]) -> Any:
        question, rid = args
        if int(question[1:question.index(":")]) % 2:
            return "".join(chain.stream(question, config={"callbacks": [handler, collector],
                                                          "run_id": rid}))
        return chain.invoke(question, config={"callbacks": [handler, collector], "run_id": rid})

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(one, zip(questions(), rids, strict=True)))
    _check_isolated(trail, rids, answers, collector)


async def test_fifty_traces_under_asyncio(trail: Trail) -> None:
    handler, collector = RagtrailCallbackHandler(trail), RunCollectorCallbackHandler()
    chain = build_rag_chain()
    rids = [uuid.uuid4() for _ in range(TRACES)]

    async def one(question: str, rid: uuid.UUID) -> Any:
        config: Any = {"callbacks": [handler, collector], "run_id": rid}
        if int(question[1:question.index(":")]) % 2:
            return "".join([chunk async for chunk in chain.astream(question, config=config)])
        return await chain.ainvoke(question, config=config)

    answers = await asyncio.gather(*(one(q, r) for q, r in zip(questions(), rids, strict=True)))
    _check_isolated(trail, rids, list(answers), collector)


def test_reranker_is_per_trace_under_threads(trail: Trail) -> None:
    # The reranking inferred at the end of one trace must use that trace's documents.
    handler = RagtrailCallbackHandler(trail)
    chain = build_rag_chain()
    rids = [uuid.uuid4() for _ in range(TRACES)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda a: chain.invoke(a[0], config={"callbacks": [handler],
                                                           "run_id": a[1]}),
                      zip(questions(), rids, strict=True)))
    for question, rid in zip(questions(), rids, strict=True):
        lineage = stored(trail, rid)
        docs = lineage.documents_at(DocStage.RETRIEVED)
        expected = rerank({"question": question, "documents": [
            Document(id=d.document_id, page_content=d.content or "") for d in docs]})
        assert [d.document_id for d in lineage.documents_at(DocStage.RERANKED)] == [
            d.id for d in expected]
