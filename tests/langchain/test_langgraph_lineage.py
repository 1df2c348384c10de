"""Agentic RAG as LangChain teaches it now: LangGraph's "Build a RAG App: Part 2" graph,
the prebuilt ``create_react_agent``, LangChain v1's ``create_agent`` and
``create_retriever_tool``, each with a question, an answer, the documents its tools
returned and the documents that reached the answering call's prompt, stored as the
same tree LangChain's run collector saw."""

from __future__ import annotations

import json
import uuid
import warnings
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langgraph.checkpoint.memory import MemorySaver

from lc_support import (
    ToolCallingChat,
    assert_same_tree,
    build_rag_graph,
    make_retrieve_tool,
    make_vector_store,
    open_trail,
    stored,
)
from ragtrail import Trail
from ragtrail.query import Lineage
from ragtrail.schemas import DocStage, RunKind, content_hash
from ragtrail_langchain import RagtrailCallbackHandler

trail = pytest.fixture(name="trail")(open_trail)

QUESTION = "How does SQLite WAL let readers and a writer work together?"
ANSWER = f"The context answers: {QUESTION}"


def tool_documents(k: int = 2) -> list[Document]:
    """What the retrieve tool returns for :data:`QUESTION`, computed without ragtrail."""
    _, docs = make_retrieve_tool(make_vector_store(), k).func(QUESTION)
    return list(docs)


def assert_tool_documents(lineage: Lineage, tool_name: str, expected: list[Document]) -> None:
    """The tool run holds the documents it returned, as a retriever run would."""
    (tool,) = [r for r in lineage.runs if r.kind is RunKind.TOOL]
    assert tool.name == tool_name
    retrieved = [u for u in lineage.documents_at(DocStage.RETRIEVED) if u.run_id == tool.id]
    assert [(u.document_id, u.content_hash, u.rank, u.score, u.metadata) for u in retrieved] == [
        (d.id, content_hash(d.page_content), rank, d.metadata["score"], d.metadata)
        for rank, d in enumerate(expected)]


def answering_call(lineage: Lineage) -> str:
    """Run id of the LLM call that produced the final answer."""
    return next(c.run_id for c in reversed(lineage.llm_calls)
                if c.metadata.output_text == ANSWER)


def assert_in_prompt(lineage: Lineage, expected: list[Document]) -> None:
    """The tool's documents reached the answering call's prompt, and only that call's."""
    in_prompt = lineage.documents_at(DocStage.IN_PROMPT)
    assert {u.run_id for u in in_prompt} == {answering_call(lineage)}
    assert [u.document_id for u in in_prompt] == [d.id for d in expected]


def test_rag_part_2_graph_has_question_answer_and_documents(trail: Trail) -> None:
    graph = build_rag_graph(ToolCallingChat(), make_vector_store(), checkpointer=MemorySaver())
    handler = RagtrailCallbackHandler(trail)
    rid = uuid.uuid4()
    collector = RunCollectorCallbackHandler()
    out = graph.invoke({"messages": [{"role": "user", "content": QUESTION}]},
                       config={"callbacks": [handler, collector], "run_id": rid,
                               "configurable": {"thread_id": "thread-7"}})
    assert out["messages"][-1].content == ANSWER
    lineage = stored(trail, rid)
    assert_same_tree(lineage, collector.traced_runs)
    assert (lineage.question, lineage.answer) == (QUESTION, ANSWER)
    expected = tool_documents()
    assert_tool_documents(lineage, "retrieve", expected)
    assert_in_prompt(lineage, expected)
    assert lineage.root is not None and lineage.root.session_id == "thread-7"
    nodes = {r.name: r.metadata.get("langgraph_node") for r in lineage.runs
             if r.parent_id == lineage.trace_id}
    assert nodes == {"query_or_respond": "query_or_respond", "tools": "tools",
                     "generate": "generate"}
    steps = {r.name: r.metadata.get("langgraph_step") for r in lineage.runs
             if r.parent_id == lineage.trace_id}
    assert steps == {"query_or_respond": 1, "tools": 2, "generate": 3}
    # The documents' headline query: this answer used them, in its prompt.
    for doc in expected:
        (usage,) = trail.answers_using(str(doc.id))
        assert (usage.trace_id, usage.stage, usage.answer) == (str(rid), "in_prompt", ANSWER)
    (summary,) = trail.traces()
    assert (summary.question, summary.answer, summary.session_id) == (QUESTION, ANSWER,
                                                                      "thread-7")


def test_a_second_turn_on_the_thread_has_its_own_question_and_answer(trail: Trail) -> None:
    graph = build_rag_graph(ToolCallingChat(), make_vector_store(), checkpointer=MemorySaver())
    config: dict[str, Any] = {"callbacks": [RagtrailCallbackHandler(trail)],
                              "configurable": {"thread_id": "t"}}
    graph.invoke({"messages": [("user", "What does VACUUM do?")]}, config=config)
    rid = uuid.uuid4()
    graph.invoke({"messages": [("user", QUESTION)]}, config={**config, "run_id": rid})
    lineage = stored(trail, rid)
    assert (lineage.question, lineage.answer) == (QUESTION, ANSWER)


