"""Which LlamaIndex dispatcher events and return values the engine acts on, by type.

Events are told apart by their classes in ``llama_index.core.instrumentation.events``
(``isinstance``, so a subclass an integration derives is recognised too), never by
class-name strings; so are the streaming responses a query or a chat returns.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Generator
from typing import Any

from llama_index.core.base.response.schema import AsyncStreamingResponse, StreamingResponse
from llama_index.core.chat_engine.types import StreamingAgentChatResponse
from llama_index.core.instrumentation.events.agent import AgentToolCallEvent
from llama_index.core.instrumentation.events.exception import ExceptionEvent
from llama_index.core.instrumentation.events.llm import (
    LLMChatEndEvent,
    LLMChatInProgressEvent,
    LLMCompletionEndEvent,
    LLMCompletionInProgressEvent,
)
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent

__all__ = ["EVENT_KINDS", "RERANK_EVENTS", "EventKind", "event_kind", "is_streaming"]


class EventKind(enum.Enum):
    """What a dispatcher event means to the engine."""

    LLM_PROGRESS = "llm_progress"  # a streamed chunk
    LLM_END = "llm_end"  # the call's whole answer (a stream's last chunk)
    EXCEPTION = "exception"
    TOOL_CALL = "tool_call"  # an agent calls a tool
    RERANK_START = "rerank_start"
    RERANK_END = "rerank_end"


#: Event class -> its kind. Every other event is ignored.
EVENT_KINDS: dict[type, EventKind] = {
    LLMChatInProgressEvent: EventKind.LLM_PROGRESS,
    LLMCompletionInProgressEvent: EventKind.LLM_PROGRESS,
    LLMChatEndEvent: EventKind.LLM_END,
    LLMCompletionEndEvent: EventKind.LLM_END,
    ExceptionEvent: EventKind.EXCEPTION,
    AgentToolCallEvent: EventKind.TOOL_CALL,
    ReRankStartEvent: EventKind.RERANK_START,
    ReRankEndEvent: EventKind.RERANK_END,
}
#: The kinds of the events of a rerank (which may happen outside every recorded run).
RERANK_EVENTS = frozenset({EventKind.RERANK_START, EventKind.RERANK_END})
_STREAMING_RESPONSES = (StreamingResponse, AsyncStreamingResponse, StreamingAgentChatResponse)


#: Event class -> its kind, as first seen (an isinstance walk per event would cost more
#: than the rest of an ignored event's handling). Bounded: classes are few.
_SEEN: dict[type, EventKind | None] = {}
_MAX_SEEN = 1024


def event_kind(event: Any) -> EventKind | None:
    """The kind of a dispatcher event, or None for an event the engine ignores."""
    cls = type(event)
    try:
        return _SEEN[cls]
    except KeyError:
        pass
    kind = next((kind for base, kind in EVENT_KINDS.items() if issubclass(cls, base)), None)
    if len(_SEEN) < _MAX_SEEN:
        _SEEN[cls] = kind
    return kind


def is_streaming(result: Any) -> bool:
    """Whether a span returned a stream: a generator, or a query's or a chat's
    streaming response."""
    return isinstance(result, (Generator, AsyncGenerator, *_STREAMING_RESPONSES))
