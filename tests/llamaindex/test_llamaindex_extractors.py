"""Every extractor the LlamaIndex adapter declares loses only its own fields when it fails.

For each entry of each tuple in ``ragtrail_llamaindex._extractors`` (one tuple per span
or event kind), that one entry is made to raise while real LlamaIndex components run
(the index, retriever, postprocessors and models of ``li_support``, LlamaIndex's own
agent and mock models): every record is still captured, only the fields the entry reads
are lost, and the failure is counted under its name. The cases are enumerated from the
declared tuples, so a new extractor is covered without a new test; a new tuple needs a
scenario below (the first test says so).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from extractor_support import Scenario, check_one_extractor, declared_lists, extractor_cases
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.events.agent import AgentToolCallEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.llms import ChatMessage, CompletionResponse, MockLLM
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.tools import FunctionTool, ToolMetadata

from li_support import KeywordReranker, UsageLLM, build_index, reset_llamaindex
from ragtrail.testing import CapturingTrail
from ragtrail_llamaindex import RagtrailHandler, instrument, uninstrument
from ragtrail_llamaindex.testing import extractors as _extractors

QUESTION = "how does write ahead logging work in sqlite"
dispatcher = get_dispatcher(__name__)


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


#: A model of an integration package (``llama_index.llms.openai``): its provider, and
#: the client's request style, come from there.
OpenAIModel = type("OpenAIModel", (UsageLLM,), {"__module__": "llama_index.llms.openai.base"})


def _instrumented(trail: CapturingTrail, work: Any) -> None:
    instrument(trail)
    try:
        work()
    finally:
        uninstrument(trail)


def query(trail: CapturingTrail) -> None:
    """Retrieve, rerank with a postprocessor, synthesize with a completion model."""
    engine = build_index().as_query_engine(llm=OpenAIModel(), similarity_top_k=4,
                                           node_postprocessors=[KeywordReranker(top_n=2)])
    _instrumented(trail, lambda: engine.query(QUESTION))


def streamed_query(trail: CapturingTrail) -> None:
    """The same query streamed: chunks with text, the last with usage and metadata."""
    engine = build_index().as_query_engine(llm=OpenAIModel(), streaming=True,
                                           similarity_top_k=4,
                                           node_postprocessors=[KeywordReranker(top_n=2)])
    _instrumented(trail, lambda: "".join(engine.query(QUESTION).response_gen))


def _nodes(query_str: str) -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=f"{query_str} #{i}", id_=f"n{i}"), score=0.5)
            for i in range(2)]


def model_calls(trail: CapturingTrail) -> None:
    """A chat call offered a tool with a tool choice, a completion call, and a tool
    returning nodes."""
    tool = FunctionTool.from_defaults(fn=_nodes, name="search")

    def work() -> None:
        model = OpenAIModel()
        model.chat([ChatMessage(role="user", content=QUESTION)], tools=[tool],
                   tool_choice="auto", logit_bias={"50256": -100})
        model.complete(QUESTION)
        tool.call(query_str=QUESTION)

    _instrumented(trail, work)


def _add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def agent(trail: CapturingTrail) -> None:
    """LlamaIndex's FunctionAgent calling a tool (its model asks for the call)."""
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=_add)],
                          llm=MockFunctionCallingLLM())

    async def run() -> None:
        await agent.run("add two numbers")

    _instrumented(trail, lambda: asyncio.run(run()))


def _announced_add(a: int, b: int) -> int:
    """Add two numbers, announcing the call as agents report theirs."""
    dispatcher.event(AgentToolCallEvent(arguments=f'{{"a": {a}, "b": {b}}}',
                                        tool=ToolMetadata(name="add", description="Add.")))
    return a + b


def tool_call_event(trail: CapturingTrail) -> None:
    """An ``AgentToolCallEvent`` inside a tool's run (as LlamaIndex's classic agents
    dispatch it)."""
    tool = FunctionTool.from_defaults(fn=_announced_add, name="add")
    _instrumented(trail, lambda: tool.call(a=2, b=3))


def answers_and_tool_calls(trail: CapturingTrail) -> None:
    """A query's answer and an agent's tool call."""
    query(trail)
    agent(trail)


class _InlineReranking(BaseRetriever):
    """Retrieves, then reranks inside its own method: only the ReRank events tell."""

    def __init__(self, inner: BaseRetriever) -> None:
        super().__init__()
        self._inner = inner

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        nodes = self._inner.retrieve(query_bundle)
        dispatcher.event(ReRankStartEvent(query=query_bundle, nodes=nodes, top_n=2,
                                          model_name="inline-model"))
        kept = list(reversed(nodes))[:2]
        dispatcher.event(ReRankEndEvent(nodes=kept))
        return kept


