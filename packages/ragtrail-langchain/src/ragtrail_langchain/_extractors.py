"""What is read off each LangChain callback: one declared tuple of named extractors per
event kind.

Each tuple is the answer to "what do we read off a chat-model start?" (a run's name and
inputs aside, which every start passes on as they are). The handler runs a tuple with
:func:`ragtrail.capture.extract`, which guards every extractor: one that raises loses
its own fields (counted under its name in ``Trail.stats()``'s errors and logged,
rate-limited), never the record or the other fields. An extractor takes the event (a
small frozen dataclass of what the callback received) and returns a mapping of the
fields it found, or None.

============================  ==========================================================
event kind                    tuple
============================  ==========================================================
chat model start              :data:`CHAT_MODEL_START` (LLMUpdate fields)
LLM (completion) start        :data:`LLM_START` (LLMUpdate fields)
LLM new token                 :data:`LLM_NEW_TOKEN` (``content``: the token carries some)
LLM / chat model end          :data:`LLM_END` (LLMUpdate fields)
LLM / chat model error        :data:`LLM_ERROR` (LLMUpdate fields: the partial output)
chain start                   :data:`CHAIN_START` (input documents)
prompt start                  :data:`PROMPT_START` (template, variables, name)
chain end                     :data:`CHAIN_END` (``documents``)
retriever end                 :data:`RETRIEVER_END` (``documents``)
tool end                      :data:`TOOL_END` (``documents``)
agent action                  :data:`AGENT_ACTION` (the event's data)
agent finish                  :data:`AGENT_FINISH` (the event's data)
============================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langchain_core.outputs import Generation, LLMResult

from ragtrail.capture import Extractor, LLMUpdate
from ragtrail.conventions import tool_definitions as canonical_tool_definitions
from ragtrail.providers import rate_limit_info

from ._convert import messages_of, plain
from ._documents import doc_list, docs_in, tool_docs
from ._llm import (
    constructor_kwargs,
    first_generation,
    invocation_extras,
    output_text,
    request_parameters,
    response_info,
    response_metadata_fields,
    response_tool_calls,
    token_usage,
)
from ._names import LS_MODEL_NAME, LS_PROVIDER
from ._prompt import template_name, template_text

__all__ = [
    "AGENT_ACTION",
    "AGENT_FINISH",
    "CHAIN_END",
    "CHAIN_START",
    "CHAT_MODEL_START",
    "LLM_END",
    "LLM_ERROR",
    "LLM_NEW_TOKEN",
    "LLM_START",
    "PROMPT_START",
    "RETRIEVER_END",
    "TOOL_END",
    "AgentEvent",
    "ChainStart",
    "Documents",
    "ModelEnd",
    "ModelError",
    "ModelStart",
    "NewToken",
    "model_end",
]


# -- model calls ---------------------------------------------------------------------


@dataclass(slots=True)
class ModelStart:
    """``on_chat_model_start`` / ``on_llm_start``: what the call was given."""

    serialized: Mapping[str, Any] | None
    metadata: Mapping[str, Any]
    params: Mapping[str, Any]  # invocation params
    messages: list[Any] | None = None  # chat models: the messages sent
    prompt: str | None = None  # completion models: the prompt sent


def provider(event: ModelStart) -> LLMUpdate:
    """``ls_provider`` in the run metadata (the handler then decides whether it is only
    LangChain's default made from a class name)."""
    return LLMUpdate(provider=event.metadata.get(LS_PROVIDER) or None)


def model_and_parameters(event: ModelStart) -> LLMUpdate:
    """Model and request parameters: invocation params, ``ls_*`` metadata, then the
    constructor's arguments (see :func:`._llm.request_parameters`); the model named by
    ``ls_model_name`` first."""
    request = request_parameters(event.params, event.metadata,
                                 constructor_kwargs(event.serialized))
    return LLMUpdate(provider_model=event.metadata.get(LS_MODEL_NAME) or request.get("model"),
                     request_parameters=request or None)


def extra_parameters(event: ModelStart) -> LLMUpdate | None:
    """Invocation params ragtrail has no field for, kept as provider specifics."""
    extra = invocation_extras(event.params)
    return LLMUpdate(provider_specific={"invocation_params": extra}) if extra else None


def tool_definitions(event: ModelStart) -> LLMUpdate:
    """Tools bound to the model (``tools``, or the older ``functions``)."""
    params = event.params
    return LLMUpdate(tools=canonical_tool_definitions(params.get("tools")
                                                      or params.get("functions")))


def tool_choice(event: ModelStart) -> LLMUpdate:
    """The tool choice the call forced, if any."""
    choice = event.params.get("tool_choice")
    return LLMUpdate(tool_choice=choice if choice not in (None, "") else None)


def messages_sent(event: ModelStart) -> LLMUpdate | None:
    """The messages a chat model was sent, as providers' chat APIs spell them."""
    return LLMUpdate(messages=messages_of(event.messages)) if event.messages is not None \
        else None


def prompt_sent(event: ModelStart) -> LLMUpdate | None:
    """The prompt a completion model was sent."""
    return LLMUpdate(prompt_text=event.prompt) if event.prompt is not None else None


#: What is read off ``on_chat_model_start``.
CHAT_MODEL_START: tuple[Extractor[ModelStart], ...] = (
    provider, model_and_parameters, extra_parameters, tool_definitions, tool_choice,
    messages_sent,
)
#: What is read off ``on_llm_start`` (a completion model).
LLM_START: tuple[Extractor[ModelStart], ...] = (
    provider, model_and_parameters, extra_parameters, tool_definitions, tool_choice,
    prompt_sent,
)


@dataclass(slots=True)
class NewToken:
    """``on_llm_new_token``: the token and the chunk it came in."""

    token: Any
    chunk: Any


def token_content(event: NewToken) -> Mapping[str, Any] | None:
    """Whether the token carries content: text, or a piece of a tool call."""
    message = getattr(event.chunk, "message", None)
    if event.token or getattr(message, "tool_call_chunks", None):
        return {"content": True}
    return None


#: What is read off ``on_llm_new_token`` (the first one with content is the TTFT).
LLM_NEW_TOKEN: tuple[Extractor[NewToken], ...] = (token_content,)


@dataclass(slots=True)
class ModelEnd:
    """``on_llm_end``: the response, its first generation and what it reported."""

    response: LLMResult
    now: datetime
    generation: Generation | None
    info: Mapping[str, Any]  # generation_info, then the message's response_metadata
    llm_output: Mapping[str, Any]


def model_end(response: LLMResult, now: datetime) -> ModelEnd:
    """The event of ``on_llm_end``, with the first generation found once."""
    generation = first_generation(response)
    return ModelEnd(response, now, generation, response_info(generation),
                    response.llm_output or {})


def usage(event: ModelEnd) -> LLMUpdate | None:
    """Token usage (the message's, else the provider's own mapping), and what the
    provider specifics keep of it (Anthropic's cache writes by TTL)."""
    found = token_usage(event.generation, event.info, event.llm_output)
    if found is None:
        return None
    fields, specific = found
    return LLMUpdate(token_usage=fields, provider_specific=specific or None)


def response_metadata(event: ModelEnd) -> LLMUpdate:
    """Finish reason, exact model, request id and system fingerprint."""
    found = response_metadata_fields(event.info, event.llm_output)
    return LLMUpdate(response_metadata=found or None)


def answer_text(event: ModelEnd) -> LLMUpdate:
    """The text produced (every candidate's, joined)."""
    return LLMUpdate(output_text=output_text(event.response))


def rate_limits(event: ModelEnd) -> LLMUpdate | None:
    """Rate limits from the response headers, when the model exposes them."""
    headers = event.info.get("headers")
    return LLMUpdate(rate_limit_info=rate_limit_info(headers, event.now)) \
        if isinstance(headers, Mapping) else None


def model_provider(event: ModelEnd) -> LLMUpdate | None:
    """The provider the response names (``response_metadata["model_provider"]``)."""
    name = event.info.get("model_provider")
    return LLMUpdate(provider_specific={"model_provider": name}) \
        if isinstance(name, str) and name else None


def tool_calls(event: ModelEnd) -> LLMUpdate:
    """The tool calls of the answer (``AIMessage.tool_calls``)."""
    return LLMUpdate(tool_calls=response_tool_calls(event.generation))


#: What is read off ``on_llm_end``.
LLM_END: tuple[Extractor[ModelEnd], ...] = (
    usage, response_metadata, answer_text, rate_limits, model_provider, tool_calls,
)


@dataclass(slots=True)
class ModelError:
    """``on_llm_error``: the partial response LangChain passes along, if any."""

    response: Any


def partial_output(event: ModelError) -> LLMUpdate | None:
    """The text produced before the error (a stream cut short)."""
    response = event.response
    return LLMUpdate(output_text=output_text(response)) if isinstance(response, LLMResult) \
        else None


#: What is read off ``on_llm_error``.
LLM_ERROR: tuple[Extractor[ModelError], ...] = (partial_output,)


# -- chains, retrievers, tools, agents -------------------------------------------------


@dataclass(slots=True)
class Documents:
    """What a step received (``on_chain_start``) or returned (``on_chain_end``,
    ``on_retriever_end``, ``on_tool_end``)."""

    value: Any


@dataclass(slots=True)
class ChainStart:
    """``on_chain_start`` of a prompt step."""

    serialized: Mapping[str, Any] | None
    inputs: Any
    name: Any  # the ``name`` LangChain passed
    metadata: Mapping[str, Any] | None
    max_items: int  # the Recorder's list bound


def prompt_template(event: ChainStart) -> Mapping[str, Any]:
    """The template text (a chat prompt's one line per message, placeholders as
    ``{{name}}``)."""
    return {"template": template_text(event.serialized)}


def prompt_variables(event: ChainStart) -> Mapping[str, Any]:
    """The values the template was rendered with."""
    inputs = event.inputs
    variables = inputs if isinstance(inputs, Mapping) else {"input": inputs}
    return {"variables": plain(variables, event.max_items)}


def prompt_name(event: ChainStart) -> Mapping[str, Any]:
    """The prompt's own name, else its LangChain Hub repo."""
    return {"template_name": template_name(event.serialized, event.name, event.metadata)}


def input_documents(event: Documents) -> Mapping[str, Any]:
    """Documents the step received (a list, or the first list in a dict): a reranker's
    candidates."""
    return {"documents": docs_in(event.value)}


#: What is read off ``on_chain_start`` of a chain, parser or reranker (a streaming
#: step reports its inputs only at its end: they are read then, by this same tuple).
CHAIN_START: tuple[Extractor[Documents], ...] = (input_documents,)
#: What is read off ``on_chain_start`` of a prompt step (``run_type="prompt"``).
PROMPT_START: tuple[Extractor[ChainStart], ...] = (prompt_template, prompt_variables, prompt_name)


def output_documents(event: Documents) -> Mapping[str, Any]:
    """The documents a step returned (a list of them only)."""
    return {"documents": doc_list(event.value)}


#: What is read off ``on_chain_end`` of a chain or reranker (to recognise reranking): the
#: documents it returned. (Inputs a streaming step reports only at its end are read
#: then by :data:`CHAIN_START`.)
CHAIN_END: tuple[Extractor[Documents], ...] = (output_documents,)


def retrieved_documents(event: Documents) -> Mapping[str, Any]:
    """The retriever's documents, in rank order, with their content hashes."""
    return {"documents": doc_list(list(event.value))}


def tool_documents(event: Documents) -> Mapping[str, Any]:
    """Documents a tool returned, or carried as its tool message's artifact."""
    return {"documents": tool_docs(event.value)}


#: What is read off ``on_retriever_end``.
RETRIEVER_END: tuple[Extractor[Documents], ...] = (retrieved_documents,)
#: What is read off ``on_tool_end``.
TOOL_END: tuple[Extractor[Documents], ...] = (tool_documents,)


@dataclass(slots=True)
class AgentEvent:
    """``on_agent_action`` / ``on_agent_finish``: LangChain's action or finish object."""

    value: Any


def action_tool(event: AgentEvent) -> Mapping[str, Any]:
    """The tool the agent chose, and its input."""
    return {"tool": getattr(event.value, "tool", None),
            "tool_input": plain(getattr(event.value, "tool_input", None))}


def agent_log(event: AgentEvent) -> Mapping[str, Any]:
    """The agent's log (its reasoning as text)."""
    return {"log": getattr(event.value, "log", None)}


def return_values(event: AgentEvent) -> Mapping[str, Any]:
    """The agent's final answer."""
    return {"return_values": plain(getattr(event.value, "return_values", None))}


#: What is read off ``on_agent_action`` (kept as its event's data).
AGENT_ACTION: tuple[Extractor[AgentEvent], ...] = (action_tool, agent_log)
#: What is read off ``on_agent_finish`` (kept as its event's data).
AGENT_FINISH: tuple[Extractor[AgentEvent], ...] = (return_values, agent_log)

