"""LLM call metadata from LlamaIndex LLM objects and their responses.

Token semantics follow ragtrail's schema: ``input_tokens`` includes cached input
(Anthropic reports cache reads and writes apart, so they are added in, by the core's
rule in :mod:`ragtrail.providers`, which also keeps the cache writes' TTL split) and
reasoning tokens are part of ``output_tokens``. A response that reports no usage leaves
``token_usage`` unset, never zeros: LlamaIndex's MockLLM is priced ``no_usage``.

The provider comes from the integration package the LLM class lives in. Classes that
serve any vendor's models (``OpenAILike``, ``LiteLLM``) and the user's own LLM classes
name none: the core then infers it from the model name (``provider_inferred``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragtrail.capture import guarded
from ragtrail.providers import (
    CACHE_TTL_KEYS,
    anthropic_usage,
    client_request_fields,
    field_of,
    openai_usage,
)

from ._extract import message_dicts, tool_calls_of, tool_definitions_of

__all__ = [
    "llm_request",
    "llm_response",
    "merge_usage_fields",
    "model_of",
    "provider_of",
    "response_metadata",
    "usage_fields",
]

#: ``llama_index.llms.<package>`` -> provider id ragtrail's pricing knows. Packages
#: that serve any vendor's models (openai_like, litellm) have no provider of their own:
#: the core infers one from the model name, and says so, only when genai-prices
#: knows the model.
_PROVIDERS: dict[str, str | None] = {
    "azure_openai": "azure",
    "azure_inference": "azure",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "gemini": "google",
    "google_genai": "google",
    "vertex": "google",
    "mistralai": "mistral",
    "xai": "x-ai",
    "openai_like": None,
    "litellm": None,
}
_UNKNOWN_MODELS = frozenset({"", "unknown"})
_MODEL_ATTRS = ("model", "model_name", "deployment_name", "engine")
_FLOAT_PARAMS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")
_MAX_TOKEN_NAMES = ("max_tokens", "max_output_tokens", "max_new_tokens", "max_completion_tokens",
                    "num_predict")
# Raw usage keys kept, by where they appear: name in the raw usage -> flat name.
_USAGE_KEYS = (
    "prompt_tokens", "completion_tokens", "total_tokens",  # OpenAI chat, LlamaIndex kwargs
    "input_tokens", "output_tokens",  # Anthropic, OpenAI Responses API
    "cache_read_input_tokens", "cache_creation_input_tokens",  # Anthropic
    "prompt_token_count", "candidates_token_count", "total_token_count",  # Gemini
    "cached_content_token_count", "thoughts_token_count",  # Gemini
    "prompt_eval_count", "eval_count",  # Ollama
)
_DETAIL_KEYS = (
    ("prompt_tokens_details", "cached_tokens", "cached_tokens"),
    ("input_tokens_details", "cached_tokens", "cached_tokens"),
    ("prompt_tokens_details", "cache_write_tokens", "cache_write_tokens"),  # OpenAI
    ("input_tokens_details", "cache_write_tokens", "cache_write_tokens"),
    ("completion_tokens_details", "reasoning_tokens", "reasoning_tokens"),
    ("output_tokens_details", "reasoning_tokens", "reasoning_tokens"),
    ("output_tokens_details", "thinking_tokens", "thinking_tokens"),  # Anthropic
    *(("cache_creation", key, key) for key in CACHE_TTL_KEYS),  # Anthropic, by TTL
)


@guarded(default=None)
def _get(obj: Any, key: str) -> Any:
    # The one reader of provider objects: whatever reading them raises costs this
    # value only (counted and logged by the guard), never the rest of the record.
    return field_of(obj, key)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@guarded(default=None)
def provider_of(llm: Any) -> str | None:
    """Provider id from the integration package the LLM class lives in."""
    module = type(llm).__module__
    prefix = "llama_index.llms."
    if not module.startswith(prefix):
        return None
    package = module[len(prefix):].split(".", 1)[0]
    return _PROVIDERS.get(package, package)


@guarded(default=None)
def model_of(llm: Any) -> str | None:
    """Model name from the LLM's metadata, else its model attributes."""
    try:
        name = llm.metadata.model_name
    except Exception:
        name = None
    if isinstance(name, str) and name.strip().lower() not in _UNKNOWN_MODELS:
        return name
    for attr in _MODEL_ATTRS:
        value = getattr(llm, attr, None)
        if isinstance(value, str) and value.strip().lower() not in _UNKNOWN_MODELS:
            return value
    return None


