"""ragtrail.providers: the one rule both adapters use for provider usage shapes and for
a provider the client does not name (issue 20, points 3 and 4).

End to end, with the real clients against the fake provider, in
``test_providers_langchain.py`` and ``test_providers_llamaindex.py``; here the edges of
the rule, on the shapes the clients hand over (the Anthropic SDK's own objects too).
"""

from __future__ import annotations

import pytest
from anthropic.types import CacheCreation, OutputTokensDetails, Usage
from openai.types import CompletionUsage
from openai.types.responses import ResponseUsage

from provider_server import ANTHROPIC_CACHE_TTL, ANTHROPIC_USAGE, EXPECTED_USAGE, OPENAI_USAGE
from ragtrail.pricing import Pricer
from ragtrail.providers import (
    PROVIDER_FROM_CLASS,
    PROVIDER_INFERRED,
    anthropic_usage,
    cache_creation_tokens,
    cache_write_1h_tokens,
    openai_usage,
    resolve_provider,
)
from ragtrail.schemas import LLMMetadata, LLMTokenUsage

EXPECTED = EXPECTED_USAGE["anthropic"].model_dump(exclude_none=True)


def test_anthropic_usage_from_the_api_json_and_the_sdk_object() -> None:
    sdk = Usage(input_tokens=100, cache_read_input_tokens=1000, cache_creation_input_tokens=200,
                cache_creation=CacheCreation(**ANTHROPIC_CACHE_TTL), output_tokens=50,
                output_tokens_details=OutputTokensDetails(thinking_tokens=12))
    for raw in (ANTHROPIC_USAGE, sdk):
        found = anthropic_usage(raw)
        assert found is not None
        assert found.token_usage == EXPECTED
        assert found.provider_specific() == {"cache_creation": ANTHROPIC_CACHE_TTL}
        assert cache_write_1h_tokens(found.provider_specific()) == 50


def test_anthropic_usage_given_flat_as_a_merged_stream_gives_it() -> None:
    flat = {"input_tokens": 100, "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 0, **ANTHROPIC_CACHE_TTL, "output_tokens": 50,
            "thinking_tokens": 12}
    found = anthropic_usage(flat)
    assert found is not None and found.token_usage == EXPECTED


@pytest.mark.parametrize(("reported", "by_ttl", "expected"), [
    # langchain-anthropic: cache_creation 0 beside the buckets -> their sum.
    (0, {"cache_creation": 0, **ANTHROPIC_CACHE_TTL}, (200, ANTHROPIC_CACHE_TTL)),
    (None, ANTHROPIC_CACHE_TTL, (200, ANTHROPIC_CACHE_TTL)),
    # The API: the plain count is the total, the buckets its split.
    (200, ANTHROPIC_CACHE_TTL, (200, ANTHROPIC_CACHE_TTL)),
    # Older API / streams: no split.
    (200, None, (200, None)),
    (0, {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}, (0, None)),
    (None, {"ephemeral_1h_input_tokens": "50"}, (None, None)),  # not a count
])
def test_cache_creation_tokens(reported: object, by_ttl: object,
                               expected: tuple[int | None, dict[str, int] | None]) -> None:
    assert cache_creation_tokens(reported, by_ttl) == expected


def test_no_input_or_output_is_no_usage() -> None:
    assert anthropic_usage({"cache_read_input_tokens": 5}) is None
    assert anthropic_usage(None) is None
    assert openai_usage({"total_tokens": 5}) is None


def test_openai_usage_chat_completions_and_responses_api() -> None:
    expected = EXPECTED_USAGE["openai"].model_dump(exclude_none=True)
    responses = {"input_tokens": 1200, "output_tokens": 40, "total_tokens": 1240,
                 "input_tokens_details": {"cached_tokens": 1024, "cache_write_tokens": 128},
                 "output_tokens_details": {"reasoning_tokens": 8}}
    flat = {"prompt_tokens": 1200, "completion_tokens": 40, "total_tokens": 1240,
            "cached_tokens": 1024, "cache_write_tokens": 128, "reasoning_tokens": 8}
    for raw in (OPENAI_USAGE, CompletionUsage.model_validate(OPENAI_USAGE), responses,
                ResponseUsage.model_validate(responses), flat):
        found = openai_usage(raw)
        assert found is not None
        assert (found.token_usage, found.provider_specific()) == (expected, None)


@pytest.fixture(scope="module")
def pricer() -> Pricer:
    return Pricer()


def test_a_reported_provider_is_kept(pricer: Pricer) -> None:
    meta = LLMMetadata(provider="azure", provider_model="gpt-4o-mini")
    resolve_provider(meta, pricer.infer_provider)
    assert (meta.provider, meta.provider_specific) == ("azure", None)


def test_provider_inferred_from_a_known_model_is_flagged(pricer: Pricer) -> None:
    meta = LLMMetadata(provider_model="gpt-4o-mini",
                       provider_specific={PROVIDER_FROM_CLASS: "inhouse"})
    resolve_provider(meta, pricer.infer_provider)
    assert meta.provider == "openai"
    assert meta.provider_specific == {PROVIDER_FROM_CLASS: "inhouse",
                                      PROVIDER_INFERRED: {"model": "gpt-4o-mini",
                                                          "by": "genai-prices"}}


def test_unknown_model_keeps_the_class_guess_or_nothing(pricer: Pricer) -> None:
    guessed = LLMMetadata(provider_model="acme-1",
                          provider_specific={PROVIDER_FROM_CLASS: "inhouse"})
    resolve_provider(guessed, pricer.infer_provider)
    assert (guessed.provider, guessed.provider_specific) == (
        "inhouse", {PROVIDER_FROM_CLASS: "inhouse"})
    bare = LLMMetadata(provider_model="acme-1", token_usage=LLMTokenUsage(input_tokens=1))
    resolve_provider(bare, pricer.infer_provider)
    assert (bare.provider, bare.provider_specific) == (None, None)
    nameless = LLMMetadata()
    resolve_provider(nameless, pricer.infer_provider)
    assert nameless.provider is None
