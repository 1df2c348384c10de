"""LLM call metadata from LangChain callbacks, one small guarded extractor per field group.

Where each value comes from, first found wins:

- provider: ``ls_provider`` in run metadata, else ``response_metadata["model_provider"]``,
  else the serialized class name (``ChatOpenAI`` -> ``openai``);
- model: ``ls_model_name``, then the invocation params' ``model``/``model_name``;
- request parameters: invocation params, then ``ls_temperature``/``ls_max_tokens``/``ls_stop``,
  then the model's constructor arguments in ``serialized["kwargs"]`` (``ChatAnthropic``
  sends its ``stop_sequences`` but reports them nowhere else);
- token usage: ``AIMessage.usage_metadata`` (with ``input_token_details`` and
  ``output_token_details``), then ``llm_output["token_usage"]`` / ``["usage"]``;
- response metadata: the message's ``response_metadata`` over ``generation_info``, then
  ``llm_output``; rate limits from their ``headers`` when the model exposes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from pydantic import BaseModel

from ragtrail.capture import guarded
from ragtrail.conventions import tool_call_list, tool_definitions
from ragtrail.schemas import (
    LLMRequestParameters,
    LLMResponseMetadata,
    LLMTokenUsage,
)

from ._convert import messages_of
from ._names import LS_MODEL_NAME, LS_PROVIDER
from ._ratelimit import rate_limit_info

__all__ = [
    "class_provider",
    "constructor_kwargs",
    "llm_end_metadata",
    "llm_start_metadata",
    "output_text",
]

# invocation param -> request parameter; the first key present wins per parameter.
_PARAM_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("model", "model_name", "model_id", "deployment_name"),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "top_k": ("top_k",),
    "max_tokens": ("max_tokens", "max_completion_tokens", "max_output_tokens", "num_predict",
                   "max_new_tokens"),
    "frequency_penalty": ("frequency_penalty",),
    "presence_penalty": ("presence_penalty",),
    "stop_sequences": ("stop", "stop_sequences"),
    "seed": ("seed", "random_seed"),
}
_LS_PARAMS = {"temperature": "ls_temperature", "max_tokens": "ls_max_tokens",
              "stop_sequences": "ls_stop"}
# Large or sensitive invocation params not worth keeping as provider specifics.
_SKIP_PARAMS = {"tools", "functions", "messages", "response_format", "responses",
                "api_key", "openai_api_key", "anthropic_api_key"}
_MAPPED_PARAMS = {key for keys in _PARAM_KEYS.values() for key in keys}
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "anthropic-request-id")
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})  # read-only: shared by every failure


def _valid_fields(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """Keep each value the schema accepts; one bad value costs that field only."""
    given = {key: value for key, value in values.items() if value is not None}
    try:
        model.model_validate(given)
        return given  # all valid: one validation instead of one per field
    except Exception:
        pass
    kept: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        try:
            model.model_validate({key: value})
        except Exception:  # a bad value loses its field only
            continue
        kept[key] = value
    return kept


@guarded(default=None)
def class_provider(serialized: Mapping[str, Any] | None) -> str | None:
    """A provider name guessed from the model class (``ChatOpenAI`` -> ``openai``).

    Used when the model reports no ``ls_provider``, and only if the response names no
    ``model_provider`` either.
    """
    ids = (serialized or {}).get("id") or ()
    name = str(ids[-1]) if ids else ""
    if name.startswith("Chat"):
        name = name[4:]
    elif name.endswith("Chat"):
        name = name[:-4]
    return name.lower() or None


@guarded(default=_NO_KWARGS)
def constructor_kwargs(serialized: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The model's constructor arguments as LangChain serialized them (secrets masked)."""
    kwargs = (serialized or {}).get("kwargs")
    return dict(kwargs) if isinstance(kwargs, Mapping) else {}


