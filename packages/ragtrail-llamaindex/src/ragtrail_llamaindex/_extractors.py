"""What is read off each LlamaIndex span and event: one declared tuple of named
extractors per event kind (a span's kind is its role's).

Each tuple is the answer to "what do we read off an LLM call's start?". The engine runs
a tuple with :func:`ragtrail.capture.extract`, which guards every extractor: one that
raises loses its own fields (counted under its name in ``Trail.stats()``'s errors and
logged, rate-limited), never the run or the other fields. An extractor takes the event
(a small frozen dataclass of what the dispatcher reported) and returns a mapping of the
fields it found, or None. Extractors of span kinds read what their span's role has
(a retriever's nodes, a postprocessor's candidates, ...) and nothing for other roles.

==============================  ========================================================
event kind                      tuple
==============================  ========================================================
span enter (most roles)         :data:`SPAN_ENTER` (inputs, metadata)
span enter of a postprocessor   :data:`POSTPROCESSOR_ENTER` (and its candidates)
span enter of ``predict``, ...  :data:`LLM_WRAPPER_ENTER` (and its prompt template)
span enter of a query/chat      :data:`ENGINE_ENTER` (and its postprocessors)
span enter of an LLM call       :data:`SPAN_ENTER`, then :data:`LLM_START` (LLMUpdate)
span exit (most roles)          :data:`SPAN_EXIT` (outputs)
span exit of a retriever        :data:`RETRIEVER_EXIT` (documents, nodes, outputs)
span exit of a reranker         :data:`RERANKER_EXIT` (nodes, outputs)
span exit of a tool             :data:`TOOL_EXIT` (documents it returned, outputs)
LLM answer (span exit, end      :data:`LLM_END` (LLMUpdate fields)
event, classic callback end)
LLM stream chunk (progress)     :data:`LLM_PROGRESS` (content, usage and metadata so far)
rerank start event              :data:`RERANK_START` (model, top_n, query, candidates)
rerank end event                :data:`RERANK_END` (the reranked nodes)
agent tool call event           :data:`TOOL_CALL` (the event's data)
classic LLM callback start      :data:`CALLBACK_LLM_START` (LLMUpdate fields)
==============================  ========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from llama_index.core.callbacks.schema import EventPayload

from ragtrail.capture import Extractor, LLMUpdate, extract
from ragtrail.capture.llm_update import compact
from ragtrail.providers import field_of, merge_counts

from ._extract import (
    NodeRef,
    document_inputs,
    message_dicts,
    node_refs,
    query_text,
    tool_calls_of,
    tool_definitions_of,
    tool_output_nodes,
)
from ._families import inputs_of, outputs_of, start_metadata, template_of
from ._infer import pipeline_of
from ._llm import (
    client_fields,
    model_of,
    output_text,
    provider_of,
    raw_of,
    request_parameters,
    response_metadata,
    token_usage,
    usage_fields,
)
from ._roles import Family

__all__ = [
    "CALLBACK_LLM_START",
    "ENGINE_ENTER",
    "LLM_END",
    "LLM_PROGRESS",
    "LLM_START",
    "LLM_WRAPPER_ENTER",
    "POSTPROCESSOR_ENTER",
    "RERANKER_EXIT",
    "RERANK_END",
    "RERANK_START",
    "RETRIEVER_EXIT",
    "SPAN_ENTER",
    "SPAN_EXIT",
    "TOOL_CALL",
    "TOOL_EXIT",
    "CallbackLLMStart",
    "Event",
    "LLMEnd",
    "LLMStart",
    "Progress",
    "RerankStart",
    "SpanEnter",
    "SpanExit",
    "enter_extractors",
    "exit_extractors",
    "llm_answer",
    "llm_end",
    "llm_start",
]



# -- spans -------------------------------------------------------------------------

_RANKED = (Family.RETRIEVER, Family.POSTPROCESSOR, Family.RERANK_EVENT)


@dataclass(slots=True)
class SpanEnter:
    """A span that becomes a run: its role's family, the component, the call's arguments."""

    family: Family
    instance: Any
    arguments: Mapping[str, Any]
    refs: list[NodeRef] | None = None  # the refs of the nodes given, once taken

    def node_refs(self) -> list[NodeRef]:
        """Refs of the nodes the call was given, taken once for every extractor."""
        if self.refs is None:
            self.refs = node_refs(self.arguments.get("nodes"))
        return self.refs


def span_inputs(event: SpanEnter) -> Mapping[str, Any]:
    """The run's inputs (the query, the messages, the nodes, ... by role)."""
    refs = event.node_refs() if event.family is Family.POSTPROCESSOR else None
    return {"inputs": inputs_of(event.family, event.arguments, refs)}


