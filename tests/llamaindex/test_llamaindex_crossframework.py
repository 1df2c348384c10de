"""One trace across frameworks: LlamaIndex inside LangChain, LangChain inside LlamaIndex."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle

from li_support import KeywordReranker, build_index, reset_llamaindex
from ragtrail import Trail
from ragtrail.schemas import DocStage, Framework
from ragtrail_llamaindex import instrument

langchain_runnables = pytest.importorskip("langchain_core.runnables")
ragtrail_langchain = pytest.importorskip("ragtrail_langchain")

QUESTION = "how does write ahead logging work in sqlite"


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


def test_llamaindex_query_inside_a_langchain_lambda_is_its_subtree(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    engine = build_index().as_query_engine(llm=MockLLM(), similarity_top_k=4,
                                           node_postprocessors=[KeywordReranker(top_n=2)])
    li_handler = instrument(trail)
    lc_handler = ragtrail_langchain.RagtrailCallbackHandler(trail)
    answer_step = langchain_runnables.RunnableLambda(lambda q: str(engine.query(q)),
                                                     name="llamaindex_answer")
    chain = answer_step | langchain_runnables.RunnableLambda(lambda s: s.strip())
    root_id = uuid.uuid4()
    answer = chain.invoke(QUESTION, config={"callbacks": [lc_handler], "run_id": root_id})
    assert trail.flush()

    lineage = trail.lineage(str(root_id))
    assert lineage.trace_id == str(root_id) == li_handler.last_trace_id
    assert lineage.answer == answer
    by_id = {run.id: run for run in lineage.runs}
    (query,) = [r for r in lineage.runs if r.name == "RetrieverQueryEngine.query"]
    step = by_id[query.parent_id]
    assert (step.framework, step.name) == (Framework.LANGCHAIN, "llamaindex_answer")
    assert by_id[step.parent_id].id == str(root_id)
    llamaindex_runs = [r for r in lineage.runs if r.framework is Framework.LLAMAINDEX]
    assert len(llamaindex_runs) == 7
    assert {r.trace_id for r in lineage.runs} == {str(root_id)}
    stages = {d.stage for d in lineage.documents}
    assert stages == {DocStage.RETRIEVED, DocStage.RERANKED, DocStage.IN_PROMPT}
    assert {d.run_id for d in lineage.documents} <= {r.id for r in llamaindex_runs}
    trail.close()


class RewritingRetriever(BaseRetriever):
    """Rewrites the query with a LangChain runnable, then retrieves."""

    def __init__(self, inner: BaseRetriever, rewrite: object, callbacks: list[object]) -> None:
        super().__init__()
        self._inner, self._rewrite, self._callbacks = inner, rewrite, callbacks

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        text = self._rewrite.invoke(query_bundle.query_str,  # type: ignore[attr-defined]
                                    config={"callbacks": self._callbacks})
        return self._inner.retrieve(text)


def test_langchain_runnable_inside_llamaindex_is_its_child(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    lc_handler = ragtrail_langchain.RagtrailCallbackHandler(trail)
    rewrite = langchain_runnables.RunnableLambda(lambda q: q.replace("sqlite", "SQLite WAL"),
                                                 name="rewrite_query")
    retriever = RewritingRetriever(build_index().as_retriever(similarity_top_k=2), rewrite,
                                   [lc_handler])
    li_handler = instrument(trail)
    RetrieverQueryEngine.from_args(retriever, llm=MockLLM()).query(QUESTION)
    assert trail.flush()

    lineage = trail.lineage(li_handler.last_trace_id)
    by_name = {run.name: run for run in lineage.runs}
    rewrite_run = by_name["rewrite_query"]
    assert rewrite_run.framework is Framework.LANGCHAIN
    assert rewrite_run.parent_id == by_name["RewritingRetriever.retrieve"].id
    assert rewrite_run.trace_id == lineage.trace_id == by_name["RetrieverQueryEngine.query"].id
    trail.close()
