"""LLM call metadata: the ``LLMMetadata`` structure we store for every LLM call.

The groups and field names follow the LLM metadata tracking guide our users started
from (token usage, cost, performance, request parameters, response metadata, rate
limits, provider specifics), plus the prompt actually sent and its template.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import Field

from ._base import Model, UtcDateTime, UtcModel
from .conventions import CURRENT_SCHEMA_VERSION, PriceStatus

__all__ = [
    "FLAT_FIELD_MAP",
    "MAX_MONEY",
    "MAX_TOKENS",
    "LLMCallRecord",
    "LLMCostMetrics",
    "LLMMetadata",
    "LLMMetadataFlat",
    "LLMPerformanceMetrics",
    "LLMRateLimitInfo",
    "LLMRequestParameters",
    "LLMResponseMetadata",
    "LLMTokenUsage",
    "tool_definition_hash",
]


#: Largest token count one call can report: far beyond any real call, inside the
#: database's 64-bit integers (and exact as a float). A provider reporting more has
#: sent garbage, and that field is dropped at capture.
MAX_TOKENS = 10**15
#: Largest magnitude (exclusive) of one stored amount of money, cost or price: 1e8
#: currency units keeps SQLite's scaled integer (1e18) inside int64, with room for
#: sums of many calls. The Recorder stores no amounts for a call priced beyond it.
MAX_MONEY = Decimal(10) ** 8


def tool_definition_hash(definition: Mapping[str, Any]) -> str:
    """sha256 hex digest of a tool definition's JSON (keys sorted): equal definitions
    share it whichever call offered them, so a store keeps each one once."""
    text = json.dumps(definition, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class LLMTokenUsage(Model):
    """Tokens as the provider counted them.

    ``input_tokens`` includes cached input tokens (OpenAI's convention, and the one
    LangChain normalises to); ``cache_read_tokens`` and ``cache_creation_tokens`` say
    which part of it was read from or written to the provider's prompt cache.
    ``reasoning_tokens`` are a part of ``output_tokens``.
    """

    input_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS,
                                     description="Prompt tokens, cached ones included.")
    output_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS,
                                      description="Completion tokens, reasoning included.")
    total_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS,
                                     description="input + output as reported.")
    cache_read_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS,
                                          description="Input tokens read from cache.")
    cache_creation_tokens: int | None = Field(
        None, ge=0, le=MAX_TOKENS, description="Input tokens written to the prompt cache."
    )
    reasoning_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS,
                                         description="Output tokens spent reasoning.")

    def is_empty(self) -> bool:
        """True when the provider reported no token counts at all."""
        counts = (self.input_tokens, self.output_tokens, self.total_tokens)
        return all(count is None for count in counts)


class LLMCostMetrics(Model):
    """What a call cost, per bucket, with the prices used. Money is ``Decimal``.

    A cost that could not be computed is ``None`` with ``price_status`` saying why,
    never a silent zero.
    """

    input_cost: Decimal | None = Field(None, description="Uncached input tokens.")
    output_cost: Decimal | None = Field(None, description="Output tokens (reasoning included).")
    cache_read_cost: Decimal | None = Field(None, description="Input tokens read from cache.")
    cache_write_cost: Decimal | None = Field(None, description="Input tokens written to cache.")
    reasoning_cost: Decimal | None = Field(
        None, description="Reasoning tokens, only where priced apart from output."
    )
    total_cost: Decimal | None = Field(None, description="Sum of the buckets.")
    input_price_per_1k: Decimal | None = Field(None, description="Price of 1,000 input tokens.")
    output_price_per_1k: Decimal | None = Field(None, description="Price of 1,000 output tokens.")
    cache_read_price_per_1k: Decimal | None = Field(
        None, description="Price of 1,000 cached reads."
    )
    cache_write_price_per_1k: Decimal | None = Field(
        None, description="Price of 1,000 cache writes."
    )
    cache_write_1h_price_per_1k: Decimal | None = Field(
        None,
        description="Price of 1,000 cache writes kept for one hour (Anthropic's 1h TTL), "
        "set when the call made any. The cache-write price when the price data has none "
        "of its own (price_source then says so).",
    )
    currency: str | None = Field(None, description="ISO currency code, e.g. USD.")
    price_source: str | None = Field(
        None, description="Where the prices came from: 'genai-prices <version>' or 'override'."
    )
    price_status: PriceStatus | None = Field(None, description="Why the cost is what it is.")


class LLMPerformanceMetrics(Model):
    """Timing of one call, in milliseconds."""

    total_duration_ms: float | None = Field(None, ge=0)
    time_to_first_token_ms: float | None = Field(None, ge=0, description="Streaming only.")
    tokens_per_second: float | None = Field(None, ge=0, description="Output tokens per second.")
    queue_time_ms: float | None = Field(None, ge=0)
    processing_time_ms: float | None = Field(None, ge=0)


class LLMRequestParameters(Model):
    """Generation parameters actually sent with the request."""

    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop_sequences: list[str] | None = None
    seed: int | None = None


class LLMResponseMetadata(Model):
    """What the provider said about its answer."""

    finish_reason: str | None = Field(None, description="stop, length, tool_calls, end_turn, ...")
    model_version: str | None = Field(None, description="Exact model that answered.")
    request_id: str | None = None
    system_fingerprint: str | None = None


class LLMRateLimitInfo(UtcModel):
    """Rate-limit state from the provider's response headers."""

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_at: UtcDateTime | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_at: UtcDateTime | None = None