def component_metadata(event: SpanEnter) -> Mapping[str, Any]:
    """The component's class, model, tool name, reranker settings, ... by role."""
    return {"metadata": start_metadata(event.family, event.instance)}


def candidate_nodes(event: SpanEnter) -> Mapping[str, Any]:
    """A postprocessor's nodes as given (snapshot now: rerankers overwrite their scores)."""
    return {"candidates": event.node_refs()}


def prompt_template(event: SpanEnter) -> Mapping[str, Any]:
    """A ``predict``-style call's template, variables and template hash (given to the
    LLM call it makes)."""
    return {"template": template_of(event.instance, event.arguments)}


def query_pipeline(event: SpanEnter) -> Mapping[str, Any]:
    """A query or chat engine's postprocessors (to infer reranking they do silently)."""
    return {"pipeline": pipeline_of(event.instance)}


#: What is read off a span that enters and becomes a run (roles below: their own tuple).
SPAN_ENTER: tuple[Extractor[SpanEnter], ...] = (span_inputs, component_metadata)
#: ... of a postprocessor (a reranker or a filter).
POSTPROCESSOR_ENTER: tuple[Extractor[SpanEnter], ...] = (
    candidate_nodes, span_inputs, component_metadata)
#: ... of a ``predict``-style call (it formats a prompt, then calls the model).
LLM_WRAPPER_ENTER: tuple[Extractor[SpanEnter], ...] = (
    prompt_template, span_inputs, component_metadata)
#: ... of a query or chat engine.
ENGINE_ENTER: tuple[Extractor[SpanEnter], ...] = (
    query_pipeline, span_inputs, component_metadata)


def enter_extractors(family: Family) -> tuple[Extractor[SpanEnter], ...]:
    """The tuple read off the entering span of a run of ``family``."""
    if family is Family.POSTPROCESSOR:
        return POSTPROCESSOR_ENTER
    if family is Family.LLM_WRAPPER:
        return LLM_WRAPPER_ENTER
    if family is Family.QUERY or family is Family.CHAT:
        return ENGINE_ENTER
    return SPAN_ENTER


@dataclass(slots=True)
class SpanExit:
    """A run's span returned (roles other than LLM calls): its family and the result."""

    family: Family
    result: Any
    refs: list[NodeRef] | None = None  # the refs of the nodes returned, once taken

    def node_refs(self) -> list[NodeRef]:
        """Refs of the nodes the call returned, taken once for every extractor."""
        if self.refs is None:
            self.refs = node_refs(self.result)
        return self.refs


def span_outputs(event: SpanExit) -> Mapping[str, Any]:
    """The run's outputs (the response, the nodes, the embedding's shape, ... by role)."""
    refs = event.node_refs() if event.family in _RANKED else None
    return {"outputs": outputs_of(event.family, event.result, refs)}


def retrieved_documents(event: SpanExit) -> Mapping[str, Any]:
    """A retriever's nodes as documents, in rank order."""
    return {"documents": document_inputs(event.result)}


def result_nodes(event: SpanExit) -> Mapping[str, Any]:
    """The nodes a retriever or reranker returned: ids, text hashes, scores."""
    return {"nodes": event.node_refs()}


