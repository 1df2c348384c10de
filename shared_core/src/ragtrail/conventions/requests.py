"""Provider requests rebuilt from a stored LLM call, for ``ragtrail replay``.

:func:`openai_chat_request` gives the body of an OpenAI chat completions request and
:func:`anthropic_messages_request` the body of an Anthropic messages request, each as
the provider's own client takes it (``client.chat.completions.create(**body)``,
``client.messages.create(**body)``): the messages as sent, tool calls and tool results
included, the tools offered, ``tool_choice`` and the generation parameters. Both read
only the canonical shapes ragtrail stores (:mod:`.messages`, :mod:`.tools`). The body
asks for no streaming (``stream`` is left out) whether or not the call streamed.

In the call's own provider format, :func:`provider_request` gives the body its client
sent: the unmodelled parameters it passed and its request style, as captured
(:mod:`ragtrail.providers`, ``REQUEST_EXTRA`` and ``REQUEST_STYLE``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..providers import REQUEST_EXTRA, REQUEST_STYLE, RequestStyle, request_style
from ..schemas import LLMMetadata
from .messages import ASSISTANT, SYSTEM, TOOL, USER, message_role, message_text
from .tools import tool_call_list, tool_definitions

__all__ = ["REQUEST_FORMATS", "anthropic_messages_request", "openai_chat_request",
           "provider_request"]

#: Anthropic requires max_tokens; used when the call did not say.
ANTHROPIC_DEFAULT_MAX_TOKENS = 1024


def _model(meta: LLMMetadata) -> str | None:
    params = meta.request_parameters
    return (params.model if params is not None and params.model else None) or meta.provider_model


def _params(meta: LLMMetadata, names: Mapping[str, str]) -> dict[str, Any]:
    params = meta.request_parameters
    if params is None:
        return {}
    values = params.model_dump()
    return {wire: values[field] for field, wire in names.items() if values.get(field) is not None}


def _openai_message(message: Mapping[str, Any]) -> dict[str, Any]:
    role = message_role(message) or USER
    out: dict[str, Any] = {"role": role, "content": message.get("content")}
    if message.get("name"):
        out["name"] = message["name"]
    calls = tool_call_list(message) if role == ASSISTANT else None
    if calls:
        out["tool_calls"] = [
            {"id": c["id"], "type": "function",
             "function": {"name": c["name"],
                          "arguments": c["arguments"] if isinstance(c["arguments"], str)
                          else json.dumps(c["arguments"])}} for c in calls]
        out["content"] = out["content"] or None  # OpenAI's null content beside tool calls
    if role == TOOL and message.get("tool_call_id"):
        out["tool_call_id"] = message["tool_call_id"]
    return out


def openai_chat_request(meta: LLMMetadata) -> dict[str, Any]:
    """The OpenAI chat completions body of a stored call."""
    body: dict[str, Any] = {"model": _model(meta),
                            "messages": [_openai_message(m) for m in meta.messages or ()
                                         if isinstance(m, Mapping)]}
    if meta.prompt_text is not None and not body["messages"]:
        body["messages"] = [{"role": USER, "content": meta.prompt_text}]
    body.update(_params(meta, {"temperature": "temperature", "top_p": "top_p",
                               # max_tokens is deprecated for chat completions
                               "max_tokens": "max_completion_tokens", "frequency_penalty":
                               "frequency_penalty", "presence_penalty": "presence_penalty",
                               "stop_sequences": "stop", "seed": "seed"}))
    tools = tool_definitions(meta.tools)
    if tools:
        body["tools"] = [{"type": "function", "function": {
            k: v for k, v in tool.items() if v is not None}} for tool in tools]
    if meta.tool_choice is not None:
        body["tool_choice"] = meta.tool_choice
    return body


def _text_blocks(content: Any) -> Any:
    """String content as text blocks (none for an empty string); other content as is."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content


def _anthropic_tool_result(message: Mapping[str, Any], style: RequestStyle) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
                             "content": message.get("content")}
    if style.text_blocks:
        block["content"] = _text_blocks(block["content"])
    if style.tool_result_is_error:
        block["is_error"] = message.get("status") == "error"
    return block


def _append_turn(messages: list[dict[str, Any]], turn: dict[str, Any],
                 style: RequestStyle) -> None:
    """Add a turn; a style that merges turns joins it to a previous turn of its role."""
    last = messages[-1] if messages else None
    if (style.merge_turns and last is not None and last["role"] == turn["role"]
            and isinstance(last["content"], list) and isinstance(turn["content"], list)):
        last["content"] = last["content"] + turn["content"]
    else:
        messages.append(turn)


