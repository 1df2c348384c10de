"""Token usage: one small pure function per provider wire shape, in ragtrail's terms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..schemas import LLMMetadata

__all__ = [
    "CACHE_CREATION",
    "CACHE_TTL_KEYS",
    "PROVIDER_FROM_CLASS",
    "PROVIDER_INFERRED",
    "ProviderUsage",
    "anthropic_usage",
    "bedrock_usage",
    "cache_creation_tokens",
    "cache_write_1h_tokens",
    "field_of",
    "gemini_usage",
    "ollama_usage",
    "openai_chat_usage",
    "openai_responses_usage",
    "openai_usage",
    "resolve_provider",
    "usage_from_mapping",
]

#: Provider-specifics key of the cache writes split by time to live, as Anthropic
#: names them: ``{"ephemeral_5m_input_tokens": n, "ephemeral_1h_input_tokens": m}``.
CACHE_CREATION = "cache_creation"
#: The TTL buckets of :data:`CACHE_CREATION`, shortest first.
CACHE_TTL_KEYS = ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens")
_TTL_1H = "ephemeral_1h_input_tokens"
#: Provider-specifics key: the provider an adapter could only guess from the client's
#: class name (LangChain's default ``ls_provider``), not one the client reported.
PROVIDER_FROM_CLASS = "provider_from_class"
#: Provider-specifics key set when the stored provider was inferred from the model
#: name: ``{"model": <the name matched>, "by": "genai-prices"}``.
PROVIDER_INFERRED = "provider_inferred"
_INFERRED_BY = "genai-prices"


def field_of(source: Any, key: str) -> Any:
    """``source[key]`` of a mapping, else its attribute ``key``; None when absent.

    Provider usage arrives as dicts (JSON) or as SDK objects (pydantic models).
    """
    if source is None:
        return None
    if isinstance(source, Mapping):
        return source.get(key)
    return getattr(source, key, None)


def _count(value: Any) -> int | None:
    """A token count, or None for anything that is not one."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return int(value)


@dataclass(frozen=True)
class ProviderUsage:
    """Usage in ragtrail's convention, and what it keeps in the provider specifics."""

    #: :class:`~ragtrail.schemas.LLMTokenUsage` fields (absent counts left out).
    token_usage: dict[str, int]
    #: Cache writes by time to live (:data:`CACHE_TTL_KEYS`), when reported.
    cache_creation: dict[str, int] | None = None

    def provider_specific(self) -> dict[str, Any] | None:
        """What the call's provider specifics keep of this usage, or None."""
        return {CACHE_CREATION: dict(self.cache_creation)} if self.cache_creation else None


def cache_creation_tokens(
    reported: Any, by_ttl: Any
) -> tuple[int | None, dict[str, int] | None]:
    """The true number of tokens written to the prompt cache, and their split by TTL.

    Args:
        reported: The plain count (Anthropic's ``cache_creation_input_tokens``,
            LangChain's ``input_token_details["cache_creation"]``).
        by_ttl: A mapping or object holding :data:`CACHE_TTL_KEYS` (Anthropic's
            ``usage.cache_creation``, LangChain's ``input_token_details``), or None.

    Returns:
        The plain count, or the sum of the TTL buckets when the plain count is 0 or
        missing (``langchain-anthropic`` zeroes it when it reports the buckets); and the
        buckets when any holds tokens, else None.
    """
    split = {key: value for key in CACHE_TTL_KEYS
             if (value := _count(field_of(by_ttl, key))) is not None}
    in_buckets = sum(split.values())
    count = _count(reported)
    if not count and in_buckets:
        count = in_buckets
    return count, (split if in_buckets else None)


