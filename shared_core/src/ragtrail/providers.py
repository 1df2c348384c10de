"""What provider clients report, in ragtrail's terms: one rule per shape, for both adapters.

Framework-free: the adapters find the values in their framework's objects and hand
them here, so LangChain and LlamaIndex store the same numbers for the same answer.

**Anthropic usage.** Anthropic's Messages API counts ``input_tokens`` without the cached
tokens, reports cache reads and writes apart (``cache_read_input_tokens``,
``cache_creation_input_tokens``), and splits the writes by time to live in
``cache_creation = {ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}``.
``langchain-anthropic`` then reports ``cache_creation: 0`` beside the two TTL keys (to
avoid counting twice). ragtrail stores the true count in ``cache_creation_tokens`` (the
sum of the TTL buckets when the plain count is 0 or missing) and keeps the split in the
call's provider specifics under :data:`CACHE_CREATION`, where the pricer reads the
one-hour part (:func:`cache_write_1h_tokens`) to bill it at its own rate.

**OpenAI usage.** Chat Completions report ``prompt_tokens`` / ``completion_tokens``
with ``prompt_tokens_details.{cached_tokens, cache_write_tokens}`` and
``completion_tokens_details.reasoning_tokens``; the Responses API the same as
``input_tokens`` / ``output_tokens`` with ``input_tokens_details`` /
``output_tokens_details``. Cached and written tokens are a part of the input there, as
in ragtrail (:func:`openai_usage`).

**Provider inference.** When the client does not say who serves the model (a chat
model class of the user's own, ``OpenAILike``), :func:`resolve_provider` asks the
pricer's model matching (genai-prices) and, when it knows the model, stores its
provider with the flag :data:`PROVIDER_INFERRED` in the provider specifics. A model it
does not know keeps the adapter's guess from the class name
(:data:`PROVIDER_FROM_CLASS`), or no provider, and stays unpriced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .schemas import LLMMetadata

__all__ = [
    "CACHE_CREATION",
    "CACHE_TTL_KEYS",
    "PROVIDER_FROM_CLASS",
    "PROVIDER_INFERRED",
    "ProviderUsage",
    "anthropic_usage",
    "cache_creation_tokens",
    "cache_write_1h_tokens",
    "field_of",
    "openai_usage",
    "resolve_provider",
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


def openai_usage(usage: Any) -> ProviderUsage | None:
    """OpenAI usage (Chat Completions or Responses API; a mapping or the SDK's object)
    in ragtrail's terms: the same counts, since OpenAI already counts cached and written
    tokens in the input and reasoning in the output. The nested details may also be
    given flat, under their own names. None when ``usage`` holds neither input nor
    output tokens.
    """
    inputs, outputs = field_of(usage, "prompt_tokens"), field_of(usage, "completion_tokens")
    in_details, out_details = "prompt_tokens_details", "completion_tokens_details"
    if inputs is None and outputs is None:  # the Responses API
        inputs, outputs = field_of(usage, "input_tokens"), field_of(usage, "output_tokens")
        in_details, out_details = "input_tokens_details", "output_tokens_details"
    if _count(inputs) is None and _count(outputs) is None:
        return None
    details = field_of(usage, in_details)
    details = usage if details is None else details
    reasoning = field_of(usage, out_details)
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