def test_an_application_session_wins_over_the_thread(trail: Trail) -> None:
    graph = build_rag_graph(ToolCallingChat(), make_vector_store(), checkpointer=MemorySaver())
    rid = uuid.uuid4()
    graph.invoke({"messages": [("user", QUESTION)]},
                 config={"callbacks": [RagtrailCallbackHandler(trail, session_id="app-s")],
                         "run_id": rid, "configurable": {"thread_id": "thread-7"}})
    root = stored(trail, rid).root
    assert root is not None and root.session_id == "app-s"


def _react_agent(model: ToolCallingChat, tools: list[Any]) -> Any:
    with warnings.catch_warnings():  # moved to langchain.agents in LangGraph 1.0
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(model, tools)


def _create_agent(model: ToolCallingChat, tools: list[Any]) -> Any:
    from langchain.agents import create_agent

    return create_agent(model, tools)


@pytest.mark.parametrize("build", [_react_agent, _create_agent],
                         ids=["create_react_agent", "create_agent"])
def test_prebuilt_agents_are_agents_with_their_documents(trail: Trail, build: Any) -> None:
    agent = build(ToolCallingChat(), [make_retrieve_tool(make_vector_store())])
    rid = uuid.uuid4()
    collector = RunCollectorCallbackHandler()
    out = agent.invoke({"messages": [{"role": "user", "content": QUESTION}]},
                       config={"callbacks": [RagtrailCallbackHandler(trail), collector],
                               "run_id": rid})
    assert out["messages"][-1].content == ANSWER
    lineage = stored(trail, rid)
    assert lineage.root is not None and lineage.root.kind is RunKind.AGENT
    assert_same_tree(lineage, collector.traced_runs, kinds={"LangGraph": "agent"})
    assert [r.kind for r in lineage.runs].count(RunKind.AGENT) == 1
    assert (lineage.question, lineage.answer) == (QUESTION, ANSWER)
    expected = tool_documents()
    assert_tool_documents(lineage, "retrieve", expected)
    assert_in_prompt(lineage, expected)


def test_a_plain_graph_is_not_an_agent(trail: Trail) -> None:
    graph = build_rag_graph(ToolCallingChat(), make_vector_store())
    rid = uuid.uuid4()
    graph.invoke({"messages": [("user", QUESTION)]},
                 config={"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    assert RunKind.AGENT not in {r.kind for r in stored(trail, rid).runs}


def test_create_retriever_tool_agent(trail: Trail) -> None:
    from langchain_core.tools import create_retriever_tool

    from lc_support import make_retriever

    tool = create_retriever_tool(make_retriever(k=2), "search_docs",
                                 "Search the SQLite and PostgreSQL notes.")
    agent = _create_agent(ToolCallingChat(), [tool])
    rid = uuid.uuid4()
    collector = RunCollectorCallbackHandler()
    agent.invoke({"messages": [("user", QUESTION)]},
                 config={"callbacks": [RagtrailCallbackHandler(trail), collector], "run_id": rid})
    lineage = stored(trail, rid)
    assert_same_tree(lineage, collector.traced_runs, kinds={"LangGraph": "agent"})
    assert (lineage.question, lineage.answer) == (QUESTION, ANSWER)
    (tool_run,) = [r for r in lineage.runs if r.kind is RunKind.TOOL]
    assert tool_run.name == "search_docs"
    expected = make_retriever(k=2).invoke(QUESTION)
    retrieved = lineage.documents_at(DocStage.RETRIEVED)
    assert [u.document_id for u in retrieved] == [d.id for d in expected]
    assert {lineage.run(u.run_id).parent_id for u in retrieved} == {tool_run.id}
    assert_in_prompt(lineage, expected)


def test_the_cli_shows_a_graphs_question_and_answer(trail: Trail) -> None:
    from click.testing import CliRunner

    from ragtrail.cli import cli

    graph = build_rag_graph(ToolCallingChat(), make_vector_store())
    rid = uuid.uuid4()
    graph.invoke({"messages": [("user", "What does VACUUM do?")]},
                 config={"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    assert trail.flush(10.0)
    out = CliRunner().invoke(cli, ["traces", "--db", trail.url, "--json"]).stdout
    (row,) = json.loads(out)
    assert (row["question"], row["answer"]) == ("What does VACUUM do?",
                                                "The context answers: What does VACUUM do?")
    text = CliRunner().invoke(cli, ["lineage", str(rid), "--db", trail.url],
                              terminal_width=200).stdout
    assert "Question: What does VACUUM do?" in text
    assert "Answer: The context answers: What does VACUUM do?" in text
    tree = CliRunner().invoke(cli, ["show", str(rid), "--db", trail.url],
                              terminal_width=200).stdout
    assert "tool calls: retrieve(" in tree and "tool retrieve" in tree