def anthropic_usage(usage: Any) -> ProviderUsage | None:
    """Anthropic Messages API usage (a mapping or the SDK's object) in ragtrail's terms.

    ``input_tokens`` becomes the whole input (uncached + cache reads + cache writes),
    ``output_tokens_details.thinking_tokens`` the reasoning part of the output, and the
    cache writes' TTL split is kept (see :func:`cache_creation_tokens`). The nested
    values may also be given flat, under their own names, as a merged stream gives
    them. None when ``usage`` holds neither input nor output tokens.
    """
    base, output = _count(field_of(usage, "input_tokens")), _count(field_of(usage, "output_tokens"))
    if base is None and output is None:
        return None
    read = _count(field_of(usage, "cache_read_input_tokens"))
    nested = field_of(usage, "cache_creation")
    written, split = cache_creation_tokens(field_of(usage, "cache_creation_input_tokens"),
                                           usage if nested is None else nested)
    details = field_of(usage, "output_tokens_details")
    thinking = _count(field_of(usage if details is None else details, "thinking_tokens"))
    total_input = None if base is None else base + (read or 0) + (written or 0)
    values = {
        "input_tokens": total_input,
        "output_tokens": output,
        "total_tokens": None if total_input is None or output is None
        else total_input + output,
        "cache_read_tokens": read,
        "cache_creation_tokens": written,
        "reasoning_tokens": thinking,
    }
    return ProviderUsage({k: v for k, v in values.items() if v is not None}, split)


def _openai_shape(usage: Any, inputs_key: str, outputs_key: str) -> ProviderUsage | None:
    inputs, outputs = field_of(usage, inputs_key), field_of(usage, outputs_key)
    if _count(inputs) is None and _count(outputs) is None:
        return None
    details = field_of(usage, f"{inputs_key}_details")
    details = usage if details is None else details
    reasoning = field_of(usage, f"{outputs_key}_details")
    values = {
        "input_tokens": _count(inputs),
        "output_tokens": _count(outputs),
        "total_tokens": _count(field_of(usage, "total_tokens")),
        "cache_read_tokens": _count(field_of(details, "cached_tokens")),
        "cache_creation_tokens": _count(field_of(details, "cache_write_tokens")),
        "reasoning_tokens": _count(field_of(usage if reasoning is None else reasoning,
                                            "reasoning_tokens")),
    }
    return ProviderUsage({k: v for k, v in values.items() if v is not None})


def openai_chat_usage(usage: Any) -> ProviderUsage | None:
    """OpenAI Chat Completions usage: ``prompt_tokens`` / ``completion_tokens`` with
    ``prompt_tokens_details.{cached_tokens, cache_write_tokens}`` and
    ``completion_tokens_details.reasoning_tokens`` (details also accepted flat). The
    counts are ragtrail's already. None without input or output tokens."""
    return _openai_shape(usage, "prompt_tokens", "completion_tokens")


def openai_responses_usage(usage: Any) -> ProviderUsage | None:
    """OpenAI Responses API usage: ``input_tokens`` / ``output_tokens`` with
    ``input_tokens_details`` / ``output_tokens_details``, as :func:`openai_chat_usage`."""
    return _openai_shape(usage, "input_tokens", "output_tokens")


def openai_usage(usage: Any) -> ProviderUsage | None:
    """OpenAI usage (Chat Completions or Responses API; a mapping or the SDK's object)
    in ragtrail's terms: the same counts, since OpenAI already counts cached and written
    tokens in the input and reasoning in the output. The nested details may also be
    given flat, under their own names. None when ``usage`` holds neither input nor
    output tokens.
    """
    if field_of(usage, "prompt_tokens") is None and field_of(usage, "completion_tokens") is None:
        return openai_responses_usage(usage)
    return openai_chat_usage(usage)


def _total(inputs: int | None, outputs: int | None, reported: Any) -> int | None:
    total = _count(reported)
    if total is None and inputs is not None and outputs is not None:
        total = inputs + outputs
    return total


def _usage(values: dict[str, int | None]) -> ProviderUsage:
    return ProviderUsage({k: v for k, v in values.items() if v is not None})


