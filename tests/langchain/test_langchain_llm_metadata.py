"""LLM metadata from other provider shapes: Anthropic-style usage and headers, stop
sequences, placeholders in templates, tool calls in messages, duration parsing."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder, PromptTemplate

from lc_support import open_trail, stored
from ragtrail import Trail
from ragtrail.pricing import Pricer
from ragtrail.providers import parse_duration_s, rate_limit_info
from ragtrail.schemas import content_hash
from ragtrail_langchain import RagtrailCallbackHandler

trail = pytest.fixture(name="trail")(open_trail)

RESET = "2026-01-01T00:00:30Z"


class FakeAnthropicChat(BaseChatModel):
    """Reports usage only in llm_output, Anthropic's way (cache counted apart)."""

    model: str = "claude-3-5-haiku-latest"
    top_k: int = 40

    @property
    def _llm_type(self) -> str:
        return "fake-anthropic-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "top_k": self.top_k, "max_tokens": 1024,
                "temperature": "warm",  # a bad value costs its field only
                "stop_sequences": None}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(ls_provider="anthropic", ls_model_name=self.model,
                               ls_model_type="chat", ls_stop=stop)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        message = AIMessage(content="Done.", response_metadata={
            "id": "msg_01", "model": "claude-3-5-haiku-20241022", "stop_reason": "end_turn",
            "headers": {"request-id": "req_01",
                        "anthropic-ratelimit-requests-limit": "50",
                        "anthropic-ratelimit-requests-remaining": "49",
                        "anthropic-ratelimit-requests-reset": RESET,
                        "anthropic-ratelimit-tokens-limit": "40000",
                        "anthropic-ratelimit-tokens-remaining": "39000",
                        "anthropic-ratelimit-tokens-reset": RESET}})
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
                      "cache_creation_input_tokens": 20}})


def test_anthropic_style_usage_headers_and_stop(trail: Trail) -> None:
    rid = uuid.uuid4()
    FakeAnthropicChat().invoke("hi", stop=["\n\nHuman:"], config={
        "callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    (call,) = stored(trail, rid).llm_calls
    meta = call.metadata
    assert (meta.provider, meta.provider_model) == ("anthropic", "claude-3-5-haiku-latest")
    usage = meta.token_usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens,
            usage.cache_read_tokens, usage.cache_creation_tokens) == (130, 5, 135, 100, 20)
    params = meta.request_parameters
    assert params is not None
    assert (params.model, params.top_k, params.max_tokens, params.stop_sequences,
            params.temperature) == ("claude-3-5-haiku-latest", 40, 1024, ["\n\nHuman:"], None)
    response = meta.response_metadata
    assert response is not None
    assert (response.finish_reason, response.model_version, response.request_id) == (
        "end_turn", "claude-3-5-haiku-20241022", "req_01")
    limits = meta.rate_limit_info
    reset = datetime(2026, 1, 1, 0, 0, 30, tzinfo=timezone.utc)
    assert limits is not None
    assert (limits.requests_limit, limits.requests_remaining, limits.requests_reset_at,
            limits.tokens_limit, limits.tokens_remaining, limits.tokens_reset_at) == (
        50, 49, reset, 40000, 39000, reset)
    assert meta.cost_metrics == Pricer().cost(usage, model="claude-3-5-haiku-latest",
                                              provider="anthropic", at=meta.request_timestamp)


class GarbageUsageChat(FakeAnthropicChat):
    """A provider reporting impossible counts and headers that are not a mapping."""

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        message = AIMessage(content="Done.", response_metadata={
            "id": "msg_02", "stop_reason": "end_turn", "headers": "not a mapping"})
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={
            "usage": {"input_tokens": 12, "output_tokens": 2**70}})


def test_impossible_provider_data_costs_those_fields_not_the_call(trail: Trail) -> None:
    rid = uuid.uuid4()
    GarbageUsageChat().invoke("hi", config={"callbacks": [RagtrailCallbackHandler(trail)],
                                            "run_id": rid})
    (call,) = stored(trail, rid).llm_calls  # stored, not dead-lettered by the database
    meta = call.metadata
    assert meta.token_usage is not None
    assert (meta.token_usage.input_tokens, meta.token_usage.output_tokens) == (12, None)
    assert meta.response_metadata is not None
    assert (meta.response_metadata.finish_reason, meta.response_metadata.request_id) == (
        "end_turn", "msg_02")
    assert trail.stats()["writer"]["dead_lettered"] == 0