@guarded(default={})
def _request_parameters(llm: Any, call_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    sources: list[Mapping[str, Any]] = []
    extra = getattr(llm, "additional_kwargs", None)
    if isinstance(extra, Mapping):
        sources.append(extra)
    sources.append({k: v for k, v in call_kwargs.items() if not k.startswith("_")})

    def pick(*names: str) -> Any:
        value = None
        for name in names:
            attr = getattr(llm, name, None)
            value = attr if attr is not None else value
        for source in sources:
            for name in names:
                if source.get(name) is not None:
                    value = source[name]
        return value

    params: dict[str, Any] = {name: _float(pick(name)) for name in _FLOAT_PARAMS}
    params["top_k"] = _int(pick("top_k"))
    params["max_tokens"] = _int(pick(*_MAX_TOKEN_NAMES))
    params["seed"] = _int(pick("seed", "random_seed"))
    stop = pick("stop", "stop_sequences")
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
        params["stop_sequences"] = list(stop)
    params["model"] = model_of(llm)
    return {k: v for k, v in params.items() if v is not None}


#: Arguments of LlamaIndex's LLM methods that are not passed on to the client.
_METHOD_ARGS = ("messages", "prompt", "formatted", "args")


@guarded(default={})
def _client_fields(llm: Any, call_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What the client sends beyond the canonical call (the core decides, from the
    client's module and its raw parameters: the LLM's defaults, then the call's own)."""
    extra = getattr(llm, "additional_kwargs", None)
    return client_request_fields(type(llm).__module__,
                                 extra if isinstance(extra, Mapping) else {}, call_kwargs)


@guarded(default={})
def llm_request(llm: Any, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """LLMMetadata fields known when the call starts: model, parameters, prompt."""
    call_kwargs = {k: v for k, v in arguments.items() if k not in _METHOD_ARGS}
    meta: dict[str, Any] = {
        "provider": provider_of(llm),
        "provider_model": model_of(llm),
        "request_parameters": _request_parameters(llm, call_kwargs) or None,
        "provider_specific": {"llm_class": type(llm).__name__,
                              **_client_fields(llm, call_kwargs)},
    }
    if "messages" in arguments:
        meta["messages"] = message_dicts(arguments["messages"])
    elif isinstance(arguments.get("prompt"), str):
        meta["prompt_text"] = arguments["prompt"]
    meta["tools"] = tool_definitions_of(arguments.get("tools"))
    choice = arguments.get("tool_choice")
    if choice is not None:
        meta["tool_choice"] = choice if isinstance(choice, (str, dict)) else str(choice)
    return {k: v for k, v in meta.items() if v is not None}


def _usage_holders(response: Any) -> list[Any]:
    raw = _get(response, "raw")
    message = _get(raw, "message")
    return [_get(raw, "usage"), _get(message, "usage"), _get(raw, "usage_metadata"), raw]


@guarded(default={})
def usage_fields(response: Any) -> dict[str, int]:
    """Raw token counts found in a response's ``raw`` (or, failing that, its kwargs)."""
    found: dict[str, int] = {}
    for holder in _usage_holders(response):
        if holder is None:
            continue
        for key in _USAGE_KEYS:
            value = _int(_get(holder, key))
            if value is not None:
                found.setdefault(key, value)
        for group, key, flat in _DETAIL_KEYS:
            value = _int(_get(_get(holder, group), key))
            if value is not None:
                found.setdefault(flat, value)
    if not any(found.values()):
        extra = _get(response, "additional_kwargs") or {}
        found = {k: v for k in _USAGE_KEYS if (v := _int(_get(extra, k))) is not None}
    return found if any(found.values()) else {}


def merge_usage_fields(into: dict[str, int], more: Mapping[str, int]) -> None:
    """Streams spread usage over chunks (Anthropic: input at start, output at end)."""
    into.update({k: v for k, v in more.items() if v is not None})


def _sum(*values: int | None) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


#: Counts only OpenAI's usage has: the Responses API's input/output tokens are told from
#: Anthropic's by these (Anthropic reports no total and cache counts of its own).
_OPENAI_ONLY = frozenset({"prompt_tokens", "completion_tokens", "cached_tokens",
                          "cache_write_tokens", "total_tokens"})


def _openai(f: Mapping[str, int]) -> dict[str, int | None] | None:
    """Chat Completions or the Responses API: cached and written tokens are a part of
    the input already, as ragtrail counts."""
    if not _OPENAI_ONLY & f.keys():
        return None
    found = openai_usage(f)
    return dict(found.token_usage) if found is not None else None


def _gemini(f: Mapping[str, int]) -> dict[str, int | None] | None:
    if f.get("prompt_token_count") is None and f.get("candidates_token_count") is None:
        return None
    thoughts = f.get("thoughts_token_count")  # billed as output, reported apart
    return {"input_tokens": f.get("prompt_token_count"),
            "output_tokens": _sum(f.get("candidates_token_count"), thoughts),
            "total_tokens": f.get("total_token_count"),
            "cache_read_tokens": f.get("cached_content_token_count"),
            "reasoning_tokens": thoughts}


def _ollama(f: Mapping[str, int]) -> dict[str, int | None] | None:
    if f.get("prompt_eval_count") is None and f.get("eval_count") is None:
        return None
    return {"input_tokens": f.get("prompt_eval_count"), "output_tokens": f.get("eval_count")}


def token_usage(fields: Mapping[str, int]) -> tuple[dict[str, int], dict[str, Any] | None] | None:
    """Flat raw counts -> ragtrail ``LLMTokenUsage`` fields and what the provider
    specifics keep of them (Anthropic's cache writes by TTL), or None when none."""
    if not fields or not any(fields.values()):
        return None
    specific = None
    for shape in (_gemini, _ollama, _openai):
        usage = shape(fields)
        if usage is not None:
            break
    else:
        # Anthropic: input_tokens excludes cache reads and writes; ours includes them.
        found = anthropic_usage(fields)
        if found is None:
            return None
        usage, specific = dict(found.token_usage), found.provider_specific()
    inp, out = usage.get("input_tokens"), usage.get("output_tokens")
    if usage.get("total_tokens") is None and inp is not None and out is not None:
        usage["total_tokens"] = inp + out
    kept = {k: v for k, v in usage.items() if v is not None}
    return (kept, specific) if kept else None


def _first(items: Any) -> Any:
    if isinstance(items, (list, tuple)) and items:
        return items[0]
    return None


@guarded(default={})
def _response_metadata(raw: Any) -> dict[str, Any]:
    finish = (_get(_first(_get(raw, "choices")), "finish_reason") or _get(raw, "stop_reason")
              or _get(_get(raw, "delta"), "stop_reason")
              or _get(_first(_get(raw, "candidates")), "finish_reason") or _get(raw, "done_reason"))
    response_id = _get(raw, "id") or _get(raw, "response_id")
    # The SDKs keep the x-request-id header on the response object; without it the
    # provider's response id is what a user can look up in the provider's logs.
    request_id = getattr(raw, "_request_id", None) or _get(raw, "request_id") or response_id
    meta = {
        "finish_reason": getattr(finish, "name", finish) if finish is not None else None,
        "model_version": _get(raw, "model") or _get(raw, "model_version"),
        "request_id": request_id,
        "system_fingerprint": _get(raw, "system_fingerprint"),
    }
    return {k: str(v) for k, v in meta.items() if v is not None}


@guarded(default=None)
def output_text(response: Any) -> str | None:
    """Text the model produced (a chat message's content or a completion's text)."""
    message = _get(response, "message")
    if message is not None:
        content = _get(message, "content")
        return content if isinstance(content, str) else None
    text = _get(response, "text")
    return text if isinstance(text, str) else None


@guarded(default={})
def response_metadata(response: Any) -> dict[str, str]:
    """Finish reason, model version, request id and fingerprint of one response or chunk."""
    raw = _get(response, "raw")
    return _response_metadata(raw) if raw is not None else {}


@guarded(default={})
def llm_response(
    response: Any,
    stream_usage: Mapping[str, int] | None = None,
    stream_meta: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """LLMMetadata fields from a ``ChatResponse`` / ``CompletionResponse``.

    For a stream, ``response`` is the last chunk; ``stream_usage`` and ``stream_meta``
    hold what the chunks before it reported (the last one's values win).
    """
    if response is None:
        return {}
    fields = dict(stream_usage or {})
    merge_usage_fields(fields, usage_fields(response))
    raw = _get(response, "raw")
    usage, specific = token_usage(fields) or (None, None)
    meta: dict[str, Any] = {
        "output_text": output_text(response),
        "token_usage": usage,
        "response_metadata": {**(stream_meta or {}), **response_metadata(response)} or None,
    }
    specific = dict(specific or {})
    meta["tool_calls"] = tool_calls_of(_get(response, "message"))
    response_id = _get(raw, "id")
    if response_id is not None:
        specific["response_id"] = str(response_id)
    meta["provider_specific"] = specific or None
    return {k: v for k, v in meta.items() if v}
