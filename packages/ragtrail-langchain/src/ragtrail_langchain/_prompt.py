"""Prompt template text from the serialized form LangChain passes to ``on_chain_start``.

A ``PromptTemplate`` gives its template; a ``ChatPromptTemplate`` gives one line per
message template (``role: template``), with placeholders shown as ``{{name}}`` so the
text, and its hash, stay the same whatever history is inserted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["template_name", "template_text"]

_ROLES = {
    "SystemMessagePromptTemplate": "system",
    "HumanMessagePromptTemplate": "human",
    "AIMessagePromptTemplate": "ai",
    "SystemMessage": "system",
    "HumanMessage": "human",
    "AIMessage": "ai",
}


def _class_name(node: Mapping[str, Any]) -> str:
    ids = node.get("id") or ()
    return str(ids[-1]) if ids else ""


def _text_of(prompt: Any) -> str | None:
    """Template text of a serialized string prompt, or of a list of content parts."""
    if isinstance(prompt, Mapping):
        template = (prompt.get("kwargs") or {}).get("template")
        return template if isinstance(template, str) else None
    if isinstance(prompt, list):
        parts = [_text_of(part) for part in prompt]
        return "\n".join(p for p in parts if p) or None
    return None


def _message_line(node: Mapping[str, Any]) -> str | None:
    name = _class_name(node)
    kwargs = node.get("kwargs") or {}
    if name == "MessagesPlaceholder":
        return f"{{{{{kwargs.get('variable_name', '')}}}}}"
    role = kwargs.get("role") if name == "ChatMessagePromptTemplate" else _ROLES.get(name)
    text = _text_of(kwargs.get("prompt")) if "prompt" in kwargs else kwargs.get("content")
    if role is None or not isinstance(text, str):
        return None
    return f"{role}: {text}"


def template_text(serialized: Mapping[str, Any] | None) -> str | None:
    """Template text of a serialized prompt template, or None when it has none."""
    if not serialized:
        return None
    kwargs = serialized.get("kwargs") or {}
    if isinstance(kwargs.get("template"), str):
        return str(kwargs["template"])
    messages = kwargs.get("messages")
    if not isinstance(messages, list):
        return None
    lines = [_message_line(m) for m in messages if isinstance(m, Mapping)]
    return "\n".join(line for line in lines if line) or None


def template_name(serialized: Mapping[str, Any] | None, run_name: str | None,
                  metadata: Mapping[str, Any] | None) -> str | None:
    """The name a prompt was given: its own (``name=`` or ``run_name``, when it is not just
    its class's name), else its LangChain Hub repo (``owner/repo``, which ``hub.pull``
    puts in the prompt's metadata); None when it has neither."""
    if run_name and run_name != _class_name(serialized or {}) and run_name != "Unnamed":
        return run_name
    repo = (metadata or {}).get("lc_hub_repo")
    if isinstance(repo, str) and repo:
        owner = (metadata or {}).get("lc_hub_owner")
        return f"{owner}/{repo}" if isinstance(owner, str) and owner else repo
    return None
