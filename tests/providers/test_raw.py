"""Table tests: raw provider responses of unknown shape, and LangChain's normalised usage,
read by ``ragtrail.providers`` into ragtrail's terms (what the adapters hand over whole)."""

from __future__ import annotations

import enum
from types import SimpleNamespace
from typing import Any

import pytest

from ragtrail.providers import (
    checked_parameters,
    merge_counts,
    raw_response_fields,
    standard_usage,
    top_level_counts,
    usage_counts,
    usage_from_counts,
)


def _obj(**fields: Any) -> SimpleNamespace:
    """An SDK object: fields read as attributes, nested objects too."""
    return SimpleNamespace(**{k: _obj(**v) if isinstance(v, dict) else v
                              for k, v in fields.items()})


RAW_USAGE_CASES: list[tuple[str, Any, dict[str, int] | None, dict[str, int] | None]] = [
    ("openai chat completion (SDK object)",
     _obj(id="chatcmpl-1", usage={"prompt_tokens": 120, "completion_tokens": 30,
                                  "total_tokens": 150,
                                  "prompt_tokens_details": {"cached_tokens": 100},
                                  "completion_tokens_details": {"reasoning_tokens": 12}}),
     {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150, "cache_read_tokens": 100,
      "reasoning_tokens": 12}, None),
    ("openai responses API (dict)",
     {"usage": {"input_tokens": 50, "output_tokens": 20, "total_tokens": 70,
                "input_tokens_details": {"cached_tokens": 32}}},
     {"input_tokens": 50, "output_tokens": 20, "total_tokens": 70, "cache_read_tokens": 32},
     None),
    ("anthropic message with cache TTLs",
     {"usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 200,
                "cache_creation_input_tokens": 100,
                "cache_creation": {"ephemeral_5m_input_tokens": 30,
                                   "ephemeral_1h_input_tokens": 70}}},
     {"input_tokens": 310, "output_tokens": 5, "total_tokens": 315, "cache_read_tokens": 200,
      "cache_creation_tokens": 100},
     {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 70}),
    ("anthropic stream's message_start (usage under message)",
     _obj(type="message_start", message={"usage": {"input_tokens": 9, "output_tokens": 1}}),
     {"input_tokens": 9, "output_tokens": 1, "total_tokens": 10}, None),
    ("gemini (usage_metadata, thinking billed as output)",
     {"usage_metadata": {"prompt_token_count": 40, "candidates_token_count": 10,
                         "thoughts_token_count": 6, "total_token_count": 56}},
     {"input_tokens": 40, "output_tokens": 16, "total_tokens": 56, "reasoning_tokens": 6},
     None),
    ("ollama (counts on the response itself)",
     {"model": "llama3", "prompt_eval_count": 26, "eval_count": 298, "done": True},
     {"input_tokens": 26, "output_tokens": 298, "total_tokens": 324}, None),
    ("no usage", {"id": "x", "choices": []}, None, None),
    ("None", None, None, None),
]


@pytest.mark.parametrize(("raw", "counts", "ttl"), [c[1:] for c in RAW_USAGE_CASES],
                         ids=[c[0] for c in RAW_USAGE_CASES])
def test_raw_usage(raw: Any, counts: dict[str, int] | None,
                   ttl: dict[str, int] | None) -> None:
    found = usage_from_counts(usage_counts(raw))
    if counts is None:
        assert found is None
        return
    assert found is not None
    assert found.token_usage == counts
    assert found.cache_creation == ttl


def test_a_stream_merges_its_chunks_later_counts_win() -> None:
    start = usage_counts({"message": {"usage": {"input_tokens": 9, "output_tokens": 1,
                                                "cache_read_input_tokens": 4}}})
    delta = usage_counts({"type": "message_delta", "usage": {"output_tokens": 42}})
    merged: dict[str, int] = {}
    for chunk in (start, delta):
        merge_counts(merged, chunk)
    found = usage_from_counts(merged)
    assert found is not None
    assert found.token_usage == {"input_tokens": 13, "output_tokens": 42, "total_tokens": 55,
                                 "cache_read_tokens": 4}


def test_counts_are_read_leniently_and_negatives_dropped() -> None:
    assert usage_counts({"usage": {"prompt_tokens": "12", "completion_tokens": -1,
                                   "total_tokens": True}}) == {"prompt_tokens": 12}


def test_top_level_counts_ignore_nested_details() -> None:
    kwargs = {"prompt_tokens": 3, "completion_tokens": 1,
              "prompt_tokens_details": {"cached_tokens": 2}, "other": 5}
    assert top_level_counts(kwargs) == {"prompt_tokens": 3, "completion_tokens": 1}


class _Reason(enum.Enum):
    STOP = 1


