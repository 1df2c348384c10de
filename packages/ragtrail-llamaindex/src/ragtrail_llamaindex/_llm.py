"""LLM call metadata from LlamaIndex LLM objects and their responses: the readers the
extractors of :mod:`._extractors` (``LLM_START``, ``LLM_END``, ...) call.

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

from ragtrail.capture import guarded
from ragtrail.providers import (
    PARAM_SYNONYMS,
    checked_parameters,
    client_request_fields,
    field_of,
    raw_response_fields,
    top_level_counts,
    usage_counts,
    usage_from_counts,
)
from ragtrail.providers import request_parameters as provider_request_parameters

__all__ = [
    "client_fields",
    "model_of",
    "output_text",
    "provider_of",
    "raw_of",
    "request_parameters",
    "response_metadata",
    "token_usage",
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


def raw_of(response: Any) -> Any:
    """The provider's own response object a LlamaIndex response carries (``raw``)."""
    return _get(response, "raw")


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


def request_parameters(llm: Any, call_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The call's own keyword arguments, then the LLM's ``additional_kwargs``, then its
    attributes, read by the core's synonyms (:data:`ragtrail.providers.PARAM_SYNONYMS`)
    and its one priority rule; the model is the LLM's (:func:`model_of`)."""
    sources: list[Mapping[str, Any]] = [
        {k: v for k, v in call_kwargs.items() if not k.startswith("_")}]
    extra = getattr(llm, "additional_kwargs", None)
    if isinstance(extra, Mapping):
        sources.append(extra)
    sources.append({name: getattr(llm, name, None) for name in _ATTR_PARAMS})
    return checked_parameters({**provider_request_parameters(*sources), "model": model_of(llm)})


def client_fields(llm: Any, call_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What the client sends beyond the canonical call (the core decides, from the
    client's module and its raw parameters: the LLM's defaults, then the call's own)."""
    extra = getattr(llm, "additional_kwargs", None)
    return client_request_fields(type(llm).__module__,
                                 extra if isinstance(extra, Mapping) else {}, call_kwargs)


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


def output_text(response: Any) -> str | None:
    """Text the model produced (a chat message's content or a completion's text)."""
    message = _get(response, "message")
    if message is not None:
        content = _get(message, "content")
        return content if isinstance(content, str) else None
    text = _get(response, "text")
    return text if isinstance(text, str) else None


def response_metadata(response: Any) -> dict[str, str]:
    """Finish reason, model version, request id and fingerprint of one response or chunk."""
    return raw_response_fields(_get(response, "raw"))