def tool_documents(event: SpanExit) -> Mapping[str, Any] | None:
    """Nodes a tool returned (or the response it returned carries): it retrieved them."""
    nodes = tool_output_nodes(event.result)
    return {"documents": document_inputs(nodes)} if nodes else None


#: What is read off a span that exits (roles below: their own tuple; an LLM call's
#: answer: :data:`LLM_END`).
SPAN_EXIT: tuple[Extractor[SpanExit], ...] = (span_outputs,)
#: ... of a retriever.
RETRIEVER_EXIT: tuple[Extractor[SpanExit], ...] = (retrieved_documents, result_nodes,
                                                   span_outputs)
#: ... of a postprocessor, or of a rerank the ReRank events opened.
RERANKER_EXIT: tuple[Extractor[SpanExit], ...] = (result_nodes, span_outputs)
#: ... of a tool.
TOOL_EXIT: tuple[Extractor[SpanExit], ...] = (tool_documents, span_outputs)


def exit_extractors(family: Family) -> tuple[Extractor[SpanExit], ...]:
    """The tuple read off the span of a run of ``family`` (not an LLM call) when it ends."""
    if family is Family.RETRIEVER:
        return RETRIEVER_EXIT
    if family is Family.POSTPROCESSOR or family is Family.RERANK_EVENT:
        return RERANKER_EXIT
    if family is Family.TOOL:
        return TOOL_EXIT
    return SPAN_EXIT


# -- LLM calls ---------------------------------------------------------------------

#: Arguments of LlamaIndex's LLM methods that are not passed on to the client.
_METHOD_ARGS = ("messages", "prompt", "formatted", "args")


@dataclass(slots=True)
class LLMStart:
    """An LLM call's span entered: the LLM and the call's arguments."""

    llm: Any
    arguments: Mapping[str, Any]
    call_kwargs: Mapping[str, Any]  # the arguments passed on to the client


def llm_start(llm: Any, arguments: Mapping[str, Any]) -> LLMStart:
    """The event of an LLM call's start."""
    return LLMStart(llm, arguments,
                    {k: v for k, v in arguments.items() if k not in _METHOD_ARGS})


def provider(event: LLMStart) -> LLMUpdate:
    """The provider of the integration package the LLM class lives in."""
    return LLMUpdate(provider=provider_of(event.llm))


def model(event: LLMStart) -> LLMUpdate:
    """The model, from the LLM's metadata, else its model attributes."""
    return LLMUpdate(provider_model=model_of(event.llm))


def parameters(event: LLMStart) -> LLMUpdate:
    """Request parameters: the call's own, the LLM's ``additional_kwargs``, its attributes."""
    return LLMUpdate(request_parameters=request_parameters(event.llm, event.call_kwargs)
                     or None)


def llm_class(event: LLMStart) -> LLMUpdate:
    """The LLM's class name (a provider specific)."""
    return LLMUpdate(provider_specific={"llm_class": type(event.llm).__name__})


def client_request(event: LLMStart) -> LLMUpdate | None:
    """What the client sends beyond the canonical call (provider specifics)."""
    found = client_fields(event.llm, event.call_kwargs)
    return LLMUpdate(provider_specific=found) if found else None


def messages_sent(event: LLMStart) -> LLMUpdate | None:
    """The chat messages sent."""
    if "messages" not in event.arguments:
        return None
    return LLMUpdate(messages=message_dicts(event.arguments["messages"]))


def prompt_sent(event: LLMStart) -> LLMUpdate | None:
    """The prompt of a completion call."""
    prompt = event.arguments.get("prompt")
    if "messages" in event.arguments or not isinstance(prompt, str):
        return None
    return LLMUpdate(prompt_text=prompt)


def tool_definitions(event: LLMStart) -> LLMUpdate:
    """Tools offered to the model, in the canonical shape."""
    return LLMUpdate(tools=tool_definitions_of(event.arguments.get("tools")))


