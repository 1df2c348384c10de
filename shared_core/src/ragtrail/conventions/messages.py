"""Chat messages as plain data: their role, their text, and a run's question and answer.

A message is accepted in any of the plain shapes frameworks and applications use:

- ``{"role": "user", "content": ...}`` (OpenAI, Anthropic, LangChain's converted
  messages, LlamaIndex's ``ChatMessage`` as a dict);
- ``{"type": "human", "content": ...}`` (LangChain's own serialisation);
- ``["user", "text"]`` / ``("human", "text")`` (LangGraph's shorthand);
- ``{"role": ..., "blocks": [{"text": ...}]}`` (LlamaIndex content blocks).

Content may be a string or a list of parts (``{"type": "text", "text": ...}``); only the
text parts count as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ASSISTANT",
    "SYSTEM",
    "TOOL",
    "USER",
    "answer_from_messages",
    "message_role",
    "message_text",
    "messages_in",
    "question_from_messages",
]

#: Canonical roles (the OpenAI spelling).
USER = "user"
ASSISTANT = "assistant"
SYSTEM = "system"
TOOL = "tool"

_ROLE_ALIASES = {
    "user": USER, "human": USER, "humanmessage": USER, "humanmessagechunk": USER,
    "assistant": ASSISTANT, "ai": ASSISTANT, "aimessage": ASSISTANT,
    "aimessagechunk": ASSISTANT, "model": ASSISTANT, "chatbot": ASSISTANT,
    "system": SYSTEM, "developer": SYSTEM, "systemmessage": SYSTEM,
    "tool": TOOL, "toolmessage": TOOL, "function": TOOL, "tool_result": TOOL,
}
#: Keys of a run's input or output state that hold its message list, by preference.
MESSAGE_KEYS = ("messages", "chat_history", "memory")


def message_role(message: Any) -> str | None:
    """The canonical role of a plain message (``user``, ``assistant``, ``system``,
    ``tool``), the role as given when it is another one, or None when ``message`` is
    not a message."""
    role: Any = None
    if isinstance(message, Mapping):
        role = message.get("role") or message.get("type")
        if isinstance(role, Mapping):  # an enum serialised with its value
            role = role.get("value")
    elif _is_pair(message):
        role = message[0]
    if not isinstance(role, str) or not role:
        return None
    return _ROLE_ALIASES.get(role.lower(), role.lower())


def _is_pair(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and isinstance(value[0], str) and not isinstance(value[1], (Mapping, list)))


def message_text(message: Any) -> str | None:
    """The text of a plain message (or of a content value): a string, or its text parts
    joined by newlines. None when it has no text (a tool call alone, an image)."""
    if isinstance(message, str):
        return message
    if _is_pair(message):
        return message_text(message[1])
    if isinstance(message, Mapping):
        for key in ("content", "blocks", "text"):
            if key in message and message[key] is not None:
                return message_text(message[key])
        return None
    if isinstance(message, (list, tuple)):
        parts = []
        for part in message:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts) if parts else None
    return None


def _tool_calling(message: Any) -> bool:
    if not isinstance(message, Mapping):
        return False
    if message.get("tool_calls") or message.get("function_call"):
        return True
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(p, Mapping) and p.get("type") in ("tool_use", "tool_call") for p in content)


def messages_in(value: Any) -> list[Any] | None:
    """The message list of a run's input or output: the value itself when it is a list
    of messages, else the first list of messages under one of :data:`MESSAGE_KEYS` of a
    mapping (a LangGraph ``MessagesState``, an agent's ``{"messages": [...]}``)."""
    if isinstance(value, Mapping):
        for key in MESSAGE_KEYS:
            found = messages_in(value[key]) if isinstance(value.get(key), (list, tuple)) else None
            if found:
                return found
        return None
    if (isinstance(value, (list, tuple)) and value and not _is_pair(value)
            and all(message_role(item) is not None for item in value)):
        return list(value)
    return None


def question_from_messages(value: Any) -> str | None:
    """The question of a message-based run: the text of the last user message of its
    input (``value`` is the input: a message list or a state holding one)."""
    messages = messages_in(value)
    for message in reversed(messages or ()):
        if message_role(message) == USER:
            text = message_text(message)
            if text and text.strip():
                return text
    return None


def answer_from_messages(value: Any) -> str | None:
    """The answer of a message-based run: the text of the last assistant message of its
    output that is not a tool call (``value`` is the output: a message list, a state
    holding one, or a single assistant message).

    Only messages after the last user message count: a state restored from a
    checkpoint holds the earlier turns too, and their answers are not this run's.
    """
    messages = messages_in(value)
    if messages is None and message_role(value) == ASSISTANT:
        messages = [value]
    for message in reversed(messages or ()):
        role = message_role(message)
        if role == USER:
            return None
        if role != ASSISTANT or _tool_calling(message):
            continue
        text = message_text(message)
        if text and text.strip():
            return text
    return None