class LLMMetadata(UtcModel):
    """Everything ragtrail knows about one LLM call."""

    provider: str | None = Field(None, description="openai, anthropic, ...")
    provider_model: str | None = Field(None, description="Model name as the provider knows it.")
    token_usage: LLMTokenUsage | None = None
    cost_metrics: LLMCostMetrics | None = None
    performance_metrics: LLMPerformanceMetrics | None = None
    request_parameters: LLMRequestParameters | None = None
    response_metadata: LLMResponseMetadata | None = None
    rate_limit_info: LLMRateLimitInfo | None = None
    provider_specific: dict[str, Any] | None = None
    request_timestamp: UtcDateTime | None = None
    response_timestamp: UtcDateTime | None = None
    streamed: bool | None = Field(
        None, description="True when the response came as a stream (the framework reported "
                          "streamed chunks); None when not streamed or not known.")
    # The prompt actually sent, and where it came from.
    messages: list[dict[str, Any]] | None = Field(
        None, description="Chat messages sent, as {role, content, ...} dicts."
    )
    prompt_text: str | None = Field(None, description="Prompt text sent to a completion model.")
    output_text: str | None = Field(None, description="Text the model produced.")
    prompt_template: str | None = Field(None, description="Template the prompt was rendered from.")
    prompt_template_name: str | None = Field(
        None, description="The template's name where the framework gives one: a LangChain "
                          "prompt's own name or its LangChain Hub repo, a LlamaIndex prompt's "
                          "type (text_qa, refine, ...).")
    prompt_variables: dict[str, Any] | None = None
    prompt_template_hash: str | None = Field(
        None, description="sha256 of the template text: stable across runs."
    )
    # Tools: what the model was offered and what it asked for (ragtrail.conventions.tools).
    tools: list[dict[str, Any]] | None = Field(
        None, description="Tool definitions offered: {name, description, parameters}, "
        "in the order sent.")
    tool_choice: Any = Field(None, description="tool_choice as sent (auto, required, a name).")
    tool_calls: list[dict[str, Any]] | None = Field(
        None, description="Tool calls the model made: {id, name, arguments}.")

    def flat(self) -> LLMMetadataFlat:
        """The flat variant of this record (see :class:`LLMMetadataFlat`)."""
        return LLMMetadataFlat.from_nested(self)


class LLMCallRecord(Model):
    """One stored LLM call: the metadata plus the run it belongs to."""

    schema_version: str = CURRENT_SCHEMA_VERSION
    run_id: str
    trace_id: str
    metadata: LLMMetadata


# --- Flat variant ---------------------------------------------------------------