def tool_choice(event: LLMStart) -> LLMUpdate | None:
    """The tool choice of the call, if given."""
    choice = event.arguments.get("tool_choice")
    if choice is None:
        return None
    return LLMUpdate(tool_choice=choice if isinstance(choice, (str, dict)) else str(choice))


#: What is read off an LLM call's span when it enters.
LLM_START: tuple[Extractor[LLMStart], ...] = (
    provider, model, parameters, llm_class, client_request, messages_sent, prompt_sent,
    tool_definitions, tool_choice,
)


@dataclass(slots=True)
class LLMEnd:
    """An LLM answer (for a stream, its last chunk) and what the chunks before reported."""

    response: Any
    raw: Any  # the provider's own response object
    stream_usage: Mapping[str, int] | None
    stream_meta: Mapping[str, str] | None


def llm_end(response: Any, stream_usage: Mapping[str, int] | None = None,
            stream_meta: Mapping[str, str] | None = None) -> LLMEnd:
    """The event of an LLM answer."""
    return LLMEnd(response, raw_of(response), stream_usage, stream_meta)


def answer_text(event: LLMEnd) -> LLMUpdate:
    """The text the model produced."""
    return LLMUpdate(output_text=output_text(event.response))


def usage(event: LLMEnd) -> LLMUpdate | None:
    """Token usage: the chunks' counts, then the answer's (the last one's win), and what
    the provider specifics keep of them (Anthropic's cache writes by TTL)."""
    fields = dict(event.stream_usage or {})
    merge_counts(fields, usage_fields(event.response))
    found = token_usage(fields)
    if found is None:
        return None
    counts, specific = found
    return LLMUpdate(token_usage=counts, provider_specific=specific)


def response_id(event: LLMEnd) -> LLMUpdate | None:
    """The provider's id of the response (a provider specific)."""
    found = field_of(event.raw, "id")
    return LLMUpdate(provider_specific={"response_id": str(found)}) if found is not None \
        else None


def finish_and_model(event: LLMEnd) -> LLMUpdate:
    """Finish reason, model version, request id and fingerprint (the chunks', then the
    answer's)."""
    return LLMUpdate(response_metadata={**(event.stream_meta or {}),
                                        **response_metadata(event.response)} or None)


def tool_calls(event: LLMEnd) -> LLMUpdate:
    """The tool calls the answer asks for."""
    return LLMUpdate(tool_calls=tool_calls_of(field_of(event.response, "message")))


#: What is read off an LLM answer (its span's exit, its end event, a classic callback end).
LLM_END: tuple[Extractor[LLMEnd], ...] = (
    answer_text, usage, finish_and_model, tool_calls, response_id,
)


def llm_answer(response: Any, stream_usage: Mapping[str, int] | None = None,
               stream_meta: Mapping[str, str] | None = None) -> LLMUpdate:
    """What :data:`LLM_END` reads off an LLM answer (for a stream, its last chunk;
    ``stream_usage`` and ``stream_meta``: what the chunks before it reported)."""
    if response is None:
        return LLMUpdate()
    found = extract(LLM_END, llm_end(response, stream_usage, stream_meta))
    return compact(cast(LLMUpdate, found), falsy=True)


@dataclass(slots=True)
class Progress:
    """A streamed chunk (``LLMChatInProgressEvent`` / ``LLMCompletionInProgressEvent``)."""

    response: Any


def chunk_content(event: Progress) -> Mapping[str, Any] | None:
    """Whether the chunk carries text (the first one that does is the TTFT)."""
    return {"content": True} if getattr(event.response, "delta", None) else None


def chunk_usage(event: Progress) -> Mapping[str, Any]:
    """Token counts the chunk reports (OpenAI's last chunk carries the usage)."""
    return {"usage": usage_fields(event.response)}


def chunk_metadata(event: Progress) -> Mapping[str, Any]:
    """Finish reason, model version, ... the chunk reports."""
    return {"metadata": response_metadata(event.response)}


#: What is read off a streamed chunk.
LLM_PROGRESS: tuple[Extractor[Progress], ...] = (chunk_content, chunk_usage, chunk_metadata)


