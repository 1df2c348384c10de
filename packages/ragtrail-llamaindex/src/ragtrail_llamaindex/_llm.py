"""LLM call metadata from LlamaIndex LLM objects and their responses.

The adapter only finds the raw objects: the LLM's attributes and ``additional_kwargs``
and the call's keyword arguments (request parameters, read with the core's synonyms and
priority rule), and a response's ``raw`` provider object (usage and response metadata,
read by :mod:`ragtrail.providers` whatever the provider: cached input is counted in the
input, reasoning in the output, Anthropic's cache writes keep their TTL split). A
response that reports no usage leaves the token usage unset, never zeros: LlamaIndex's
MockLLM is priced ``no_usage``.

The provider comes from the integration package the LLM class lives in. Classes that
serve any vendor's models (``OpenAILike``, ``LiteLLM``) and the user's own LLM classes
name none: the core then infers it from the model name (``provider_inferred``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragtrail.capture import LLMUpdate, guarded
from ragtrail.capture.llm_update import compact
from ragtrail.providers import (
    PARAM_SYNONYMS,
    checked_parameters,
    client_request_fields,
    field_of,
    merge_counts,
    raw_response_fields,
    request_parameters,
    top_level_counts,
    usage_counts,
    usage_from_counts,
)

from ._extract import message_dicts, tool_calls_of, tool_definitions_of

__all__ = [
    "llm_request",
    "llm_response",
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
#: The LLM attributes read as request parameters (the model is :func:`model_of`'s).
_ATTR_PARAMS = tuple(name for field, names in PARAM_SYNONYMS.items() if field != "model"
                     for name in names)


@guarded(default=None)
def _get(obj: Any, key: str) -> Any:
    # The one reader of provider objects: whatever reading them raises costs this
    # value only (counted and logged by the guard), never the rest of the record.
    return field_of(obj, key)


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
    """The call's own keyword arguments, then the LLM's ``additional_kwargs``, then its
    attributes, read by the core's synonyms (:data:`ragtrail.providers.PARAM_SYNONYMS`)
    and its one priority rule; the model is the LLM's (:func:`model_of`)."""
    sources: list[Mapping[str, Any]] = [
        {k: v for k, v in call_kwargs.items() if not k.startswith("_")}]
    extra = getattr(llm, "additional_kwargs", None)
    if isinstance(extra, Mapping):
        sources.append(extra)
    sources.append({name: getattr(llm, name, None) for name in _ATTR_PARAMS})
    return checked_parameters({**request_parameters(*sources), "model": model_of(llm)})


#: Arguments of LlamaIndex's LLM methods that are not passed on to the client.
_METHOD_ARGS = ("messages", "prompt", "formatted", "args")


@guarded(default={})
def _client_fields(llm: Any, call_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What the client sends beyond the canonical call (the core decides, from the
    client's module and its raw parameters: the LLM's defaults, then the call's own)."""
    extra = getattr(llm, "additional_kwargs", None)
    return client_request_fields(type(llm).__module__,
                                 extra if isinstance(extra, Mapping) else {}, call_kwargs)


@guarded(default=LLMUpdate())
def llm_request(llm: Any, arguments: Mapping[str, Any]) -> LLMUpdate:
    """LLMMetadata fields known when the call starts: model, parameters, prompt."""
    call_kwargs = {k: v for k, v in arguments.items() if k not in _METHOD_ARGS}
    meta = LLMUpdate(
        provider=provider_of(llm),
        provider_model=model_of(llm),
        request_parameters=_request_parameters(llm, call_kwargs) or None,
        provider_specific={"llm_class": type(llm).__name__,
                           **_client_fields(llm, call_kwargs)},
    )
    if "messages" in arguments:
        meta["messages"] = message_dicts(arguments["messages"])
    elif isinstance(arguments.get("prompt"), str):
        meta["prompt_text"] = arguments["prompt"]
    meta["tools"] = tool_definitions_of(arguments.get("tools"))
    choice = arguments.get("tool_choice")
    if choice is not None:
        meta["tool_choice"] = choice if isinstance(choice, (str, dict)) else str(choice)
    return compact(meta)


@guarded(default={})
def usage_fields(response: Any) -> dict[str, int]:
    """Raw token counts found in a response's ``raw`` (or, failing that, its kwargs),
    flat, as :func:`ragtrail.providers.usage_counts` finds them."""
    found = usage_counts(_get(response, "raw"))
    if not any(found.values()):
        found = top_level_counts(_get(response, "additional_kwargs") or {})
    return found if any(found.values()) else {}


def token_usage(fields: Mapping[str, int]) -> tuple[dict[str, int], dict[str, Any] | None] | None:
    """Flat raw counts -> ragtrail ``LLMTokenUsage`` fields and what the provider
    specifics keep of them (Anthropic's cache writes by TTL), or None when none."""
    found = usage_from_counts(fields)
    return (dict(found.token_usage), found.provider_specific()) if found is not None else None


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
    return raw_response_fields(_get(response, "raw"))


@guarded(default=LLMUpdate())
def llm_response(
    response: Any,
    stream_usage: Mapping[str, int] | None = None,
    stream_meta: Mapping[str, str] | None = None,
) -> LLMUpdate:
    """LLMMetadata fields from a ``ChatResponse`` / ``CompletionResponse``.

    For a stream, ``response`` is the last chunk; ``stream_usage`` and ``stream_meta``
    hold what the chunks before it reported (the last one's values win).
    """
    if response is None:
        return LLMUpdate()
    fields = dict(stream_usage or {})
    merge_counts(fields, usage_fields(response))
    raw = _get(response, "raw")
    usage, specific = token_usage(fields) or (None, None)
    specific = dict(specific or {})
    response_id = _get(raw, "id")
    if response_id is not None:
        specific["response_id"] = str(response_id)
    return compact(LLMUpdate(
        output_text=output_text(response),
        token_usage=usage,
        response_metadata={**(stream_meta or {}), **response_metadata(response)} or None,
        tool_calls=tool_calls_of(_get(response, "message")),
        provider_specific=specific or None,
    ), falsy=True)