def _first_param(source: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return next((source[k] for k in keys if source.get(k) is not None), None)


@guarded(default=None)
def request_parameters(
    params: Mapping[str, Any],
    metadata: Mapping[str, Any],
    constructed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``LLMRequestParameters`` fields from invocation params, ``ls_*`` metadata and,
    last, the constructor arguments (a call's own values come first)."""
    values: dict[str, Any] = {}
    for field, keys in _PARAM_KEYS.items():
        value = _first_param(params, keys)
        if value is None and field in _LS_PARAMS:
            value = metadata.get(_LS_PARAMS[field])
        if value is None and constructed:
            value = _first_param(constructed, keys)
        if field == "stop_sequences" and isinstance(value, str):
            value = [value]
        values[field] = value
    if values.get("model") is None:
        values["model"] = metadata.get(LS_MODEL_NAME)
    return _valid_fields(LLMRequestParameters, values)


@guarded(default=None)
def _extra_params(params: Mapping[str, Any]) -> dict[str, Any] | None:
    extra = {k: v for k, v in params.items()
             if k not in _MAPPED_PARAMS and k not in _SKIP_PARAMS and v is not None}
    return extra or None


def llm_start_metadata(
    metadata: Mapping[str, Any],
    invocation_params: Mapping[str, Any] | None,
    *,
    messages: list[Any] | None = None,
    prompt: str | None = None,
    constructed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What is known when the call starts: provider, model, parameters, prompt."""
    params = dict(invocation_params or {})
    request = request_parameters(params, metadata, constructed) or {}
    out: dict[str, Any] = {
        "provider": metadata.get(LS_PROVIDER) or None,
        "provider_model": metadata.get(LS_MODEL_NAME) or request.get("model"),
        "request_parameters": request or None,
    }
    extra = _extra_params(params)
    if extra:
        out["provider_specific"] = {"invocation_params": extra}
    out["tools"] = tool_definitions(params.get("tools") or params.get("functions"))
    choice = params.get("tool_choice")
    out["tool_choice"] = choice if choice not in (None, "") else None
    if messages is not None:
        out["messages"] = messages_of(messages)
    if prompt is not None:
        out["prompt_text"] = prompt
    return {k: v for k, v in out.items() if v is not None}


# -- end of call -------------------------------------------------------------------


def _first_generation(response: LLMResult) -> Generation | None:
    for generations in response.generations or ():
        if generations:
            return generations[0]
    return None


# token usage field -> where LangChain's usage_metadata / OpenAI's usage keep it
_LC_USAGE = {
    "input_tokens": ("input_tokens",),
    "output_tokens": ("output_tokens",),
    "total_tokens": ("total_tokens",),
    "cache_read_tokens": ("input_token_details", "cache_read"),
    "cache_creation_tokens": ("input_token_details", "cache_creation"),
    "reasoning_tokens": ("output_token_details", "reasoning"),
}
_OPENAI_USAGE = {
    "input_tokens": ("prompt_tokens",),
    "output_tokens": ("completion_tokens",),
    "total_tokens": ("total_tokens",),
    "cache_read_tokens": ("prompt_tokens_details", "cached_tokens"),
    "reasoning_tokens": ("completion_tokens_details", "reasoning_tokens"),
}


def _pick(source: Mapping[str, Any], paths: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, path in paths.items():
        value: Any = source
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        out[field] = value
    return out


@guarded(default=None)
def _usage_from_message(generation: Generation | None) -> dict[str, Any] | None:
    message = generation.message if isinstance(generation, ChatGeneration) else None
    usage = getattr(message, "usage_metadata", None)
    return _pick(usage, _LC_USAGE) if usage else None


@guarded(default=None)
def _usage_from_mapping(usage: Mapping[str, Any]) -> dict[str, Any] | None:
    """OpenAI-style (prompt/completion) or Anthropic-style (input/output, cache apart)."""
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return _pick(usage, _OPENAI_USAGE)
    if "input_tokens" not in usage and "output_tokens" not in usage:
        return None
    read = usage.get("cache_read_input_tokens")
    created = usage.get("cache_creation_input_tokens")
    inputs = usage.get("input_tokens")
    if isinstance(inputs, int) and (read or created):
        # Anthropic counts cached input apart; ragtrail's input_tokens includes it.
        inputs += int(read or 0) + int(created or 0)
    outputs = usage.get("output_tokens")
    total = usage.get("total_tokens")
    if total is None and isinstance(inputs, int) and isinstance(outputs, int):
        total = inputs + outputs
    return {"input_tokens": inputs, "output_tokens": outputs, "total_tokens": total,
            "cache_read_tokens": read, "cache_creation_tokens": created}


def token_usage(
    generation: Generation | None, info: Mapping[str, Any], llm_output: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Usage from the message, else from ``llm_output`` or the response metadata."""
    usage = _usage_from_message(generation)
    for source in (llm_output, info):
        for key in ("token_usage", "usage"):
            if usage is None and isinstance(source.get(key), Mapping):
                usage = _usage_from_mapping(source[key])
    return _valid_fields(LLMTokenUsage, usage) or None if usage else None


@guarded(default={})
def _response_info(generation: Generation | None) -> dict[str, Any]:
    info: dict[str, Any] = dict(generation.generation_info or {}) if generation else {}
    if isinstance(generation, ChatGeneration):
        info.update(generation.message.response_metadata or {})
    return info


@guarded(default=None)
def response_metadata(info: Mapping[str, Any], llm_output: Mapping[str, Any]) -> dict[str, Any]:
    """Finish reason, exact model, request id and system fingerprint."""
    raw = info.get("headers")
    headers = {str(k).lower(): v for k, v in raw.items()} if isinstance(raw, Mapping) else {}
    request_id = next((headers[h] for h in _REQUEST_ID_HEADERS if headers.get(h)), None)
    values = {
        "finish_reason": info.get("finish_reason") or info.get("stop_reason")
        or info.get("done_reason"),
        "model_version": info.get("model_name") or info.get("model")
        or llm_output.get("model_name") or llm_output.get("model"),
        "request_id": request_id or info.get("request_id") or info.get("id")
        or llm_output.get("id"),
        "system_fingerprint": info.get("system_fingerprint")
        or llm_output.get("system_fingerprint"),
    }
    return _valid_fields(LLMResponseMetadata, {k: str(v) if v is not None else None
                                               for k, v in values.items()})


@guarded(default=None)
def output_text(response: LLMResult) -> str | None:
    """Text of the first generation (all candidates joined when there are several)."""
    texts = [g.text for gens in response.generations or () for g in gens if g.text]
    return "\n\n".join(texts) if texts else None


@guarded(default=None)
def _tool_calls(generation: Generation | None) -> list[dict[str, Any]] | None:
    """The tool calls of the answer: ``AIMessage.tool_calls`` (LangChain's parsed form,
    the same for every provider)."""
    message = generation.message if isinstance(generation, ChatGeneration) else None
    calls = getattr(message, "tool_calls", None)
    return tool_call_list([dict(call) for call in calls]) if calls else None


def llm_end_metadata(response: LLMResult, now: datetime) -> dict[str, Any]:
    """What is known when the call ends: usage, response metadata, limits, output."""
    generation = _first_generation(response)
    info = _response_info(generation)
    llm_output = response.llm_output or {}
    out: dict[str, Any] = {
        "token_usage": token_usage(generation, info, llm_output),
        "response_metadata": response_metadata(info, llm_output) or None,
        "output_text": output_text(response),
    }
    headers = info.get("headers")
    if isinstance(headers, Mapping):
        out["rate_limit_info"] = rate_limit_info(headers, now)
    provider = info.get("model_provider")
    if isinstance(provider, str) and provider:
        out["provider_specific"] = {"model_provider": provider}
    out["tool_calls"] = _tool_calls(generation)
    return {k: v for k, v in out.items() if v is not None}