# -- events ------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """A dispatcher event as it came."""

    event: Any


@dataclass(slots=True)
class RerankStart:
    """A ``ReRankStartEvent``; ``opens_run``: it becomes a run of its own (it happened
    outside a postprocessor's run), so its query and candidates are read too."""

    event: Any
    opens_run: bool


def rerank_model(event: RerankStart) -> Mapping[str, Any]:
    """The reranking model's name."""
    return {"model_name": getattr(event.event, "model_name", None)}


def rerank_top_n(event: RerankStart) -> Mapping[str, Any]:
    """How many nodes the reranker keeps."""
    return {"top_n": getattr(event.event, "top_n", None)}


def rerank_query(event: RerankStart) -> Mapping[str, Any] | None:
    """The query the nodes are reranked for."""
    if not event.opens_run:
        return None
    return {"query": query_text(getattr(event.event, "query", None))}


def rerank_candidates(event: RerankStart) -> Mapping[str, Any] | None:
    """The nodes given to the reranker, as they stood."""
    if not event.opens_run:
        return None
    return {"candidates": node_refs(event.event.nodes)}


#: What is read off a ``ReRankStartEvent``.
RERANK_START: tuple[Extractor[RerankStart], ...] = (
    rerank_model, rerank_top_n, rerank_query, rerank_candidates,
)


def reranked_nodes(event: Event) -> Mapping[str, Any]:
    """The nodes the reranker returned, in its order."""
    return {"nodes": list(event.event.nodes)}


#: What is read off a ``ReRankEndEvent``.
RERANK_END: tuple[Extractor[Event], ...] = (reranked_nodes,)


def called_tool(event: Event) -> Mapping[str, Any]:
    """The name of the tool an agent calls."""
    return {"tool": getattr(event.event.tool, "name", None)}


def tool_arguments(event: Event) -> Mapping[str, Any]:
    """The arguments it calls the tool with."""
    return {"arguments": event.event.arguments}


#: What is read off an ``AgentToolCallEvent`` (kept as a ``tool_call`` event of the run).
TOOL_CALL: tuple[Extractor[Event], ...] = (called_tool, tool_arguments)


# -- classic callbacks ---------------------------------------------------------------


@dataclass(slots=True)
class CallbackLLMStart:
    """A classic ``LLM`` callback start outside every span: its payload by key."""

    data: Mapping[str, Any]


def serialized_model(event: CallbackLLMStart) -> LLMUpdate | None:
    """The model named in the serialized LLM."""
    serialized = event.data.get(EventPayload.SERIALIZED.value) or {}
    found = serialized.get("model") or serialized.get("model_name")
    return LLMUpdate(provider_model=found) if isinstance(found, str) else None


def serialized_class(event: CallbackLLMStart) -> LLMUpdate | None:
    """The LLM's class name, as serialized (a provider specific)."""
    serialized = event.data.get(EventPayload.SERIALIZED.value) or {}
    name = serialized.get("class_name")
    return LLMUpdate(provider_specific={"llm_class": name}) if isinstance(name, str) else None


def payload_messages(event: CallbackLLMStart) -> LLMUpdate | None:
    """The messages sent."""
    messages = event.data.get(EventPayload.MESSAGES.value)
    return LLMUpdate(messages=message_dicts(messages)) if messages is not None else None


def payload_prompt(event: CallbackLLMStart) -> LLMUpdate | None:
    """The prompt of a completion call."""
    data = event.data
    prompt = data.get(EventPayload.PROMPT.value)
    if data.get(EventPayload.MESSAGES.value) is not None or not isinstance(prompt, str):
        return None
    return LLMUpdate(prompt_text=prompt)


#: What is read off a classic ``LLM`` callback start (its end: :data:`LLM_END`).
CALLBACK_LLM_START: tuple[Extractor[CallbackLLMStart], ...] = (
    serialized_model, serialized_class, payload_messages, payload_prompt,
)
