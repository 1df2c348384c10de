"""Tool definitions and tool calls as plain data, in one canonical shape.

Canonical tool definition (what a model was offered)::

    {"name": str, "description": str | None, "parameters": {JSON schema} | None,
     "strict": bool}  # "strict" only when the definition says (OpenAI)

accepted from the OpenAI spelling (``{"type": "function", "function": {...}}``), the
Anthropic one (``{"name", "description", "input_schema"}``), LlamaIndex's
``ToolMetadata`` as a dict (``{"name", "description", "fn_schema"}``) and the canonical
one itself. Canonical tool call (what a model asked for)::

    {"id": str | None, "name": str, "arguments": {...} | str}

accepted from LangChain (``{"name", "args", "id"}``), OpenAI (``{"id", "function":
{"name", "arguments": "<json>"}}``, arguments parsed when they are JSON), Anthropic
(``{"type": "tool_use", "id", "name", "input"}``) and LlamaIndex
(``{"tool_id", "tool_name", "tool_kwargs"}``).

:func:`tool_definition_hash` identifies a definition across calls (sha256 of its
canonical JSON), so a store keeps each distinct definition once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..schemas.llm import tool_definition_hash

__all__ = ["tool_call_list", "tool_definition", "tool_definition_hash", "tool_definitions"]


def tool_definition(raw: Any) -> dict[str, Any] | None:
    """One tool definition in the canonical shape, or None when ``raw`` is not one."""
    if not isinstance(raw, Mapping):
        return None
    body: Mapping[str, Any] = raw
    if isinstance(raw.get("function"), Mapping):  # OpenAI chat completions
        body = raw["function"]
    name = body.get("name")
    if not isinstance(name, str) or not name:
        return None
    params = next((body[k] for k in ("parameters", "input_schema", "fn_schema", "args_schema")
                   if isinstance(body.get(k), Mapping)), None)
    description = body.get("description")
    found: dict[str, Any] = {
        "name": name, "description": description if isinstance(description, str) else None,
        "parameters": dict(params) if params is not None else None}
    if isinstance(body.get("strict"), bool):
        found["strict"] = body["strict"]
    return found


def tool_definitions(raw: Any) -> list[dict[str, Any]] | None:
    """The canonical definitions among ``raw`` (a list of tool definitions in any of the
    accepted spellings), in order; None when there is none."""
    if isinstance(raw, Mapping) or not isinstance(raw, Sequence) or isinstance(raw, str):
        return None
    found = [d for d in (tool_definition(item) for item in raw) if d is not None]
    return found or None


def _arguments(value: Any) -> Any:
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, Mapping) else value
    return dict(value) if isinstance(value, Mapping) else value


def tool_call(raw: Any) -> dict[str, Any] | None:
    """One tool call in the canonical shape, or None when ``raw`` is not one."""
    if not isinstance(raw, Mapping):
        return None
    if isinstance(raw.get("function"), Mapping):  # OpenAI
        fn = raw["function"]
        name, args, call_id = fn.get("name"), fn.get("arguments"), raw.get("id")
    elif "tool_name" in raw:  # LlamaIndex ToolSelection
        name, args, call_id = raw.get("tool_name"), raw.get("tool_kwargs"), raw.get("tool_id")
    else:  # LangChain {"name", "args", "id"}, Anthropic tool_use {"name", "input", "id"}
        name = raw.get("name")
        args = raw.get("args", raw.get("input", raw.get("arguments")))
        call_id = raw.get("id")
    if not isinstance(name, str) or not name:
        return None
    return {"id": str(call_id) if call_id is not None else None, "name": name,
            "arguments": _arguments(args) if args is not None else {}}


def tool_call_list(raw: Any) -> list[dict[str, Any]] | None:
    """The canonical tool calls among ``raw``: a list of calls, or a message (a dict
    with ``tool_calls``, or Anthropic content blocks of type ``tool_use``)."""
    if isinstance(raw, Mapping):
        if isinstance(raw.get("tool_calls"), Sequence):
            raw = raw["tool_calls"]
        elif isinstance(raw.get("content"), list):
            raw = [p for p in raw["content"]
                   if isinstance(p, Mapping) and p.get("type") == "tool_use"]
        else:
            return None
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return None
    found = [c for c in (tool_call(item) for item in raw) if c is not None]
    return found or None
