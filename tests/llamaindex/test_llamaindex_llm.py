"""LLM call metadata from LlamaIndex LLMs: usage shapes, response metadata, cost."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.prompts import PromptTemplate

from li_support import NamedMockLLM, UsageLLM, reset_llamaindex
from ragtrail import Trail
from ragtrail.schemas import PriceStatus, RunKind
from ragtrail_llamaindex import instrument


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


def _only_call(trail: Trail, trace_id: str | None) -> Any:
    assert trace_id is not None and trail.flush()
    lineage = trail.lineage(trace_id)
    (call,) = lineage.llm_calls
    return lineage, call.metadata


def test_openai_shaped_usage_with_cached_and_reasoning_tokens(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    llm = UsageLLM(shape="openai")
    llm.complete("What is WAL?", temperature=0.7, stop=["\n\n"])
    lineage, meta = _only_call(trail, handler.last_trace_id)
    assert [(r.kind, r.name) for r in lineage.runs] == [(RunKind.LLM, "UsageLLM.complete")]

    usage = meta.token_usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (1200, 40, 1240)
    assert (usage.cache_read_tokens, usage.reasoning_tokens) == (1024, 8)
    assert usage.cache_creation_tokens is None
    response = meta.response_metadata
    assert response.finish_reason == "stop"
    assert response.request_id == "req_123"
    assert response.system_fingerprint == "fp_test"
    assert response.model_version == "gpt-4o-mini-2024-07-18"
    assert meta.provider_model == "gpt-4o-mini"
    # A class outside llama_index.llms.<provider>: inferred from the model name, flagged.
    assert meta.provider == "openai"
    params = meta.request_parameters
    assert (params.model, params.temperature, params.max_tokens) == ("gpt-4o-mini", 0.7, 64)
    assert params.stop_sequences == ["\n\n"]
    assert meta.prompt_text == "What is WAL?" and meta.output_text == llm.answer
    assert meta.provider_specific == {
        "llm_class": "UsageLLM", "response_id": "chatcmpl-1",
        "provider_inferred": {"model": "gpt-4o-mini", "by": "genai-prices"}}
    cost = meta.cost_metrics
    assert cost.price_status is PriceStatus.PRICED
    # gpt-4o-mini: 176 uncached input at 0.15/M, 1024 cached at 0.075/M, 40 output at 0.6/M.
    assert cost.total_cost == Decimal("0.0000264") + Decimal("0.0000768") + Decimal("0.000024")
    trail.close()


def test_anthropic_shaped_usage_adds_cache_reads_and_writes_to_input(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    UsageLLM(shape="anthropic", model="claude-3-5-haiku-20241022").complete("What is WAL?")
    _, meta = _only_call(trail, handler.last_trace_id)
    usage = meta.token_usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (450, 20, 470)
    assert (usage.cache_read_tokens, usage.cache_creation_tokens) == (300, 50)
    assert meta.response_metadata.finish_reason == "end_turn"
    assert meta.response_metadata.request_id == "msg_01"  # no request id header: response id
    # 100 input at 0.8/M, 300 cache reads at 0.08/M, 50 cache writes at 1/M, 20 out at 4/M.
    assert meta.cost_metrics.total_cost == Decimal("0.000234")
    trail.close()


def test_anthropic_stream_usage_is_gathered_from_its_events(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    llm = UsageLLM(shape="anthropic", model="claude-3-5-haiku-20241022")
    text = "".join(chunk.delta for chunk in llm.stream_complete("What is WAL?"))
    _, meta = _only_call(trail, handler.last_trace_id)
    assert text == meta.output_text == llm.answer
    usage = meta.token_usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == (450, 20, 300)
    assert meta.response_metadata.finish_reason == "end_turn"
    perf = meta.performance_metrics
    assert perf.time_to_first_token_ms is not None and perf.tokens_per_second > 0
    assert meta.cost_metrics.total_cost == Decimal("0.000234")
    trail.close()


@pytest.mark.parametrize(("module", "provider"), [
    ("llama_index.llms.anthropic.base", "anthropic"),
    ("llama_index.llms.azure_openai.base", "azure"),
    # Serves any vendor's models: the provider is inferred from the model name.
    ("llama_index.llms.openai_like.base", "anthropic"),
])
def test_provider_comes_from_the_integration_package(sqlite_url: str, module: str,
                                                     provider: str | None) -> None:
    integration = type("Integration", (UsageLLM,), {"__module__": module})
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    integration(shape="anthropic", model="claude-3-5-haiku-20241022").complete("What is WAL?")
    _, meta = _only_call(trail, handler.last_trace_id)
    assert meta.provider == provider
    assert meta.provider_specific["llm_class"] == "Integration"
    assert ("provider_inferred" in meta.provider_specific) is module.endswith("openai_like.base")
    trail.close()


def test_token_counts_from_additional_kwargs(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    UsageLLM(shape="kwargs").complete("What is WAL?")
    _, meta = _only_call(trail, handler.last_trace_id)
    usage = meta.token_usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (90, 10, 100)
    assert meta.cost_metrics.price_status is PriceStatus.PRICED
    trail.close()


def test_mock_llm_usage_is_unknown_never_zero(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    NamedMockLLM().complete("What is WAL?")
    _, meta = _only_call(trail, handler.last_trace_id)
    assert meta.token_usage is None
    assert meta.cost_metrics.price_status is PriceStatus.NO_USAGE
    assert meta.cost_metrics.total_cost is None
    assert meta.cost_metrics.input_price_per_1k is not None  # the model is known
    trail.close()


def test_chat_call_keeps_messages_and_is_one_run(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    llm = UsageLLM()
    reply = llm.chat([ChatMessage(role="system", content="Be brief."),
                      ChatMessage(role="user", content="What is WAL?")])
    lineage, meta = _only_call(trail, handler.last_trace_id)
    # CustomLLM.chat calls self.complete: one model call, one run.
    assert [r.name for r in lineage.runs] == ["UsageLLM.chat"]
    assert meta.messages == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "What is WAL?"}]
    assert meta.output_text == reply.message.content
    assert meta.token_usage is not None and meta.token_usage.input_tokens == 1200
    trail.close()


def test_predict_keeps_the_template_on_its_llm_call(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    template = PromptTemplate("Answer briefly: {question}")
    UsageLLM().predict(template, question="What is WAL?")
    lineage, meta = _only_call(trail, handler.last_trace_id)
    assert [(r.kind.value, r.name) for r in lineage.runs] == [
        ("chain", "UsageLLM.predict"), ("llm", "UsageLLM.complete")]
    assert meta.prompt_template == "Answer briefly: {question}"
    assert meta.prompt_variables == {"question": "What is WAL?"}
    assert meta.prompt_template_hash is not None
    assert meta.prompt_text == "Answer briefly: What is WAL?"
    trail.close()


class KwargsLLM(UsageLLM):
    """An LLM with provider keyword arguments of its own (as OpenAI's and Anthropic's)."""

    additional_kwargs: dict[str, Any] = {"max_new_tokens": 9, "max_tokens": 100, "seed": 5,
                                         "top_p": 0.5}


def test_request_parameters_follow_the_core_synonyms_and_priority(sqlite_url: str) -> None:
    trail = Trail(sqlite_url)
    handler = instrument(trail)
    # Two names for max_tokens in the call itself: the first in the core's synonym list
    # wins, whatever the order given; the call's own values beat the LLM's kwargs, which
    # beat its attributes.
    KwargsLLM().complete("What is WAL?", num_predict=16, max_completion_tokens=32, top_p=0.9)
    _, meta = _only_call(trail, handler.last_trace_id)
    params = meta.request_parameters
    assert (params.max_tokens, params.top_p, params.seed, params.temperature) == (32, 0.9, 5,
                                                                                  0.2)
    trail.close()
