"""A step that turns out to be a reranker or filter only when it ends: the LLM calls made
inside it do not put the candidates ``in_prompt``.

A custom LCEL step that filters the retrieved documents with langchain-classic's
``LLMChainFilter`` (its ``compress_documents`` called in a ``RunnableLambda``) is a plain
chain when it starts; ragtrail recognises it as a reranker from its output, after its
judge's LLM calls saw every candidate. Those calls' ``in_prompt`` links are held until
the step ends and dropped then: the candidates are the step's input, what it kept is
``reranked``, and only what reached the answering call is ``in_prompt``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_classic.retrievers.document_compressors import LLMChainFilter
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from test_llm_rerankers import KEEP, QUESTION, Judge, assert_answers_use_only_kept

from lc_support import assert_same_tree, build_rag_chain, make_retriever, open_trail, stored
from ragtrail import Trail
from ragtrail.schemas import DocStage, RunKind
from ragtrail_langchain import RagtrailCallbackHandler

trail = pytest.fixture(name="trail")(open_trail)


def _llm_filter_step() -> Any:
    judge = LLMChainFilter.from_llm(Judge())

    def keep_relevant(inputs: dict[str, Any]) -> list[Document]:
        return list(judge.compress_documents(inputs["documents"], inputs["question"]))

    return RunnableLambda(keep_relevant, name="keep_relevant")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_llm_calls_of_a_step_recognised_as_reranker_at_its_end(
        trail: Trail, mode: str) -> None:
    retrieved = make_retriever(k=4).invoke(QUESTION)
    kept = [d for d in retrieved if KEEP in d.page_content]
    dropped = [d for d in retrieved if KEEP not in d.page_content]
    assert kept and dropped, "the scripted judge must keep some and drop some"
    chain = build_rag_chain(retriever=make_retriever(k=4), reranker=_llm_filter_step())
    rid = uuid.uuid4()
    collector = RunCollectorCallbackHandler()
    config: Any = {"callbacks": [RagtrailCallbackHandler(trail), collector], "run_id": rid}
    if mode == "sync":
        chain.invoke(QUESTION, config=config)
    else:
        await chain.ainvoke(QUESTION, config=config)
    lineage = stored(trail, rid)
    assert_same_tree(lineage, collector.traced_runs, kinds={"keep_relevant": "reranker"})
    step = next(r for r in lineage.runs if r.name == "keep_relevant")
    assert step.kind is RunKind.RERANKER
    judge_calls = [c for c in lineage.llm_calls if lineage.run(c.run_id).name == "Judge"]
    assert len(judge_calls) == len(retrieved), "the judge saw every candidate"
    in_prompt = lineage.documents_at(DocStage.IN_PROMPT)
    assert {u.run_id for u in in_prompt}.isdisjoint({c.run_id for c in judge_calls})
    assert [u.document_id for u in in_prompt] == [d.id for d in kept]
    assert [(u.document_id, u.input_rank) for u in lineage.documents_at(DocStage.RERANKED)
            if u.run_id == step.id] == [(d.id, retrieved.index(d)) for d in kept]
    assert_answers_use_only_kept(trail, rid, kept, dropped)
