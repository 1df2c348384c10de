"""Agentic RAG in LlamaIndex: agents, workflows, tools that return documents, LLM
rerankers, and the two ways of enabling ragtrail (classic callbacks, ``instrument``).

Every agent here is LlamaIndex's own (``FunctionAgent``, ``AgentWorkflow``,
``ReActAgent``, a ``Workflow`` subclass) driven by LlamaIndex's own mock models,
scripted to call tools; trees are compared with LlamaIndex's own span tree.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ReActAgent
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms import MockLLM
from llama_index.core.postprocessor import LLMRerank
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.tools import FunctionTool, QueryEngineTool
from llama_index.core.workflow import Context, StartEvent, StopEvent, Workflow, step

from li_support import (
    ChoiceLLM,
    NamedMockLLM,
    SpanCollector,
    build_index,
    enable,
    reset_llamaindex,
    scripted_react_llm,
    scripted_tool_llm,
    tree_shape,
)
from ragtrail import Trail
from ragtrail.cli import cli
from ragtrail.schemas import DocStage, RunKind
from ragtrail_llamaindex import RagtrailHandler, instrument

QUESTION = "how does write ahead logging work in sqlite?"
NOTES = [("note-1", "Checkpoints move WAL pages back into the main database file.", 0.9),
         ("note-2", "Readers see the snapshot taken at their first read.", 0.5)]


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


def search_notes(topic: str) -> list[NodeWithScore]:
    """Search the team's notes about a topic."""
    return [NodeWithScore(node=TextNode(text=text, id_=node_id, metadata={"topic": topic}),
                          score=score) for node_id, text, score in NOTES]


def _docs_tool() -> QueryEngineTool:
    engine = build_index().as_query_engine(llm=NamedMockLLM(), similarity_top_k=2)
    return QueryEngineTool.from_defaults(engine, name="docs",
                                         description="Answers questions about SQLite.")


_CALLS = [("docs", {"input": "write ahead logging"}), ("search_notes", {"topic": "wal"})]


def _function_agent(seen: list[Any] | None = None) -> Any:
    return FunctionAgent(tools=[_docs_tool(), FunctionTool.from_defaults(fn=search_notes)],
                         llm=scripted_tool_llm(_CALLS, "WAL appends.", seen))


def _agent_workflow() -> Any:
    agent = FunctionAgent(name="researcher", description="Looks things up.",
                          tools=[_docs_tool(), FunctionTool.from_defaults(fn=search_notes)],
                          llm=scripted_tool_llm(_CALLS, "WAL appends."))
    return AgentWorkflow(agents=[agent], root_agent="researcher")


def _react_agent() -> Any:
    return ReActAgent(tools=[_docs_tool(), FunctionTool.from_defaults(fn=search_notes)],
                      llm=scripted_react_llm(_CALLS[:1], "WAL appends."))