def inline_rerank(trail: CapturingTrail) -> None:
    """A retriever reranking with ReRank events, outside any postprocessor."""
    retriever = _InlineReranking(build_index().as_retriever(similarity_top_k=4))
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    _instrumented(trail, lambda: engine.query(QUESTION))


def classic_callbacks(trail: CapturingTrail) -> None:
    """Classic LLM callback events outside any span: a completion and a chat."""
    manager = CallbackManager([RagtrailHandler(trail)])
    with manager.event(CBEventType.LLM, payload={
            EventPayload.PROMPT: "Q: what is WAL?",
            EventPayload.SERIALIZED: {"model": "gpt-4o-mini", "class_name": "X"}}) as llm:
        llm.on_end(payload={EventPayload.COMPLETION: CompletionResponse(text="an answer")})
    with manager.event(CBEventType.LLM, payload={
            EventPayload.MESSAGES: [ChatMessage(role="user", content="what is WAL?")]}) as llm:
        llm.on_end(payload={EventPayload.COMPLETION: CompletionResponse(text="an answer")})


#: Which real run exercises each declared tuple.
SCENARIOS: dict[str, Scenario] = {
    "SPAN_ENTER": query,
    "POSTPROCESSOR_ENTER": query,
    "LLM_WRAPPER_ENTER": query,
    "ENGINE_ENTER": query,
    "LLM_START": model_calls,
    "SPAN_EXIT": query,
    "RETRIEVER_EXIT": query,
    "RERANKER_EXIT": query,
    "TOOL_EXIT": model_calls,
    "LLM_END": answers_and_tool_calls,
    "LLM_PROGRESS": streamed_query,
    "RERANK_START": inline_rerank,
    "RERANK_END": inline_rerank,
    "TOOL_CALL": tool_call_event,
    "CALLBACK_LLM_START": classic_callbacks,
}

_DOCUMENTS = ("links", "documents")
_COST = ("llm.cost_metrics",)
_PROMPT = ("llm.prompt_template", "llm.prompt_template_hash", "llm.prompt_template_name",
           "llm.prompt_variables")
#: Record fields each key an extractor returns ends up in.
FIELDS_OF: dict[str, tuple[str, ...]] = {
    "inputs": ("inputs",),
    "metadata": ("metadata",),
    "candidates": ("inputs", "kind", *_DOCUMENTS),
    "template": _PROMPT,
    "pipeline": (),  # what the query's pipeline is for (silent reranking) did not happen
    "outputs": ("outputs",),
    "documents": _DOCUMENTS,
    "nodes": ("outputs", "kind", *_DOCUMENTS),  # a reranker found from its nodes
    "provider": ("llm.provider", "llm.provider_specific", *_COST),
    "provider_model": ("llm.provider_model", "llm.provider", "llm.provider_specific", *_COST),
    "request_parameters": ("llm.request_parameters",),
    "provider_specific": ("llm.provider_specific",),
    "messages": ("llm.messages", *_DOCUMENTS),
    "prompt_text": ("llm.prompt_text", *_DOCUMENTS),
    "tools": ("llm.tools",),
    "tool_choice": ("llm.tool_choice",),
    "output_text": ("llm.output_text", "outputs"),
    "token_usage": ("llm.token_usage", *_COST),
    "response_metadata": ("llm.response_metadata",),
    "tool_calls": ("llm.tool_calls", "outputs"),
    "content": ("llm.ttft",),
    "usage": ("llm.token_usage", "llm.provider_specific", *_COST),
    "model_name": ("metadata", "name"),
    "top_n": ("metadata",),
    "query": ("inputs",),
    "tool": ("events",),
    "arguments": ("events",),
}

#: Lost, and found again elsewhere: a query engine's pipeline and its retriever's nodes
#: only serve to infer a reranking LlamaIndex reports no span for, which this
#: synchronous query does not need;
#: the usage and metadata a stream's chunks report are reported again by its last chunk,
#: the answer; the model is also a request parameter, where the core finds it.
RECOVERED = frozenset({("ENGINE_ENTER", "query_pipeline"), ("RETRIEVER_EXIT", "result_nodes"), ("LLM_PROGRESS", "chunk_usage"),
                       ("LLM_PROGRESS", "chunk_metadata"), ("LLM_START", "model")})


def test_every_declared_tuple_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(declared_lists(_extractors))


@pytest.mark.parametrize(("list_name", "index"), extractor_cases(_extractors))
def test_a_failing_extractor_loses_only_its_fields(
    list_name: str, index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_one_extractor(SCENARIOS[list_name], _extractors, list_name, index, monkeypatch,
                        FIELDS_OF, RECOVERED)