RESPONSE_CASES: list[tuple[str, Any, dict[str, str]]] = [
    ("openai chat (SDK keeps the request id header)",
     SimpleNamespace(id="chatcmpl-1", model="gpt-4o-2024-08-06", system_fingerprint="fp_1",
                     choices=[SimpleNamespace(finish_reason="stop")], _request_id="req_9"),
     {"finish_reason": "stop", "model_version": "gpt-4o-2024-08-06", "request_id": "req_9",
      "system_fingerprint": "fp_1"}),
    ("anthropic message: the response id stands for the request id",
     {"id": "msg_1", "model": "claude-sonnet-4-5", "stop_reason": "end_turn"},
     {"finish_reason": "end_turn", "model_version": "claude-sonnet-4-5",
      "request_id": "msg_1"}),
    ("anthropic stream's message_delta", {"type": "message_delta",
                                          "delta": {"stop_reason": "tool_use"}},
     {"finish_reason": "tool_use"}),
    ("gemini (enum finish reason, response_id, model_version)",
     {"response_id": "r-1", "model_version": "gemini-2.5-flash",
      "candidates": [{"finish_reason": _Reason.STOP}]},
     {"finish_reason": "STOP", "model_version": "gemini-2.5-flash", "request_id": "r-1"}),
    ("ollama", {"model": "llama3", "done_reason": "stop", "done": True},
     {"finish_reason": "stop", "model_version": "llama3"}),
    ("nothing", None, {}),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in RESPONSE_CASES],
                         ids=[c[0] for c in RESPONSE_CASES])
def test_raw_response_fields(raw: Any, expected: dict[str, str]) -> None:
    assert raw_response_fields(raw) == expected


class _Hostile:
    @property
    def usage(self) -> Any:
        raise RuntimeError("a property that raises")

    model = "m-1"
    eval_count = 7


def test_a_raising_property_costs_its_value_only() -> None:
    assert usage_counts(_Hostile()) == {"eval_count": 7}
    assert raw_response_fields(_Hostile()) == {"model_version": "m-1"}


STANDARD_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, int] | None]] = [
    ("openai through langchain",
     {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150,
      "input_token_details": {"cache_read": 100}, "output_token_details": {"reasoning": 12}},
     {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150, "cache_read_tokens": 100,
      "cache_creation_tokens": None, "reasoning_tokens": 12}, None),
    ("service tier prefix (langchain-openai)",
     {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12,
      "input_token_details": {"priority_cache_read": 8},
      "output_token_details": {"flex_reasoning": 1}},
     {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12, "cache_read_tokens": 8,
      "cache_creation_tokens": None, "reasoning_tokens": 1}, None),
    ("anthropic's writes by TTL beside cache_creation: 0 (langchain-anthropic)",
     {"input_tokens": 310, "output_tokens": 5, "total_tokens": 315,
      "input_token_details": {"cache_read": 200, "cache_creation": 0,
                              "ephemeral_5m_input_tokens": 30,
                              "ephemeral_1h_input_tokens": 70}},
     {"input_tokens": 310, "output_tokens": 5, "total_tokens": 315, "cache_read_tokens": 200,
      "cache_creation_tokens": 100, "reasoning_tokens": None},
     {"ephemeral_5m_input_tokens": 30, "ephemeral_1h_input_tokens": 70}),
]


@pytest.mark.parametrize(("usage", "fields", "ttl"), [c[1:] for c in STANDARD_CASES],
                         ids=[c[0] for c in STANDARD_CASES])
def test_standard_usage(usage: dict[str, Any], fields: dict[str, Any],
                        ttl: dict[str, int] | None) -> None:
    assert standard_usage(usage) == (fields, ttl)


PARAM_CHECK_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("numbers kept, a number in a string read",
     {"temperature": "0.5", "top_p": 1, "max_tokens": 256, "seed": "7"},
     {"temperature": 0.5, "top_p": 1.0, "max_tokens": 256, "seed": 7}),
    ("a bool, a negative count and a non-number left out",
     {"temperature": True, "max_tokens": -1, "top_k": "many"}, {}),
    ("stop sequences: a list of strings", {"stop_sequences": ("###", "END")},
     {"stop_sequences": ["###", "END"]}),
    ("stop sequences: anything else left out", {"stop_sequences": ["ok", 3]}, {}),
    ("the model and None values", {"model": "gpt-4o", "temperature": None},
     {"model": "gpt-4o"}),
]


@pytest.mark.parametrize(("values", "expected"), [c[1:] for c in PARAM_CHECK_CASES],
                         ids=[c[0] for c in PARAM_CHECK_CASES])
def test_checked_parameters(values: dict[str, Any], expected: dict[str, Any]) -> None:
    assert checked_parameters(values) == expected