class DocsWorkflow(Workflow):
    """A custom workflow: one step asks a query engine, built the way the docs build it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = build_index().as_query_engine(llm=NamedMockLLM(), similarity_top_k=2)

    @step
    async def answer(self, ctx: Context, ev: StartEvent) -> StopEvent:
        response = await self.engine.aquery(ev.query)
        return StopEvent(result=str(response))


def _custom_workflow() -> Any:
    return DocsWorkflow(timeout=30)


BUILDERS: dict[str, Callable[[], Any]] = {
    "FunctionAgent": _function_agent, "AgentWorkflow": _agent_workflow,
    "ReActAgent": _react_agent, "Workflow": _custom_workflow,
}


async def _run(agent: Any) -> Any:
    if isinstance(agent, DocsWorkflow):
        return await agent.run(query=QUESTION)
    return await agent.run(user_msg=QUESTION)


def _answering_traces(trail: Trail) -> list[Any]:
    """Traces other than the index builds (those are ingestion)."""
    return [t for t in trail.traces() if trail.lineage(t.trace_id).runs[0].request_type
            != "ingestion"]


async def _shape(url: str, form: str, build: Callable[[], Any]) -> list[Any]:
    trail = Trail(url)
    handler = enable(trail, form)
    collector = SpanCollector().attach()
    try:
        agent = build()
        result = await _run(agent)
    finally:
        collector.detach()
    assert trail.flush()
    (summary,) = _answering_traces(trail)  # one trace, not one per LLM call
    assert summary.trace_id == handler.last_trace_id
    lineage = trail.lineage(summary.trace_id)
    collector.check(lineage.runs)  # LlamaIndex's own tree, internal spans folded
    stats = trail.stats()["capture"]
    assert stats["duplicate_starts"] == 0 and stats["unknown_ends"] == 0
    root = lineage.runs[0]
    assert root.kind is RunKind.AGENT and root.parent_id is None
    assert lineage.question == QUESTION
    assert lineage.answer == str(result)
    trail.close()
    reset_llamaindex_now()
    return tree_shape(lineage)


def reset_llamaindex_now() -> None:
    for _ in reset_llamaindex():
        pass


@pytest.mark.parametrize("name", list(BUILDERS))
async def test_both_forms_store_the_same_agent_tree(name: str, tmp_path: Any) -> None:
    build = BUILDERS[name]
    instrumented = await _shape(f"sqlite:///{tmp_path}/a.db", "instrument", build)
    classic = await _shape(f"sqlite:///{tmp_path}/b.db", "classic", build)
    both = await _shape(f"sqlite:///{tmp_path}/c.db", "both", build)  # each run once
    assert classic == instrumented == both
    kinds = {kind for kind, *_ in classic}
    assert {"agent", "llm"} <= kinds
    if name != "Workflow":
        tools = {names[-1] for kind, names, *_ in classic if kind == "tool"}
        assert "docs" in tools  # named after the tool, not FunctionTool.acall
    # the nested query engine is part of the agent's tree, with its documents
    (retriever,) = [row for row in classic if row[0] == "retriever"]
    assert [stage for stage, *_ in retriever[3]] == ["retrieved", "retrieved"]


@pytest.mark.parametrize("form", ["instrument", "classic"])
async def test_agent_question_answer_tools_and_tool_documents(form: str, sqlite_url: str
                                                             ) -> None:
    trail = Trail(sqlite_url)
    handler = enable(trail, form)
    seen: list[Any] = []
    result = await _function_agent(seen).run(user_msg=QUESTION)
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    assert (lineage.question, lineage.answer) == (QUESTION, str(result))
    (summary,) = [t for t in trail.traces() if t.trace_id == handler.last_trace_id]
    assert summary.question == QUESTION and summary.answer and "WAL appends." in summary.answer

    # Tool runs are named after the tool; the node-returning tool retrieved its nodes.
    tools = {r.name: r for r in lineage.runs if r.kind is RunKind.TOOL}
    assert set(tools) == {"docs", "search_notes"}
    notes = [d for d in lineage.documents
             if d.run_id == tools["search_notes"].id and d.stage is DocStage.RETRIEVED]
    assert [(d.document_id, d.rank, d.score, d.content, d.metadata["topic"])
            for d in notes] == [(i, r, s, t, "wal") for r, (i, t, s) in enumerate(NOTES)]
    # QueryEngineTool: the response's source nodes, as the nested retriever returned them
    (retriever,) = [r for r in lineage.runs if r.kind is RunKind.RETRIEVER]
    from_tool = [(d.document_id, d.rank) for d in lineage.documents
                 if d.run_id == tools["docs"].id and d.stage is DocStage.RETRIEVED]
    from_retriever = [(d.document_id, d.rank) for d in lineage.documents
                      if d.run_id == retriever.id and d.stage is DocStage.RETRIEVED]
    assert from_tool == from_retriever and len(from_tool) == 2

    # The notes reached the prompt of the call that answered (through the tool message),
    # as the model itself received them.
    final = lineage.llm_calls[-1]
    in_prompt = [d.document_id for d in lineage.documents
                 if d.run_id == final.run_id and d.stage is DocStage.IN_PROMPT]
    assert {"note-1", "note-2"} <= set(in_prompt)
    received = json.dumps([m.content for m in seen[-1]])
    assert all(text in received for _, text, _ in NOTES)
    assert [u.trace_id for u in trail.answers_using("note-1")] == [handler.last_trace_id]

    # Tool definitions offered, tool calls made, tool messages keep their tool_call_id.
    agent_calls = [c for c in lineage.llm_calls if "MockFunctionCallingLLM" in
                   lineage.run(c.run_id).name]
    assert len(agent_calls) == 3
    offered = agent_calls[0].metadata.tools or []
    assert [t["name"] for t in offered] == ["docs", "search_notes"]
    assert offered[1]["parameters"]["properties"] == {"topic": {"title": "Topic",
                                                                "type": "string"}}
    assert [c.metadata.tool_calls for c in agent_calls] == [
        [{"id": "call_0", "name": "docs", "arguments": {"input": "write ahead logging"}}],
        [{"id": "call_1", "name": "search_notes", "arguments": {"topic": "wal"}}],
        None]
    tool_messages = [m for m in agent_calls[-1].metadata.messages or [] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_0", "call_1"]
    assert [m.additional_kwargs.get("tool_call_id") for m in seen[-1]
            if m.role.value == "tool"] == ["call_0", "call_1"]
    trail.close()


def test_cli_shows_an_agents_question_and_answer(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)

    async def ask() -> Any:
        return await _function_agent().run(user_msg=QUESTION)

    result = asyncio.run(ask())
    assert trail.flush()
    trace_id = handler.last_trace_id
    trail.close()
    for command in ("lineage", "traces"):
        args = [command, str(trace_id)] if command == "lineage" else [command]
        outcome = CliRunner().invoke(cli, [*args, "--db", sqlite_url, "--json"],
                                     catch_exceptions=False)
        assert outcome.exit_code == 0, outcome.output
        data = json.loads(outcome.stdout)
        row = data if command == "lineage" else next(
            t for t in data if t["trace_id"] == trace_id)
        assert row["question"] == QUESTION
        assert row["answer"] == (str(result) if command == "lineage" else row["answer"])
        assert "WAL appends." in row["answer"]


def _rerank_engine(choice: ChoiceLLM, answer_llm: Any) -> Any:
    return build_index().as_query_engine(
        llm=answer_llm, similarity_top_k=4,
        node_postprocessors=[LLMRerank(llm=choice, top_n=2, choice_batch_size=10)])


@pytest.mark.parametrize("mode", ["query", "aquery", "agent"])
async def test_llm_rerank_candidates_it_dropped_are_not_in_the_answers_prompt(
        mode: str, sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    choice = ChoiceLLM()
    engine = _rerank_engine(choice, NamedMockLLM())
    if mode == "query":
        response = engine.query(QUESTION)
    elif mode == "aquery":
        response = await engine.aquery(QUESTION)
    else:
        tool = QueryEngineTool.from_defaults(engine, name="docs", description="SQLite docs.")
        agent = FunctionAgent(tools=[tool], llm=scripted_tool_llm(
            [("docs", {"input": QUESTION})], "Answer:"))
        await agent.run(user_msg=QUESTION)
        response = None
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    retrieved = [d for d in lineage.documents if d.stage is DocStage.RETRIEVED
                 and lineage.run(d.run_id).kind is RunKind.RETRIEVER]
    (rerank,) = [r for r in lineage.runs if r.kind is RunKind.RERANKER]
    kept = [d for d in lineage.documents if d.run_id == rerank.id
            and d.stage is DocStage.RERANKED]
    assert len(retrieved) == 4 and [d.input_rank for d in kept] == [1, 0]
    if response is not None:
        assert [d.document_id for d in kept] == [n.node.node_id for n in response.source_nodes]
    # The reranker's own model saw every candidate ...
    assert all(d.content in choice.calls[0] for d in retrieved)
    # ... but only what it kept reached the answering call's prompt.
    prompted = [d for d in lineage.documents if d.stage is DocStage.IN_PROMPT]
    assert {d.document_id for d in prompted} == {d.document_id for d in kept}
    assert all("ChoiceLLM" not in lineage.run(d.run_id).name for d in prompted)
    dropped = {d.document_id for d in retrieved} - {d.document_id for d in kept}
    assert len(dropped) == 2
    for document_id in dropped:
        assert [u.stage for u in trail.answers_using(document_id)] == [DocStage.RETRIEVED]
    for document in kept:
        assert [u.stage for u in trail.answers_using(document.document_id)] == [
            DocStage.IN_PROMPT]
    trail.close()


async def test_concurrent_agent_runs_under_one_classic_handler(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = enable(trail, "classic")
    collector = SpanCollector().attach()
    try:
        agents = [_function_agent() for _ in range(3)]
        results = await asyncio.gather(*(a.run(user_msg=f"{QUESTION} #{i}")
                                         for i, a in enumerate(agents)))
    finally:
        collector.detach()
    assert trail.flush() and handler.last_trace_id is not None
    summaries = sorted(_answering_traces(trail), key=lambda t: t.question or "")
    assert [s.question for s in summaries] == [f"{QUESTION} #{i}" for i in range(3)]
    shapes = []
    for summary, result in zip(summaries, results, strict=True):
        lineage = trail.lineage(summary.trace_id)
        collector.check(lineage.runs)
        assert lineage.answer == str(result)
        shapes.append(tree_shape(lineage))
    assert shapes[0] == shapes[1] == shapes[2]
    stats = trail.stats()["capture"]
    assert stats["duplicate_starts"] == 0 and stats["unknown_ends"] == 0
    trail.close()


def test_classic_handler_held_only_by_the_agents_llm_records_the_agent(
        sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = RagtrailHandler(trail)  # not in Settings: only the agent's LLM holds it
    llm = scripted_tool_llm(_CALLS[1:], "WAL appends.")
    llm.callback_manager = CallbackManager([handler])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=search_notes)], llm=llm)

    async def ask() -> Any:
        return await agent.run(user_msg=QUESTION)

    result = asyncio.run(ask())
    assert trail.flush()
    (summary,) = trail.traces()
    lineage = trail.lineage(summary.trace_id)
    assert (lineage.runs[0].kind, lineage.answer) == (RunKind.AGENT, str(result))
    assert {r.name for r in lineage.runs if r.kind is RunKind.TOOL} == {"search_notes"}
    trail.close()


class StepBuiltLLMWorkflow(Workflow):
    """Builds its LLM inside a step: nothing the workflow holds reaches the handler."""

    handler: Any = None

    @step
    async def answer(self, ev: StartEvent) -> StopEvent:
        llm = NamedMockLLM(callback_manager=CallbackManager([self.handler]))
        return StopEvent(result=str(await llm.acomplete(ev.query)))


def test_what_the_callback_form_cannot_see_is_logged_once_and_stored_apart(
        sqlite_url: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ragtrail_llamaindex.testing import callback_coverage

    monkeypatch.setattr(callback_coverage, "_noted", False)
    trail = Trail(sqlite_url)
    with caplog.at_level("INFO", logger="ragtrail.llamaindex"):
        handler = RagtrailHandler(trail)
        RagtrailHandler(trail)
    notes = [r for r in caplog.records if r.getMessage() == callback_coverage.NOT_SEEN_NOTE]
    assert len(notes) == 1
    workflow = StepBuiltLLMWorkflow(timeout=30)
    workflow.handler = handler

    async def ask() -> Any:
        return await workflow.run(query=QUESTION)

    asyncio.run(ask())
    assert trail.flush()
    # As the README says: the workflow run is missing, its LLM call is a trace of its own.
    (summary,) = trail.traces()
    assert summary.kind is RunKind.LLM
    trail.close()


class JudgeFilter(BaseNodePostprocessor):
    """An LLM filter written by an application: its model (under any attribute name)
    reads every candidate and keeps those it answers "yes" for; its async path has no
    LlamaIndex span, like LLMRerank's."""

    judge: Any = None

    def _keep(self, nodes: list[NodeWithScore], verdicts: list[str]) -> list[NodeWithScore]:
        return [n for n, v in zip(nodes, verdicts, strict=True) if "WAL" in v or "write" in v]

    def _postprocess_nodes(self, nodes: list[NodeWithScore],
                           query_bundle: QueryBundle | None = None) -> list[NodeWithScore]:
        return self._keep(nodes, [self.judge.complete(n.node.get_content()).text
                                  for n in nodes])

    async def _apostprocess_nodes(self, nodes: list[NodeWithScore],
                                  query_bundle: QueryBundle | None = None
                                  ) -> list[NodeWithScore]:
        verdicts = [(await self.judge.acomplete(n.node.get_content())).text for n in nodes]
        return self._keep(nodes, verdicts)


