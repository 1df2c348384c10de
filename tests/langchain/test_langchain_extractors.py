"""Every extractor the LangChain adapter declares loses only its own fields when it fails.

For each entry of each tuple in ``ragtrail_langchain._extractors`` (one tuple per
callback kind), that one entry is made to raise while real LangChain runnables run (the
fake chat models of ``lc_support``): every record is still captured, only the fields
the entry reads are lost, and the failure is counted under its name. The cases are
enumerated from the declared tuples, so a new extractor is covered without a new test;
a new tuple needs a scenario below (the first test says so).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from extractor_support import Scenario, check_one_extractor, declared_lists, extractor_cases
from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import CallbackManagerForChainRun, CallbackManagerForLLMRun
from langchain_core.documents import Document
from langchain_core.language_models import LLM
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

from lc_support import FakeOpenAIChat, ToolCallingChat, build_rag_chain
from ragtrail.testing import CapturingTrail
from ragtrail_langchain import RagtrailCallbackHandler
from ragtrail_langchain.testing import extractors as _extractors

QUESTION = "How does SQLite WAL mode let readers proceed?"


def _config(trail: CapturingTrail) -> dict[str, Any]:
    return {"callbacks": [RagtrailCallbackHandler(trail)]}


def rag_chain(trail: CapturingTrail) -> None:
    """Retriever, reranking step, prompt, chat model (usage, headers), parser."""
    build_rag_chain().invoke(QUESTION, config=_config(trail))


def streamed_rag_chain(trail: CapturingTrail) -> None:
    """The same chain streamed: tokens, and inputs reported at the end of steps."""
    for _ in build_rag_chain().stream(QUESTION, config=_config(trail)):
        pass


class _Completion(LLM):
    """A completion model (``on_llm_start``) reporting provider, model and parameters
    as LangChain's integrations do."""

    temperature: float = 0.3

    @property
    def _llm_type(self) -> str:
        return "fake-completion"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # BaseLLM reports these (not a call's bound arguments) as its invocation params.
        return {"model": "gpt-3.5-turbo-instruct", "temperature": self.temperature,
                "tools": [{"type": "function", "function": {"name": "search",
                                                            "parameters": {}}}],
                "tool_choice": "auto", "logit_bias": {"50256": -100}}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(ls_provider="openai", ls_model_name="gpt-3.5-turbo-instruct",
                               ls_model_type="llm", ls_temperature=self.temperature)

    def _call(self, prompt: str, stop: list[str] | None = None,
              run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> str:
        return f"echo: {prompt}"


def completion(trail: CapturingTrail) -> None:
    """A completion model with tools, a tool choice and a parameter ragtrail has no
    field for, called with a prompt."""
    _Completion().invoke(QUESTION, config=_config(trail))


def named_prompt(trail: CapturingTrail) -> None:
    """A named chat prompt rendered for a chat model."""
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer briefly."), ("human", "{question}")]).with_config(
        run_name="qa_prompt")
    (prompt | FakeOpenAIChat()).invoke({"question": QUESTION}, config=_config(trail))


class _BrokenStream(FakeOpenAIChat):
    """Streams two chunks, then fails: LangChain reports the partial response."""

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        yield ChatGenerationChunk(message=AIMessageChunk(content="The context"))
        yield ChatGenerationChunk(message=AIMessageChunk(content=" says"))
        raise ConnectionError("stream cut")


def broken_stream(trail: CapturingTrail) -> None:
    """A chat model whose stream breaks after two chunks."""
    with pytest.raises(ConnectionError):
        for _ in _BrokenStream().stream(QUESTION, config=_config(trail)):
            pass


@tool(response_format="content_and_artifact")
def _search(query: str) -> tuple[str, list[Document]]:
    """Search the glossary."""
    docs = [Document(page_content="WAL lets readers proceed.", metadata={"score": 0.9})]
    return "found one", docs


def tool_agent(trail: CapturingTrail) -> None:
    """A model with a bound tool and tool choice; the tool returns documents; the agent
    step reports its action and its finish."""

    def agent(question: str, run_manager: CallbackManagerForChainRun) -> str:
        model = ToolCallingChat().bind_tools([_search], tool_choice="auto")
        message = model.invoke(question, config={"callbacks": run_manager.get_child()})
        call = message.tool_calls[0]
        run_manager.on_agent_action(AgentAction(tool=call["name"], tool_input=call["args"],
                                                log="searching"))
        result = _search.invoke({**call, "type": "tool_call"},
                                config={"callbacks": run_manager.get_child()})
        run_manager.on_agent_finish(AgentFinish({"output": result.content}, log="done"))
        return str(result.content)

    RunnableLambda(agent, name="agent").invoke(QUESTION, config=_config(trail))


def answers_and_tool_calls(trail: CapturingTrail) -> None:
    """A model answering with text, and one answering with a tool call."""
    rag_chain(trail)
    tool_agent(trail)


#: Which real run exercises each declared tuple.
SCENARIOS: dict[str, Scenario] = {
    "CHAT_MODEL_START": tool_agent,
    "LLM_START": completion,
    "LLM_NEW_TOKEN": streamed_rag_chain,
    "LLM_END": answers_and_tool_calls,
    "LLM_ERROR": broken_stream,
    "CHAIN_START": rag_chain,
    "PROMPT_START": named_prompt,
    "CHAIN_END": rag_chain,
    "RETRIEVER_END": rag_chain,
    "TOOL_END": tool_agent,
    "AGENT_ACTION": tool_agent,
    "AGENT_FINISH": tool_agent,
}

_PROMPT = ("llm.prompt_template", "llm.prompt_template_hash", "llm.prompt_template_name",
           "llm.prompt_variables")
_DOCUMENTS = ("links", "documents")
_COST = ("llm.cost_metrics",)
#: Record fields each key an extractor returns ends up in.
FIELDS_OF: dict[str, tuple[str, ...]] = {
    "provider": ("llm.provider", "llm.provider_specific", *_COST),
    "provider_model": ("llm.provider_model", *_COST),
    "request_parameters": ("llm.request_parameters",),
    "provider_specific": ("llm.provider_specific", "llm.provider", *_COST),
    "tools": ("llm.tools",),
    "tool_choice": ("llm.tool_choice",),
    "messages": ("llm.messages", *_DOCUMENTS),
    "prompt_text": ("llm.prompt_text",),
    "content": ("llm.ttft",),
    "token_usage": ("llm.token_usage", *_COST),
    "response_metadata": ("llm.response_metadata",),
    "output_text": ("llm.output_text",),
    "rate_limit_info": ("llm.rate_limit_info",),
    "tool_calls": ("llm.tool_calls",),
    "template": _PROMPT,
    "variables": _PROMPT,
    "template_name": _PROMPT,
    "documents": (*_DOCUMENTS, "kind", "name"),  # a reranker found from its documents
    "tool": ("events",),
    "tool_input": ("events",),
    "log": ("events",),
    "return_values": ("events",),
}


#: Lost, and found again elsewhere: the provider the chat model reports at its start is
#: the one its response names (``response_metadata["model_provider"]``).
RECOVERED = frozenset({("CHAT_MODEL_START", "provider")})


def test_every_declared_tuple_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(declared_lists(_extractors))


@pytest.mark.parametrize(("list_name", "index"), extractor_cases(_extractors))
def test_a_failing_extractor_loses_only_its_fields(
    list_name: str, index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_one_extractor(SCENARIOS[list_name], _extractors, list_name, index, monkeypatch,
                        FIELDS_OF, RECOVERED)