def test_template_with_placeholder_and_tool_messages(trail: Trail) -> None:
    prompt = ChatPromptTemplate.from_messages([
        ("system", "You are terse."), MessagesPlaceholder("history"), ("human", "{question}")])
    history = [
        HumanMessage("look up WAL"),
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"term": "WAL"}, "id": "call_1"}]),
        ToolMessage("write-ahead logging", tool_call_id="call_1"),
    ]
    rid = uuid.uuid4()
    (prompt | FakeAnthropicChat()).invoke(
        {"history": history, "question": "And in one word?"},
        config={"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    (call,) = stored(trail, rid).llm_calls
    meta = call.metadata
    template = "system: You are terse.\n{{history}}\nhuman: {question}"
    assert meta.prompt_template == template
    assert meta.prompt_template_hash == content_hash(template)
    assert meta.prompt_variables is not None
    assert meta.prompt_variables["question"] == "And in one word?"
    messages = meta.messages or []
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "user"]
    assert messages[2]["tool_calls"] == [{"id": "call_1", "name": "lookup", "arguments": {"term": "WAL"}}]
    assert messages[3]["tool_call_id"] == "call_1"


def test_prompt_template_of_a_string_prompt(trail: Trail) -> None:
    rid = uuid.uuid4()
    (PromptTemplate.from_template("Summarise: {text}") | FakeAnthropicChat()).invoke(
        {"text": "WAL"}, config={"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    (call,) = stored(trail, rid).llm_calls
    assert call.metadata.prompt_template == "Summarise: {text}"
    assert call.metadata.prompt_variables == {"text": "WAL"}
    assert [m["content"] for m in call.metadata.messages or []] == ["Summarise: WAL"]


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


@given(st.lists(st.tuples(st.sampled_from(list(_UNITS)), st.integers(0, 10_000)),
                min_size=1, max_size=4, unique_by=lambda part: part[0]))
def test_go_durations(parts: list[tuple[str, int]]) -> None:
    text = "".join(f"{value}{unit}" for unit, value in parts)
    expected = sum(value * _UNITS[unit] for unit, value in parts)
    assert parse_duration_s(text) == pytest.approx(expected)


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1.5s", 1.5), ("2h", 7200.0),
    ("0.25", 0.25), ("", None), ("soon", None), ("5 s", None), ("1x", None)])
def test_duration_examples(text: str, seconds: float | None) -> None:
    assert parse_duration_s(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_reset_durations_are_absolute_utc() -> None:
    # Checked end to end in test_langchain_rag; here the arithmetic on a fixed clock.
    now = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    info = rate_limit_info({"X-RateLimit-Reset-Requests": "6m0s",
                            "x-ratelimit-reset-tokens": "20ms",
                            "x-ratelimit-remaining-tokens": "n/a"}, now)
    assert info == {"requests_reset_at": now + timedelta(minutes=6),
                    "tokens_reset_at": now + timedelta(milliseconds=20)}
    assert rate_limit_info({"content-type": "application/json"}, now) is None


def test_a_model_that_names_only_the_answering_model_is_grouped_under_it(trail: Trail) -> None:
    # A wrapper that exposes no model parameter (LangChain's own fake, many custom
    # chat models): the response's model name becomes the call's model, so usage by
    # model does not lump it under "unknown"; an unknown provider stays unpriced.
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel

    answer = AIMessage(content="", response_metadata={"model_name": "gpt-4o-mini",
                                                      "finish_reason": "tool_calls"},
                       tool_calls=[{"name": "lookup", "args": {"term": "wal"}, "id": "c1"}],
                       usage_metadata={"input_tokens": 10, "output_tokens": 5,
                                       "total_tokens": 15})
    rid = uuid.uuid4()
    FakeMessagesListChatModel(responses=[answer]).invoke(
        "what is wal?", config={"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    (call,) = stored(trail, rid).llm_calls
    assert call.metadata.provider_model == "gpt-4o-mini"
    assert call.metadata.response_metadata is not None
    assert call.metadata.response_metadata.finish_reason == "tool_calls"
    assert call.metadata.cost_metrics is not None
    assert call.metadata.cost_metrics.price_status == "unknown_model"
    rows = trail.usage(group_by="model")
    assert [(row.group["model"], row.calls) for row in rows] == [("gpt-4o-mini", 1)]
