"""Table tests: every provider wire shape read by ``ragtrail.providers`` into ragtrail's terms.

Each row is a payload as the provider's API documents it (a mapping; the SDKs' objects
are read the same way, by attribute) and the counts ragtrail stores: ``input_tokens`` is
the whole input (cached and written tokens included), ``output_tokens`` the whole output
(reasoning included).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from ragtrail.providers import (
    PARAM_SYNONYMS,
    anthropic_usage,
    bedrock_usage,
    gemini_usage,
    ollama_usage,
    openai_chat_usage,
    openai_responses_usage,
    openai_usage,
    rate_limit_info,
    request_id,
    request_parameters,
    response_fields,
    specific_params,
    usage_from_mapping,
)

USAGE_CASES: list[tuple[str, Any, Any, dict[str, int] | None, dict[str, int] | None]] = [
    ("openai chat", openai_chat_usage,
     {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
      "prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 8},
      "completion_tokens_details": {"reasoning_tokens": 12}},
     {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150, "cache_read_tokens": 100,
      "cache_creation_tokens": 8, "reasoning_tokens": 12}, None),
    ("openai chat, details flat (merged stream)", openai_chat_usage,
     {"prompt_tokens": 10, "completion_tokens": 2, "cached_tokens": 4},
     {"input_tokens": 10, "output_tokens": 2, "cache_read_tokens": 4}, None),
    ("openai responses", openai_responses_usage,
     {"input_tokens": 50, "output_tokens": 20, "total_tokens": 70,
      "input_tokens_details": {"cached_tokens": 32},
      "output_tokens_details": {"reasoning_tokens": 16}},
     {"input_tokens": 50, "output_tokens": 20, "total_tokens": 70, "cache_read_tokens": 32,
      "reasoning_tokens": 16}, None),
    ("openai (either API) picks the responses shape", openai_usage,
     {"input_tokens": 5, "output_tokens": 1}, {"input_tokens": 5, "output_tokens": 1}, None),
    ("anthropic with cache TTLs", anthropic_usage,
     {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 200,
      "cache_creation_input_tokens": 0,
      "cache_creation": {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 70}},
     {"input_tokens": 310, "output_tokens": 5, "total_tokens": 315, "cache_read_tokens": 200,
      "cache_creation_tokens": 100},
     {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 70}),
    ("anthropic without cache", anthropic_usage, {"input_tokens": 7, "output_tokens": 3},
     {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}, None),
    ("gemini", gemini_usage,
     {"prompt_token_count": 40, "candidates_token_count": 10, "thoughts_token_count": 6,
      "cached_content_token_count": 32, "total_token_count": 56},
     {"input_tokens": 40, "output_tokens": 16, "total_tokens": 56, "cache_read_tokens": 32,
      "reasoning_tokens": 6}, None),
    ("gemini JSON spelling", gemini_usage,
     {"promptTokenCount": 4, "candidatesTokenCount": 2},
     {"input_tokens": 4, "output_tokens": 2, "total_tokens": 6}, None),
    ("bedrock converse", bedrock_usage,
     {"inputTokens": 10, "outputTokens": 4, "totalTokens": 64,
      "cacheReadInputTokens": 30, "cacheWriteInputTokens": 20},
     {"input_tokens": 60, "output_tokens": 4, "total_tokens": 64, "cache_read_tokens": 30,
      "cache_creation_tokens": 20}, None),
    ("ollama", ollama_usage, {"prompt_eval_count": 26, "eval_count": 298, "done": True},
     {"input_tokens": 26, "output_tokens": 298, "total_tokens": 324}, None),
    ("mapping of unknown provider: openai chat", usage_from_mapping,
     {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
     {"input_tokens": 3, "output_tokens": 1, "total_tokens": 4}, None),
    ("mapping of unknown provider: anthropic, reported total kept", usage_from_mapping,
     {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 2, "total_tokens": 4},
     {"input_tokens": 5, "output_tokens": 1, "total_tokens": 4, "cache_read_tokens": 2}, None),
]


@pytest.mark.parametrize(("reader", "payload", "counts", "ttl"),
                         [case[1:] for case in USAGE_CASES], ids=[c[0] for c in USAGE_CASES])
def test_usage_shapes(reader: Any, payload: Any, counts: dict[str, int],
                      ttl: dict[str, int] | None) -> None:
    found = reader(payload)
    assert found is not None
    assert found.token_usage == counts
    assert found.cache_creation == ttl


FLAT_CASES = [c for c in USAGE_CASES if c[1] is not usage_from_mapping
              and all(not isinstance(v, dict) for v in c[2].values())]


@pytest.mark.parametrize(("reader", "payload", "counts"), [c[1:4] for c in FLAT_CASES],
                         ids=[c[0] for c in FLAT_CASES])
def test_sdk_objects_read_like_mappings(reader: Any, payload: dict[str, Any],
                                        counts: dict[str, int]) -> None:
    assert reader(SimpleNamespace(**payload)).token_usage == counts


@pytest.mark.parametrize("reader", [openai_chat_usage, openai_responses_usage, anthropic_usage,
                                    gemini_usage, bedrock_usage, ollama_usage])
@pytest.mark.parametrize("payload", [None, {}, {"input_tokens": -1, "prompt_tokens": "x"},
                                     {"done": True}])
def test_no_counts_is_no_usage(reader: Any, payload: Any) -> None:
    assert reader(payload) is None


PARAM_CASES = [
    ("synonym order decides, not mapping order", [{"max_new_tokens": 9, "max_tokens": 100}],
     {"max_tokens": 100}),
    ("openai new name", [{"max_completion_tokens": 64}], {"max_tokens": 64}),
    ("ollama", [{"num_predict": 32, "stop": "###"}], {"max_tokens": 32,
                                                     "stop_sequences": ["###"]}),
    ("call's own value beats the default", [{"temperature": 0.2}, {"temperature": 0.9,
                                                                   "top_p": 0.5}],
     {"temperature": 0.2, "top_p": 0.5}),
    ("None does not count", [{"model": None, "model_name": "m"}], {"model": "m"}),
    ("seed synonyms", [{"random_seed": 7}], {"seed": 7}),
]


@pytest.mark.parametrize(("sources", "expected"), [c[1:] for c in PARAM_CASES],
                         ids=[c[0] for c in PARAM_CASES])
def test_request_parameters(sources: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    found = request_parameters(*sources)
    assert set(found) == set(PARAM_SYNONYMS)
    assert {k: v for k, v in found.items() if v is not None} == expected


def test_specific_params_keep_what_is_neither_mapped_nor_secret() -> None:
    assert specific_params({"temperature": 1, "api_key": "sk", "tools": [], "logprobs": True,
                            "n": None}) == {"logprobs": True}
    assert specific_params({"model": "m"}) is None


HEADERS_CASES = [
    ("openai", {"X-Request-ID": "req_1"}, "req_1"),
    ("anthropic", {"request-id": "req_2"}, "req_2"),
    ("anthropic older", {"anthropic-request-id": "req_3"}, "req_3"),
    ("most specific first", {"request-id": "b", "x-request-id": "a"}, "a"),
    ("none", {"content-type": "json"}, None),
    ("not a mapping", None, None),
]


@pytest.mark.parametrize(("headers", "expected"), [c[1:] for c in HEADERS_CASES],
                         ids=[c[0] for c in HEADERS_CASES])
def test_request_id(headers: Any, expected: str | None) -> None:
    assert request_id(headers) == expected


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
RATE_CASES = [
    ("openai durations", {"x-ratelimit-limit-requests": "500",
                          "x-ratelimit-remaining-requests": "499",
                          "x-ratelimit-reset-requests": "6m0s",
                          "x-ratelimit-remaining-tokens": "1000",
                          "x-ratelimit-reset-tokens": "20ms"},
     {"requests_limit": 500, "requests_remaining": 499,
      "requests_reset_at": NOW + timedelta(minutes=6), "tokens_remaining": 1000,
      "tokens_reset_at": NOW + timedelta(milliseconds=20)}),
    ("anthropic RFC 3339", {"anthropic-ratelimit-tokens-limit": "80000",
                            "anthropic-ratelimit-tokens-reset": "2026-01-02T03:05:00Z"},
     {"tokens_limit": 80000,
      "tokens_reset_at": datetime(2026, 1, 2, 3, 5, tzinfo=timezone.utc)}),
    ("none", {"x-request-id": "r"}, None),
]


@pytest.mark.parametrize(("headers", "expected"), [c[1:] for c in RATE_CASES],
                         ids=[c[0] for c in RATE_CASES])
def test_rate_limits(headers: dict[str, str], expected: dict[str, Any] | None) -> None:
    assert rate_limit_info(headers, NOW) == expected


RESPONSE_CASES = [
    ("openai", {"finish_reason": "stop", "model_name": "gpt-4o-2024-08-06",
                "system_fingerprint": "fp_1", "id": "chatcmpl-1"}, {},
     {"finish_reason": "stop", "model_version": "gpt-4o-2024-08-06", "request_id": "chatcmpl-1",
      "system_fingerprint": "fp_1"}),
    ("anthropic: header id beats the body id", {"stop_reason": "end_turn", "model": "claude",
                                                "id": "msg_1",
                                                "headers": {"request-id": "req_9"}}, {},
     {"finish_reason": "end_turn", "model_version": "claude", "request_id": "req_9",
      "system_fingerprint": None}),
    ("ollama, model from the whole call", {"done_reason": "stop"}, {"model": "llama3",
                                                                    "id": "x"},
     {"finish_reason": "stop", "model_version": "llama3", "request_id": "x",
      "system_fingerprint": None}),
]


@pytest.mark.parametrize(("info", "fallback", "expected"), [c[1:] for c in RESPONSE_CASES],
                         ids=[c[0] for c in RESPONSE_CASES])
def test_response_fields(info: dict[str, Any], fallback: dict[str, Any],
                         expected: dict[str, Any]) -> None:
    assert response_fields(info, fallback) == expected
