"""Framework-free conventions for chat messages, tool definitions and tool calls.

Both adapters (LangChain, LlamaIndex), the Recorder and the query layer use these pure
functions on *plain data* (dicts, lists, strings), so the rules live in one place:

- :mod:`.messages`: roles and text of chat messages, and the question and answer of a
  message-based run (:func:`question_from_messages`, :func:`answer_from_messages`);
- :mod:`.tools`: tool definitions offered to a model, the tool calls it made and the
  ``tool_choice``, each in one canonical shape whatever the provider's spelling, and the
  hash that identifies a tool definition across calls.

An adapter turns its framework's objects into plain dicts first (LangChain messages
become ``{"role", "content", "tool_calls"?, "tool_call_id"?}``, its converters already do
this) and hands them to these functions. Nothing here raises on odd input: a value that
is not understood gives ``None`` or is skipped.
"""

from __future__ import annotations

from .messages import (
    ASSISTANT,
    SYSTEM,
    TOOL,
    USER,
    answer_from_messages,
    message_role,
    message_text,
    messages_in,
    question_from_messages,
)
from .tools import (
    tool_call_list,
    tool_definition_hash,
    tool_definitions,
)

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
    "tool_call_list",
    "tool_definition_hash",
    "tool_definitions",
]