_GROUPS: dict[str, type[Model]] = {
    "token_usage": LLMTokenUsage,
    "cost_metrics": LLMCostMetrics,
    "performance_metrics": LLMPerformanceMetrics,
    "request_parameters": LLMRequestParameters,
    "response_metadata": LLMResponseMetadata,
    "rate_limit_info": LLMRateLimitInfo,
}
# Leaf names that would collide with a top-level field get a prefix.
_RENAMES = {("request_parameters", "model"): "request_model"}

#: flat field name -> (group, field) in :class:`LLMMetadata`; group None = top level.
FLAT_FIELD_MAP: dict[str, tuple[str | None, str]] = {
    "provider": (None, "provider"),
    "provider_model": (None, "provider_model"),
    "request_timestamp": (None, "request_timestamp"),
    "response_timestamp": (None, "response_timestamp"),
    "prompt_template_hash": (None, "prompt_template_hash"),
    "streamed": (None, "streamed"),
}
for _group, _cls in _GROUPS.items():
    for _name in _cls.model_fields:
        FLAT_FIELD_MAP[_RENAMES.get((_group, _name), _name)] = (_group, _name)


class LLMMetadataFlat(UtcModel):
    """One-level variant of :class:`LLMMetadata` for simple tables and exports.

    Carries every scalar of the nested record (not messages, template text, variables
    or provider specifics); conversion is lossless both ways for those fields.
    """

    provider: str | None = None
    provider_model: str | None = None
    request_timestamp: UtcDateTime | None = None
    response_timestamp: UtcDateTime | None = None
    prompt_template_hash: str | None = None
    streamed: bool | None = None
    # token_usage
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    reasoning_tokens: int | None = None
    # cost_metrics
    input_cost: Decimal | None = None
    output_cost: Decimal | None = None
    cache_read_cost: Decimal | None = None
    cache_write_cost: Decimal | None = None
    reasoning_cost: Decimal | None = None
    total_cost: Decimal | None = None
    input_price_per_1k: Decimal | None = None
    output_price_per_1k: Decimal | None = None
    cache_read_price_per_1k: Decimal | None = None
    cache_write_price_per_1k: Decimal | None = None
    cache_write_1h_price_per_1k: Decimal | None = None
    currency: str | None = None
    price_source: str | None = None
    price_status: PriceStatus | None = None
    # performance_metrics
    total_duration_ms: float | None = None
    time_to_first_token_ms: float | None = None
    tokens_per_second: float | None = None
    queue_time_ms: float | None = None
    processing_time_ms: float | None = None
    # request_parameters
    request_model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop_sequences: list[str] | None = None
    seed: int | None = None
    # response_metadata
    finish_reason: str | None = None
    model_version: str | None = None
    request_id: str | None = None
    system_fingerprint: str | None = None
    # rate_limit_info
    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_at: UtcDateTime | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_at: UtcDateTime | None = None

    @classmethod
    def from_nested(cls, meta: LLMMetadata) -> LLMMetadataFlat:
        """Flatten a nested record."""
        values: dict[str, Any] = {}
        for flat_name, (group, name) in FLAT_FIELD_MAP.items():
            source: Any = meta if group is None else getattr(meta, group)
            if source is not None:
                values[flat_name] = getattr(source, name)
        return cls(**values)

    def to_nested(self) -> LLMMetadata:
        """Rebuild the nested record; a group with no values stays None."""
        top: dict[str, Any] = {}
        groups: dict[str, dict[str, Any]] = {}
        for flat_name, (group, name) in FLAT_FIELD_MAP.items():
            value = getattr(self, flat_name)
            if value is None:
                continue
            if group is None:
                top[name] = value
            else:
                groups.setdefault(group, {})[name] = value
        for group, fields in groups.items():
            top[group] = _GROUPS[group](**fields)
        return LLMMetadata(**top)


_missing = set(FLAT_FIELD_MAP) ^ set(LLMMetadataFlat.model_fields)
if _missing:  # pragma: no cover - caught at import by any test
    raise RuntimeError(f"LLMMetadataFlat out of sync with LLMMetadata: {sorted(_missing)}")
