"""What provider clients report, in ragtrail's terms: one rule per shape, for both adapters.

The only place that knows providers' key names: token usage per wire shape (OpenAI chat
and Responses, Anthropic with cache TTLs, Gemini, Bedrock, Ollama), request-parameter
synonyms with one priority rule (:data:`PARAM_SYNONYMS`), response metadata, the
request id and rate-limit headers, raw responses of unknown shape read whole
(:func:`usage_counts`, :func:`usage_from_counts`, :func:`raw_response_fields`), and
what a client sends beyond the canonical call (unmodelled parameters, its request
style: :mod:`._clients`), for ``ragtrail replay``. :data:`PROVIDER_KEY_NAMES` lists
the names no adapter spells.

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

from ._clients import (
    CLIENT_STYLES,
    REQUEST_EXTRA,
    REQUEST_STYLE,
    REQUEST_STYLES,
    RequestStyle,
    client_request_fields,
    request_extra,
    request_style,
)
from ._headers import (
    REQUEST_ID_HEADERS,
    lower_headers,
    parse_duration_s,
    rate_limit_info,
    request_id,
)
from ._params import (
    MAPPED_PARAMS,
    NOT_SPECIFIC_PARAMS,
    PARAM_SYNONYMS,
    first_param,
    request_parameters,
    specific_params,
)
from ._raw import (
    PROVIDER_KEY_NAMES,
    USAGE_COUNT_KEYS,
    USAGE_DETAIL_KEYS,
    checked_parameters,
    merge_counts,
    raw_response_fields,
    standard_usage,
    top_level_counts,
    usage_counts,
    usage_from_counts,
)
from ._response import FINISH_REASON_KEYS, response_fields
from ._usage import (
    CACHE_CREATION,
    CACHE_TTL_KEYS,
    PROVIDER_FROM_CLASS,
    PROVIDER_INFERRED,
    ProviderUsage,
    anthropic_usage,
    bedrock_usage,
    cache_creation_tokens,
    cache_write_1h_tokens,
    field_of,
    gemini_usage,
    ollama_usage,
    openai_chat_usage,
    openai_responses_usage,
    openai_usage,
    resolve_provider,
    usage_from_mapping,
)

__all__ = [
    "CACHE_CREATION",
    "CACHE_TTL_KEYS",
    "CLIENT_STYLES",
    "FINISH_REASON_KEYS",
    "MAPPED_PARAMS",
    "NOT_SPECIFIC_PARAMS",
    "PARAM_SYNONYMS",
    "PROVIDER_FROM_CLASS",
    "PROVIDER_INFERRED",
    "PROVIDER_KEY_NAMES",
    "REQUEST_EXTRA",
    "REQUEST_ID_HEADERS",
    "REQUEST_STYLE",
    "REQUEST_STYLES",
    "USAGE_COUNT_KEYS",
    "USAGE_DETAIL_KEYS",
    "ProviderUsage",
    "RequestStyle",
    "anthropic_usage",
    "bedrock_usage",
    "cache_creation_tokens",
    "cache_write_1h_tokens",
    "checked_parameters",
    "client_request_fields",
    "field_of",
    "first_param",
    "gemini_usage",
    "lower_headers",
    "merge_counts",
    "ollama_usage",
    "openai_chat_usage",
    "openai_responses_usage",
    "openai_usage",
    "parse_duration_s",
    "rate_limit_info",
    "raw_response_fields",
    "request_extra",
    "request_id",
    "request_parameters",
    "request_style",
    "resolve_provider",
    "response_fields",
    "specific_params",
    "standard_usage",
    "top_level_counts",
    "usage_counts",
    "usage_from_counts",
    "usage_from_mapping",
]
