"""``in_prompt`` means the answer's prompt: an LLM filter or reranker shows every
candidate to its own LLM, yet only what it kept and what then reached the answering call
is linked ``in_prompt`` (langchain-classic's ``LLMChainFilter`` and ``LLMListwiseRerank``
inside a ``ContextualCompressionRetriever``, as their documentation builds them)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import (
    LLMChainFilter,
    LLMListwiseRerank,
)
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

from lc_support import (
    ToolCallingChat,
    assert_same_tree,
    build_rag_chain,
    make_retriever,
    open_trail,
    stored,
)
from ragtrail import Trail
from ragtrail.schemas import DocStage, RunKind
from ragtrail_langchain import RagtrailCallbackHandler

trail = pytest.fixture(name="trail")(open_trail)

QUESTION = "How does SQLite WAL let readers and a writer work together?"
KEEP = "writer"  # the judge keeps the documents that mention a writer
_DOC_BLOCK = re.compile(r"Document ID: (\d+)\n```(.*?)```", re.S)


class Judge(ToolCallingChat):
    """A scripted judge: YES/NO for ``LLMChainFilter``'s prompt, a ``RankDocuments`` tool
    call (structured output) for ``LLMListwiseRerank``'s; keeps documents naming a writer."""

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        text = "\n".join(str(m.content) for m in messages)
        if kwargs.get("tools"):
            ranked = [int(i) for i, body in _DOC_BLOCK.findall(text) if KEEP in body]
            message = AIMessage(content="", tool_calls=[{
                "name": kwargs["tools"][0]["function"]["name"],
                "args": {"ranked_document_ids": ranked}, "id": "call_rank"}])
        else:
            context = text.split("> Context:", 1)[-1].split("> Relevant", 1)[0]
            message = AIMessage(content="YES" if KEEP in context else "NO")
        return ChatResult(generations=[ChatGeneration(message=message)])


def _filter() -> Any:
    return LLMChainFilter.from_llm(Judge())


def _listwise() -> Any:
    return LLMListwiseRerank.from_llm(Judge(), top_n=4)


@pytest.mark.parametrize("compressor", [_filter, _listwise], ids=["LLMChainFilter",
                                                                  "LLMListwiseRerank"])
def test_documents_an_llm_reranker_dropped_never_reach_the_answer(
        trail: Trail, compressor: Any) -> None:
    base = make_retriever(k=4)
    retrieved = base.invoke(QUESTION)
    kept = [d for d in retrieved if KEEP in d.page_content]
    dropped = [d for d in retrieved if KEEP not in d.page_content]
    assert kept and dropped, "the scripted judge must keep some and drop some"
    retriever = ContextualCompressionRetriever(base_compressor=compressor(),
                                               base_retriever=base)
    assert [d.page_content for d in retriever.invoke(QUESTION)] == [
        d.page_content for d in kept]
    chain = build_rag_chain(retriever=retriever, reranker=_identity())
    rid = uuid.uuid4()
    collector = RunCollectorCallbackHandler()
    chain.invoke(QUESTION, config={"callbacks": [RagtrailCallbackHandler(trail), collector],
                                   "run_id": rid})
    lineage = stored(trail, rid)
    # LLMListwiseRerank's last step turns the ranking into documents: the reranker.
    assert_same_tree(lineage, collector.traced_runs, kinds={"_parse_ranking": "reranker"})
    # The judge's calls saw every candidate; they are not answering calls.
    judge_calls = [c for c in lineage.llm_calls if lineage.run(c.run_id).name == "Judge"]
    assert judge_calls
    in_prompt = lineage.documents_at(DocStage.IN_PROMPT)
    assert {u.run_id for u in in_prompt}.isdisjoint({c.run_id for c in judge_calls})
    assert [u.document_id for u in in_prompt] == [d.id for d in kept]
    # The candidates are the filter's input, what it kept is reranked, with input ranks.
    assert [u.document_id for u in lineage.documents_at(DocStage.RETRIEVED)] == [
        d.id for d in retrieved]
    reranked = lineage.documents_at(DocStage.RERANKED)
    assert [(u.document_id, u.input_rank) for u in reranked
            if lineage.run(u.run_id).kind is RunKind.RERANKER][:len(kept)] == [
        (d.id, retrieved.index(d)) for d in kept]
    assert_answers_use_only_kept(trail, rid, kept, dropped)


def assert_answers_use_only_kept(trail: Trail, rid: uuid.UUID, kept: list[Document],
                                 dropped: list[Document]) -> None:
    """``answers_using``: a dropped document reached no answer's prompt (its highest
    stage is ``retrieved``); each kept one reached this trace's answer."""
    for doc in dropped:
        assert trail.answers_using(str(doc.id), min_stage="in_prompt") == []
        (usage,) = trail.answers_using(str(doc.id))
        assert usage.stage is DocStage.RETRIEVED
    for doc in kept:
        (usage,) = trail.answers_using(str(doc.id), min_stage="in_prompt")
        assert usage.trace_id == str(rid) and usage.stage is DocStage.IN_PROMPT


def _identity() -> Any:
    from langchain_core.runnables import RunnableLambda

    def passthrough(inputs: dict[str, Any]) -> list[Document]:
        return list(inputs["documents"])

    return RunnableLambda(passthrough, name="passthrough")


def test_an_evaluator_declared_by_its_role_links_nothing_in_prompt(trail: Trail) -> None:
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough

    from lc_support import FakeOpenAIChat, format_docs

    retriever = make_retriever(k=3)
    judge = (ChatPromptTemplate.from_messages([("human", "Grade this context:\n{context}")])
             | FakeOpenAIChat()).with_config(metadata={"ragtrail_role": "evaluator"},
                                             run_name="grader")
    chain = (
        {"documents": retriever, "question": RunnablePassthrough()}
        | RunnablePassthrough.assign(context=lambda x: format_docs(x["documents"]))
        | {"grade": judge,
           "answer": (lambda x: x["question"]) | build_rag_chain(
               retriever=make_retriever(k=1), reranker=_identity())}
    )
    rid = uuid.uuid4()
    chain.invoke(QUESTION, config={"callbacks": [RagtrailCallbackHandler(trail)],
                                   "run_id": rid})
    lineage = stored(trail, rid)
    grader = next(r for r in lineage.runs if r.name == "grader")
    grader_calls = {r.id for r in lineage.runs if r.parent_id == grader.id
                    and r.kind is RunKind.LLM}
    assert grader_calls, "the grader called its model"
    in_prompt = lineage.documents_at(DocStage.IN_PROMPT)
    assert in_prompt and {u.run_id for u in in_prompt}.isdisjoint(grader_calls)
    # The grader saw all three documents; only the answer's one reached an answering call.
    assert [u.document_id for u in in_prompt] == [d.id for d in make_retriever(k=1).invoke(
        QUESTION)]
