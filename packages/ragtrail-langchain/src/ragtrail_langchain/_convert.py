"""Small guarded extractors turning LangChain objects into plain dicts, lists and strings.

The Recorder redacts and bounds whatever it is given; these functions only replace
LangChain types (messages, documents, prompt values, generations) by plain data so the
stored payloads are readable and stable across LangChain versions. They are registered
as the Recorder's converters (:func:`ragtrail.capture.register_converter`), so payloads
are handed over as they are and converted in the Recorder's one walk over them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from langchain_core.prompt_values import ChatPromptValue, PromptValue

from ragtrail.capture import guarded, register_converter
from ragtrail.conventions import tool_call_list

__all__ = ["document_dict", "message_dict", "messages_of", "plain", "run_name"]

_MAX_DEPTH = 8
_ROLES = {
    "human": "user",
    "humanmessagechunk": "user",
    "ai": "assistant",
    "aimessagechunk": "assistant",
    "system": "system",
    "systemmessagechunk": "system",
    "tool": "tool",
    "toolmessagechunk": "tool",
    "function": "function",
    "functionmessagechunk": "function",
}


@guarded(default=None)
def message_dict(message: BaseMessage) -> dict[str, Any] | None:
    """``{role, content, ...}`` for one message, as providers' chat APIs spell it."""
    kind = str(getattr(message, "type", "")).lower()
    role = getattr(message, "role", None) if kind.startswith("chat") else _ROLES.get(kind, kind)
    out: dict[str, Any] = {"role": role, "content": message.content}
    # Looked up among the message's fields: a missing attribute on a pydantic model
    # costs an exception inside its __getattr__.
    fields = type(message).model_fields
    if "name" in fields and message.name:
        out["name"] = message.name
    tool_calls = getattr(message, "tool_calls", None) if "tool_calls" in fields else None
    if tool_calls:  # in ragtrail's canonical shape {id, name, arguments}
        out["tool_calls"] = tool_call_list([dict(call) for call in tool_calls])
    tool_call_id = getattr(message, "tool_call_id", None) if "tool_call_id" in fields else None
    if tool_call_id:
        out["tool_call_id"] = tool_call_id
        if getattr(message, "status", None) == "error":  # a ToolMessage reporting a failure
            out["status"] = "error"
    return out


def messages_of(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Plain dicts for a list of messages (unconvertible ones are skipped)."""
    out = []
    for message in messages:
        converted = message_dict(message) if isinstance(message, BaseMessage) else None
        if converted is not None:
            out.append(converted)
    return out


@guarded(default=None)
def document_dict(document: Document) -> dict[str, Any] | None:
    """``{id, page_content, metadata}`` for one document."""
    out: dict[str, Any] = {"page_content": document.page_content,
                           "metadata": dict(document.metadata or {})}
    if document.id:
        out["id"] = document.id
    return out


@guarded(default=None)
def _prompt_value(value: PromptValue) -> dict[str, Any]:
    if isinstance(value, ChatPromptValue):
        return {"messages": messages_of(value.messages)}
    return {"text": value.to_string()}


def _generation(value: Generation) -> dict[str, Any]:
    out: dict[str, Any] = {"text": value.text}
    if isinstance(value, ChatGeneration):
        out["message"] = message_dict(value.message)
    if value.generation_info:
        out["generation_info"] = dict(value.generation_info)
    return out


def _llm_result(value: LLMResult) -> dict[str, Any]:
    return {"generations": [[_generation(g) for g in gens] for gens in value.generations]}


def plain(value: Any, max_items: int = 500, _depth: int = 0) -> Any:
    """``value`` with LangChain objects replaced by plain data; other values as they are.

    Lists and mappings are cut at ``max_items`` here already, so a huge input is never
    copied in full on the application's thread.
    """
    try:
        return _plain(value, max_items, _depth)
    except Exception:  # the Recorder bounds odd values itself
        return value


def _plain(value: Any, max_items: int, depth: int) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)) or depth > _MAX_DEPTH:
        return value
    if isinstance(value, Document):
        return document_dict(value)
    if isinstance(value, BaseMessage):
        return message_dict(value)
    if isinstance(value, PromptValue):
        return _prompt_value(value)
    if isinstance(value, Generation):
        return _generation(value)
    if isinstance(value, LLMResult):
        return _llm_result(value)
    if isinstance(value, Mapping):
        items = list(value.items())[:max_items]
        return {str(k): _plain(v, max_items, depth + 1) for k, v in items}
    if isinstance(value, (list, tuple)):
        return [_plain(v, max_items, depth + 1) for v in value[:max_items]]
    return value


@guarded(default=None)
def run_name(serialized: Mapping[str, Any] | None, name: Any, default: str) -> str:
    """The run name LangChain's tracer would show: given name, serialized name, class."""
    if name:
        return str(name)
    if serialized:
        if serialized.get("name"):
            return str(serialized["name"])
        ids = serialized.get("id")
        if ids:
            return str(ids[-1])
    return default


for _cls, _converter in ((Document, document_dict), (BaseMessage, message_dict),
                         (PromptValue, _prompt_value), (Generation, _generation),
                         (LLMResult, _llm_result)):
    register_converter(_cls, _converter)
