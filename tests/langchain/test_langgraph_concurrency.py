"""The framework's tree, always: LangGraph graphs and agents stored as the same tree
LangChain's run collector builds, in every shape they run in: subgraphs in parallel,
``astream_events``, each ``stream_mode``, one handler shared by concurrent requests,
and sync tools run by an async agent in executor threads."""

from __future__ import annotations

import asyncio
import operator
import uuid
from typing import Annotated, Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langgraph.checkpoint.memory import MemorySaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

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
from ragtrail.schemas import DocStage, RunKind
from ragtrail_langchain import RagtrailCallbackHandler

trail = pytest.fixture(name="trail")(open_trail)

QUESTIONS = [
    "How does SQLite WAL let readers and a writer work together?",
    "What does VACUUM do to the database file?",
    "How does PostgreSQL MVCC treat readers?",
    "Which index suits JSONB containment queries?",
    "What ranking does FTS5 offer?",
    "Which lock does a SQLite writer take?",
]


def _check(trail: Trail, rid: uuid.UUID, collector: RunCollectorCallbackHandler,
           question: str, kinds: dict[str, str] | None = None) -> None:
    lineage = stored(trail, rid)
    assert_same_tree(lineage, [r for r in collector.traced_runs if r.id == rid], kinds)
    assert lineage.question == question
    assert lineage.answer == f"The context answers: {question}"
    assert lineage.documents_at(DocStage.IN_PROMPT), "the tool's documents reached the answer"


class Fan(TypedDict):
    question: str
    answers: Annotated[list[str], operator.add]


class Answers(TypedDict):
    answers: Annotated[list[str], operator.add]


def _subgraph(name: str, model: ToolCallingChat) -> Any:
    def ask(state: Fan) -> dict[str, Any]:
        reply = model.invoke([HumanMessage(f"{name}: {state['question']}")])
        return {"answers": [str(reply.content)]}

    builder = StateGraph(Fan, output_schema=Answers)
    builder.add_node(f"{name}_ask", ask)
    builder.add_edge(START, f"{name}_ask")
    return builder.compile()


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_subgraphs_run_in_parallel(trail: Trail, mode: str) -> None:
    model = ToolCallingChat()
    builder = StateGraph(Fan)
    for name in ("left", "right", "middle"):
        builder.add_node(name, _subgraph(name, model))
        builder.add_edge(START, name)
        builder.add_edge(name, END)
    graph = builder.compile()
    collector = RunCollectorCallbackHandler()
    rid = uuid.uuid4()
    config = {"callbacks": [RagtrailCallbackHandler(trail), collector], "run_id": rid}
    inputs = {"question": QUESTIONS[0], "answers": []}
    out = graph.invoke(inputs, config) if mode == "invoke" else await graph.ainvoke(inputs, config)
    assert len(out["answers"]) == 3
    lineage = stored(trail, rid)
    assert_same_tree(lineage, collector.traced_runs)
    assert sum(r.kind is RunKind.LLM for r in lineage.runs) == 3


async def test_astream_events(trail: Trail) -> None:
    graph = build_rag_graph(ToolCallingChat(), make_vector_store())
    collector = RunCollectorCallbackHandler()
    rid = uuid.uuid4()
    events = [event async for event in graph.astream_events(
        {"messages": [("user", QUESTIONS[0])]}, version="v2",
        config={"callbacks": [RagtrailCallbackHandler(trail), collector], "run_id": rid})]
    assert any(e["event"] == "on_tool_end" for e in events)
    _check(trail, rid, collector, QUESTIONS[0])


@pytest.mark.parametrize("stream_mode", ["values", "updates", "messages", "custom", "debug",
                                         "tasks", "checkpoints"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["stream", "astream"])
async def test_every_stream_mode(trail: Trail, stream_mode: str, asynchronous: bool) -> None:
    graph = build_rag_graph(ToolCallingChat(), make_vector_store(), checkpointer=MemorySaver())
    collector = RunCollectorCallbackHandler()
    rid = uuid.uuid4()
    config = {"callbacks": [RagtrailCallbackHandler(trail), collector], "run_id": rid,
              "configurable": {"thread_id": f"t-{stream_mode}"}}
    inputs = {"messages": [("user", QUESTIONS[1])]}
    if asynchronous:
        chunks = [c async for c in graph.astream(inputs, config, stream_mode=stream_mode)]
    else:
        chunks = list(graph.stream(inputs, config, stream_mode=stream_mode))
    assert chunks or stream_mode == "custom"
    _check(trail, rid, collector, QUESTIONS[1])


def _agent(tools: list[Any]) -> Any:
    from langchain.agents import create_agent

    return create_agent(ToolCallingChat(), tools)


async def test_one_handler_shared_by_concurrent_requests(trail: Trail) -> None:
    # A sync tool: the async agent runs it in an executor thread.
    agent = _agent([make_retrieve_tool(make_vector_store())])
    handler = RagtrailCallbackHandler(trail)
    rids = [uuid.uuid4() for _ in QUESTIONS]
    collectors = [RunCollectorCallbackHandler() for _ in QUESTIONS]
    await asyncio.gather(*(
        agent.ainvoke({"messages": [("user", q)]},
                      config={"callbacks": [handler, c], "run_id": rid})
        for q, rid, c in zip(QUESTIONS, rids, collectors, strict=True)))
    for q, rid, c in zip(QUESTIONS, rids, collectors, strict=True):
        _check(trail, rid, c, q, kinds={"LangGraph": "agent"})


def test_one_handler_shared_by_threads(trail: Trail) -> None:
    from concurrent.futures import ThreadPoolExecutor

    graph = build_rag_graph(ToolCallingChat(), make_vector_store())
    handler = RagtrailCallbackHandler(trail)
    rids = [uuid.uuid4() for _ in QUESTIONS]
    collectors = [RunCollectorCallbackHandler() for _ in QUESTIONS]

    def ask(i: int) -> Any:
        return graph.invoke({"messages": [("user", QUESTIONS[i])]},
                            config={"callbacks": [handler, collectors[i]], "run_id": rids[i]})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(ask, range(len(QUESTIONS))))
    for q, rid, c in zip(QUESTIONS, rids, collectors, strict=True):
        _check(trail, rid, c, q)
