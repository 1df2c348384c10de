"""Raw client objects read whole: a provider response of unknown shape, a framework's
normalised usage, and the list of names only providers' wire formats use.

An adapter that cannot tell which provider answered (LlamaIndex hands over the SDK's
own response, or a stream event, as ``response.raw``) gives the raw object here:

- :func:`usage_counts` finds every usage count it holds, flat (the nested details
  lifted to their own names), wherever the provider put them; a stream's chunks are
  merged with :func:`merge_counts`;
- :func:`usage_from_counts` then reads those counts by the shape they reveal (Gemini,
  Ollama, OpenAI, else Anthropic) into ragtrail's terms;
- :func:`raw_response_fields` finds the finish reason, exact model, request id and
  fingerprint.

:func:`standard_usage` reads the usage LangChain normalises every provider's to
(``AIMessage.usage_metadata``). :data:`PROVIDER_KEY_NAMES` are the names no adapter
spells (``tests/providers/test_names.py`` checks the adapters' sources).

Every read of a raw object is guarded: a property that raises costs its value only.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from ..guard import guarded
from ._headers import REQUEST_ID_HEADERS
from ._usage import (
    CACHE_TTL_KEYS,
    ProviderUsage,
    anthropic_usage,
    cache_creation_tokens,
    field_of,
    gemini_usage,
    ollama_usage,
    openai_usage,
)

__all__ = [
    "PROVIDER_KEY_NAMES",
    "USAGE_COUNT_KEYS",
    "USAGE_DETAIL_KEYS",
    "checked_parameters",
    "merge_counts",
    "raw_response_fields",
    "standard_usage",
    "top_level_counts",
    "usage_counts",
    "usage_from_counts",
]

#: Usage counts read where they stand, by the shapes that report them.
USAGE_COUNT_KEYS = (
    "prompt_tokens", "completion_tokens", "total_tokens",  # OpenAI chat, LlamaIndex kwargs
    "input_tokens", "output_tokens",  # Anthropic, OpenAI Responses API
    "cache_read_input_tokens", "cache_creation_input_tokens",  # Anthropic
    "prompt_token_count", "candidates_token_count", "total_token_count",  # Gemini
    "cached_content_token_count", "thoughts_token_count",  # Gemini
    "prompt_eval_count", "eval_count",  # Ollama
)
#: Nested usage details, as (group, key): read from ``usage[group][key]``, kept flat as key.
USAGE_DETAIL_KEYS: tuple[tuple[str, str], ...] = (
    ("prompt_tokens_details", "cached_tokens"),
    ("input_tokens_details", "cached_tokens"),
    ("prompt_tokens_details", "cache_write_tokens"),  # OpenAI
    ("input_tokens_details", "cache_write_tokens"),
    ("completion_tokens_details", "reasoning_tokens"),
    ("output_tokens_details", "reasoning_tokens"),
    ("output_tokens_details", "thinking_tokens"),  # Anthropic
    *(("cache_creation", key) for key in CACHE_TTL_KEYS),  # Anthropic, by TTL
)
#: Counts only OpenAI's usage has: the Responses API's input and output tokens are told
#: from Anthropic's by these (Anthropic reports no total and cache counts of its own).
_OPENAI_ONLY = frozenset({"prompt_tokens", "completion_tokens", "cached_tokens",
                          "cache_write_tokens", "total_tokens"})
#: The OpenAI SDK keeps the request id header of a response here.
_SDK_REQUEST_ID = "_request_id"
#: langchain-openai prefixes the usage details of these service tiers with the tier's
#: name ("priority_cache_read", "flex_reasoning").
_SERVICE_TIERS = ("priority", "flex")

#: Names only providers' wire formats (and their SDKs) use: usage keys, parameter
#: synonyms, response keys, headers. No adapter spells one; it finds the raw object and
#: hands it to :mod:`ragtrail.providers`.
PROVIDER_KEY_NAMES: tuple[str, ...] = tuple(sorted({
    *USAGE_COUNT_KEYS,
    *(name for pair in USAGE_DETAIL_KEYS for name in pair),
    "cache_read", "priority_cache_read", "flex_cache_read",  # LangChain's usage details
    "input_token_details", "output_token_details",
    "max_completion_tokens", "max_output_tokens", "max_new_tokens", "num_predict",
    "random_seed", "stop_reason", "done_reason",
    *REQUEST_ID_HEADERS, _SDK_REQUEST_ID, "x-ratelimit", "anthropic-ratelimit",
} - {"cache_creation"}))  # also LangChain's detail name, and our provider-specifics key


@guarded(default=None)
def _read(source: Any, key: str) -> Any:
    """:func:`~ragtrail.providers.field_of`, guarded: whatever reading a raw object
    raises costs this value only (counted and logged), never the rest of the record."""
    return field_of(source, key)


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


def _stop(value: Any) -> list[str] | None:
    ok = isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value)
    return list(value) if ok else None


#: How a request parameter's value is checked (see :func:`checked_parameters`).
_PARAM_CHECKS = {"temperature": _float, "top_p": _float, "frequency_penalty": _float,
                 "presence_penalty": _float, "top_k": _int, "max_tokens": _int, "seed": _int,
                 "stop_sequences": _stop}


def checked_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """Request parameters (:func:`~ragtrail.providers.request_parameters`) whose values
    fit ``LLMRequestParameters``: numbers as numbers (a number in a string read, a bool
    or a negative count not), stop sequences as a list of strings; what does not fit,
    and what is None, is left out."""
    checked = {k: _PARAM_CHECKS[k](v) if k in _PARAM_CHECKS else v for k, v in values.items()}
    return {k: v for k, v in checked.items() if v is not None}


def _holders(raw: Any) -> list[Any]:
    """Where a raw response keeps its usage: ``usage`` (OpenAI, Anthropic), a stream's
    ``message.usage`` (Anthropic's ``message_start``), ``usage_metadata`` (Gemini), or
    the response itself (Ollama)."""
    return [_read(raw, "usage"), _read(_read(raw, "message"), "usage"),
            _read(raw, "usage_metadata"), raw]


def usage_counts(raw: Any) -> dict[str, int]:
    """Every usage count a raw provider response (an SDK object, a dict or a stream
    event) holds, flat: :data:`USAGE_COUNT_KEYS` under their names, the
    :data:`USAGE_DETAIL_KEYS` under their own key. The first place holding a count
    wins. {} for None or a response without counts."""
    found: dict[str, int] = {}
    if raw is None:
        return found
    for holder in _holders(raw):
        if holder is None:
            continue
        for key in USAGE_COUNT_KEYS:
            value = _int(_read(holder, key))
            if value is not None:
                found.setdefault(key, value)
        for group, key in USAGE_DETAIL_KEYS:
            value = _int(_read(_read(holder, group), key))
            if value is not None:
                found.setdefault(key, value)
    return found


def top_level_counts(source: Any) -> dict[str, int]:
    """The :data:`USAGE_COUNT_KEYS` standing in ``source`` itself (a client's keyword
    arguments, say), flat."""
    return {k: v for k in USAGE_COUNT_KEYS if (v := _int(_read(source, k))) is not None}


def merge_counts(into: MutableMapping[str, int], more: Mapping[str, int]) -> None:
    """Merge a stream chunk's counts into what earlier chunks reported (the later count
    wins): streams spread usage over chunks (Anthropic: input at start, output at end)."""
    into.update({k: v for k, v in more.items() if v is not None})


def _openai_marked(counts: Mapping[str, int]) -> ProviderUsage | None:
    return openai_usage(counts) if _OPENAI_ONLY & counts.keys() else None


def usage_from_counts(counts: Mapping[str, int]) -> ProviderUsage | None:
    """Flat counts (:func:`usage_counts`) in ragtrail's terms, by the shape they reveal:
    Gemini's, Ollama's, OpenAI's (either API), else Anthropic's (cache reads and writes
    added to the input, the writes' TTL split kept). A missing total is input + output.
    None when there are no counts."""
    if not counts or not any(counts.values()):
        return None
    for shape in (gemini_usage, ollama_usage, _openai_marked, anthropic_usage):
        found = shape(counts)
        if found is not None:
            break
    else:
        return None
    usage = dict(found.token_usage)
    inputs, outputs = usage.get("input_tokens"), usage.get("output_tokens")
    if usage.get("total_tokens") is None and inputs is not None and outputs is not None:
        usage["total_tokens"] = inputs + outputs
    return ProviderUsage(usage, found.cache_creation) if usage else None


def _first(items: Any) -> Any:
    if isinstance(items, (list, tuple)) and items:
        return items[0]
    return None


def raw_response_fields(raw: Any) -> dict[str, str]:
    """``LLMResponseMetadata`` values of a raw provider response or stream event (absent
    ones left out): the finish reason (OpenAI's ``choices[0]``, Anthropic's
    ``stop_reason`` also in a stream's ``delta``, Gemini's ``candidates[0]``, Ollama's),
    the exact model, the request id (the SDK's copy of the request id header, else the
    body's, else the response id, which is what a user can look up in the provider's
    logs) and the system fingerprint."""
    if raw is None:
        return {}
    finish = (_read(_first(_read(raw, "choices")), "finish_reason")
              or _read(raw, "stop_reason") or _read(_read(raw, "delta"), "stop_reason")
              or _read(_first(_read(raw, "candidates")), "finish_reason")
              or _read(raw, "done_reason"))
    response_id = _read(raw, "id") or _read(raw, "response_id")
    values = {
        "finish_reason": getattr(finish, "name", finish) if finish is not None else None,
        "model_version": _read(raw, "model") or _read(raw, "model_version"),
        "request_id": getattr(raw, _SDK_REQUEST_ID, None) or _read(raw, "request_id")
        or response_id,
        "system_fingerprint": _read(raw, "system_fingerprint"),
    }
    return {k: str(v) for k, v in values.items() if v is not None}


def _detail(details: Any, key: str) -> Any:
    """A usage detail of LangChain's ``input/output_token_details``, also when
    langchain-openai prefixed it with the call's service tier."""
    if not isinstance(details, Mapping):
        return None
    for name in (key, *(f"{tier}_{key}" for tier in _SERVICE_TIERS)):
        if details.get(name) is not None:
            return details[name]
    return None


def standard_usage(usage: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int] | None]:
    """LangChain's normalised usage (``AIMessage.usage_metadata``: input and output
    tokens with ``input_token_details`` and ``output_token_details``) as
    ``LLMTokenUsage`` fields (values as given: the caller validates them), and the cache
    writes' split by TTL when reported (langchain-anthropic reports Anthropic's writes by
    TTL beside a ``cache_creation`` of 0, see
    :func:`~ragtrail.providers.cache_creation_tokens`)."""
    inputs, outputs = usage.get("input_token_details"), usage.get("output_token_details")
    written, by_ttl = cache_creation_tokens(_detail(inputs, "cache_creation"), inputs)
    fields = {"input_tokens": usage.get("input_tokens"),
              "output_tokens": usage.get("output_tokens"),
              "total_tokens": usage.get("total_tokens"),
              "cache_read_tokens": _detail(inputs, "cache_read"),
              "cache_creation_tokens": written,
              "reasoning_tokens": _detail(outputs, "reasoning")}
    return fields, by_ttl