@pytest.mark.parametrize("mode", ["query", "aquery"])
async def test_any_postprocessor_calling_an_llm_is_not_the_answers_prompt(
        mode: str, sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    engine = build_index().as_query_engine(
        llm=NamedMockLLM(), similarity_top_k=4,
        node_postprocessors=[JudgeFilter(judge=MockLLM())])  # MockLLM echoes: "yes" = WAL
    response = engine.query(QUESTION) if mode == "query" else await engine.aquery(QUESTION)
    assert trail.flush()
    lineage = trail.lineage(handler.last_trace_id)
    kept = {n.node.node_id for n in response.source_nodes}
    retrieved = {d.document_id for d in lineage.documents if d.stage is DocStage.RETRIEVED}
    assert len(retrieved) == 4 and 0 < len(kept) < 4
    judged = [c for c in lineage.llm_calls if lineage.run(c.run_id).name.startswith("MockLLM")]
    assert len(judged) == 4  # the judge saw every candidate ...
    prompted = {d.document_id for d in lineage.documents if d.stage is DocStage.IN_PROMPT}
    assert prompted == kept  # ... only what it kept reached the answer's prompt
    for document_id in retrieved - kept:
        assert [u.stage for u in trail.answers_using(document_id)] == [DocStage.RETRIEVED]
    trail.close()