def _anthropic_content(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    calls = tool_call_list(message.get("tool_calls")) if message_role(message) == ASSISTANT \
        else None
    blocks: list[dict[str, Any]] = []
    if isinstance(content, list):
        # Tool-use blocks are rebuilt from the canonical tool calls when there are some
        # (a stored block may carry SDK fields the API does not take).
        blocks = [{k: v for k, v in b.items() if v is not None} for b in content
                  if isinstance(b, Mapping) and not (calls and b.get("type") == "tool_use")]
    elif isinstance(content, str) and content:
        blocks = [{"type": "text", "text": content}]
    for call in calls or ():
        blocks.append({"type": "tool_use", "id": call["id"], "name": call["name"],
                       "input": call["arguments"]})
    return blocks


def anthropic_messages_request(meta: LLMMetadata,
                               style: RequestStyle | None = None) -> dict[str, Any]:
    """The Anthropic messages body of a stored call: system messages become ``system``,
    tool results become ``tool_result`` blocks of a user turn. ``style`` is how the
    client writes it (the reference form by default)."""
    style = style or RequestStyle()
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in meta.messages or ():
        if not isinstance(message, Mapping):
            continue
        role = message_role(message)
        if role == SYSTEM:
            system.append(message_text(message) or "")
            continue
        if role == TOOL:
            block = _anthropic_tool_result(message, style)
            if not style.merge_turns and messages and messages[-1]["role"] == USER \
                    and isinstance(messages[-1]["content"], list) and all(
                    b.get("type") == "tool_result" for b in messages[-1]["content"]):
                messages[-1]["content"].append(block)  # one user turn for parallel results
            else:
                _append_turn(messages, {"role": USER, "content": [block]}, style)
            continue
        wire_role = ASSISTANT if role == ASSISTANT else USER
        content: Any = message.get("content")
        if wire_role == ASSISTANT or isinstance(content, list) or style.text_blocks:
            content = _anthropic_content(message)
        _append_turn(messages, {"role": wire_role, "content": content}, style)
    if meta.prompt_text is not None and not messages:
        messages = [{"role": USER, "content": _text_blocks(meta.prompt_text)
                     if style.text_blocks else meta.prompt_text}]
    body: dict[str, Any] = {"model": _model(meta), "messages": messages}
    if system or style.system_always:
        body["system"] = style.system_separator.join(system)
    body.update(_params(meta, {"temperature": "temperature", "top_p": "top_p",
                               "top_k": "top_k", "max_tokens": "max_tokens",
                               "stop_sequences": "stop_sequences"}))
    body.setdefault("max_tokens", ANTHROPIC_DEFAULT_MAX_TOKENS)
    tools = tool_definitions(meta.tools)
    if tools:
        body["tools"] = [{"name": t["name"], **({"description": t["description"]}
                                                 if t["description"] else {}),
                          "input_schema": t["parameters"] or {"type": "object"}}
                         for t in tools]
    if meta.tool_choice is not None:
        body["tool_choice"] = meta.tool_choice
    return body


#: Request formats :func:`provider_request` can build, by name.
REQUEST_FORMATS = {"openai": openai_chat_request, "anthropic": anthropic_messages_request}


def provider_request(meta: LLMMetadata, fmt: str | None = None) -> dict[str, Any]:
    """The request body in ``fmt`` (a key of :data:`REQUEST_FORMATS`); by default the
    call's provider's own format. In its own format the body is what the call's client
    sent: its unmodelled parameters and its request style included. Raises ValueError
    for a format it cannot build."""
    own = (meta.provider or "").lower()
    name = (fmt or own).lower()
    if name not in REQUEST_FORMATS:
        raise ValueError(f"no request format {name or '(unknown provider)'!r}; "
                         f"use one of {', '.join(REQUEST_FORMATS)}")
    if name != own:
        return REQUEST_FORMATS[name](meta)
    specific = meta.provider_specific or {}
    if name == "anthropic":
        body = anthropic_messages_request(meta, request_style(specific.get(REQUEST_STYLE)))
    else:
        body = REQUEST_FORMATS[name](meta)
    extra = specific.get(REQUEST_EXTRA)
    if isinstance(extra, Mapping):
        for key, value in extra.items():
            body.setdefault(key, value)  # never over what the call's fields say
    return body