def gemini_usage(usage: Any) -> ProviderUsage | None:
    """Gemini ``usage_metadata`` (``usageMetadata`` in JSON; either spelling):
    ``prompt_token_count`` (cached tokens included, as ``cached_content_token_count``),
    ``candidates_token_count`` plus ``thoughts_token_count`` (thinking is billed as
    output but counted apart) and ``total_token_count``. None without input or output."""
    def get(name: str) -> int | None:
        camel = name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:])
        value = field_of(usage, name)
        return _count(field_of(usage, camel) if value is None else value)

    inputs, candidates = get("prompt_token_count"), get("candidates_token_count")
    thoughts = get("thoughts_token_count")
    if inputs is None and candidates is None:
        return None
    outputs = None if candidates is None else candidates + (thoughts or 0)
    return _usage({"input_tokens": inputs, "output_tokens": outputs,
                   "total_tokens": _total(inputs, outputs, get("total_token_count")),
                   "cache_read_tokens": get("cached_content_token_count"),
                   "reasoning_tokens": thoughts})


def bedrock_usage(usage: Any) -> ProviderUsage | None:
    """Amazon Bedrock Converse ``usage``: ``inputTokens`` (without the cache, as
    Anthropic's), ``outputTokens``, ``totalTokens``, ``cacheReadInputTokens``,
    ``cacheWriteInputTokens``; the input becomes the whole input. None without counts."""
    base, outputs = _count(field_of(usage, "inputTokens")), _count(field_of(usage, "outputTokens"))
    if base is None and outputs is None:
        return None
    read = _count(field_of(usage, "cacheReadInputTokens"))
    written = _count(field_of(usage, "cacheWriteInputTokens"))
    inputs = None if base is None else base + (read or 0) + (written or 0)
    return _usage({"input_tokens": inputs, "output_tokens": outputs,
                   "total_tokens": _total(inputs, outputs, field_of(usage, "totalTokens")),
                   "cache_read_tokens": read, "cache_creation_tokens": written})


def ollama_usage(response: Any) -> ProviderUsage | None:
    """Ollama's ``/api/chat`` and ``/api/generate`` counts: ``prompt_eval_count`` (input)
    and ``eval_count`` (output), on the final response. None without either."""
    inputs = _count(field_of(response, "prompt_eval_count"))
    outputs = _count(field_of(response, "eval_count"))
    if inputs is None and outputs is None:
        return None
    return _usage({"input_tokens": inputs, "output_tokens": outputs,
                   "total_tokens": _total(inputs, outputs, None)})


def usage_from_mapping(usage: Mapping[str, Any]) -> ProviderUsage | None:
    """A client's usage mapping of unknown provider: OpenAI's chat shape when it has
    ``prompt_tokens`` or ``completion_tokens``, else Anthropic's (which also reads the
    Responses API's plain counts: it has no cache keys). A ``total_tokens`` the mapping
    reports is kept as reported."""
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return openai_usage(usage)
    found = anthropic_usage(usage)
    if found is None or usage.get("total_tokens") is None:
        return found
    return ProviderUsage({**found.token_usage, "total_tokens": usage["total_tokens"]},
                         found.cache_creation)


def cache_write_1h_tokens(provider_specific: Mapping[str, Any] | None) -> int | None:
    """The one-hour cache writes kept in a call's provider specifics, or None."""
    split = (provider_specific or {}).get(CACHE_CREATION)
    return _count(split.get(_TTL_1H)) if isinstance(split, Mapping) else None


def resolve_provider(
    meta: LLMMetadata, infer: Callable[[str | None], str | None] | None
) -> None:
    """Give a call whose client named no provider the one its model name implies.

    A provider the client reported is kept as it is. Otherwise ``infer`` (the pricer's
    model matching, :meth:`ragtrail.pricing.Pricer.infer_provider`) is asked about
    ``meta.provider_model``; when it knows the model, its provider is stored and
    :data:`PROVIDER_INFERRED` says so. When it does not, the adapter's guess from the
    class name (:data:`PROVIDER_FROM_CLASS`), if any, is the provider, as before.
    """
    if meta.provider:
        return
    specific = meta.provider_specific or {}
    inferred = infer(meta.provider_model) if infer is not None and meta.provider_model else None
    if inferred:
        meta.provider = inferred
        meta.provider_specific = {**specific, PROVIDER_INFERRED: {
            "model": meta.provider_model, "by": _INFERRED_BY}}
        return
    guess = specific.get(PROVIDER_FROM_CLASS)
    if isinstance(guess, str) and guess:
        meta.provider = guess
