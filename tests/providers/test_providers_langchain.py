"""langchain-openai and langchain-anthropic, for real, against the fake provider server.

Each test makes the real client call 127.0.0.1 and asserts on what ragtrail STORED
(Trail + flush + lineage), compared with what the server received and answered.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import anthropic
import genai_prices
import httpx
import openai
import pytest
from genai_prices import data_snapshot
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_openai import ChatOpenAI

from provider_server import (
    ANSWER,
    ANTHROPIC_CACHE_TTL,
    ANTHROPIC_MODEL,
    ANTHROPIC_USAGE,
    EXPECTED_USAGE,
    MODEL_VERSIONS,
    OPENAI_MODEL,
    SYSTEM_FINGERPRINT,
    ProviderServer,
    Received,
    assert_http_error,
    assert_priced,
    genai_prices_total,
    module_trail,
    only_llm,
    reset_bounds,
    sent_parameters,
    serve_provider,
    utc_now,
)
from ragtrail import Trail
from ragtrail.query import Lineage
from ragtrail.schemas import LLMMetadata, PriceStatus, RunKind, RunStatus
from ragtrail_langchain import RagtrailCallbackHandler

provider = pytest.fixture(name="provider")(serve_provider)
trail = pytest.fixture(name="trail", scope="module")(module_trail)

QUESTION = "What does WAL change for readers?"
CLIENTS = ("openai", "anthropic")
MODES = ("invoke", "stream")
FINISH = {"openai": "stop", "anthropic": "end_turn"}
MODEL = {"openai": OPENAI_MODEL, "anthropic": ANTHROPIC_MODEL}


def chat_model(client: str, server: ProviderServer, **overrides: Any) -> BaseChatModel:
    """The real client, pointed at the server, with every parameter it can send set."""
    if client == "openai":
        openai_args: dict[str, Any] = {
            "model": OPENAI_MODEL, "base_url": server.openai_url, "api_key": "sk-test",
            "max_retries": 0, "timeout": 10, "include_response_headers": True,
            # With a base_url of its own, ChatOpenAI asks for no usage in streams unless told.
            "stream_usage": True, "temperature": 0.3, "top_p": 0.9, "max_tokens": 64,
            "stop": ["\n\n"], "seed": 7, "frequency_penalty": 0.1, "presence_penalty": 0.2,
        }
        return ChatOpenAI(**{**openai_args, **overrides})
    anthropic_args: dict[str, Any] = {
        "model": ANTHROPIC_MODEL, "base_url": server.url, "api_key": "sk-ant-test",
        "max_retries": 0, "default_request_timeout": 10, "temperature": 0.3, "top_p": 0.9,
        "top_k": 40, "max_tokens": 64, "stop": ["\n\n"],
    }
    return ChatAnthropic(**{**anthropic_args, **overrides})


def call(model: Any, mode: str, config: dict[str, Any]) -> str:
    if mode == "invoke":
        return str(model.invoke(QUESTION, config=config).content)
    return "".join(str(chunk.content) for chunk in model.stream(QUESTION, config=config))


async def acall(model: Any, mode: str, config: dict[str, Any]) -> str:
    if mode == "invoke":
        return str((await model.ainvoke(QUESTION, config=config)).content)
    return "".join([str(chunk.content) async for chunk in model.astream(QUESTION, config=config)])


def stored(trail: Trail, run_id: uuid.UUID) -> Lineage:
    assert trail.flush(10.0)
    return trail.lineage(str(run_id))


def expected_request_id(client: str, mode: str, received: Received) -> str | None:
    """What each client exposes: OpenAI's x-request-id with include_response_headers;
    langchain-anthropic only the message id, and nothing at all when streaming."""
    if client == "openai":
        return received.request_id
    return received.response_id if mode == "invoke" else None


def check_call(client: str, mode: str, answer: str, lineage: Lineage,
               received: Received) -> None:
    assert answer == ANSWER
    run = lineage.runs[0]
    assert (run.status, run.framework.value, run.name) == (
        RunStatus.OK, "langchain", "ChatOpenAI" if client == "openai" else "ChatAnthropic")
    meta = only_llm(lineage)
    assert (meta.provider, meta.provider_model) == (client, MODEL[client])
    assert received.streamed is (mode == "stream")
    # Tokens: exact, cached ones counted once.
    assert meta.token_usage == EXPECTED_USAGE[client]
    # Anthropic's cache writes by TTL: langchain-anthropic passes them on from a whole
    # message, not from a stream's message_delta (the API sends none there).
    assert_priced(meta, client, client, ttl_split=client == "anthropic" and mode == "invoke")
    # Parameters: each one stored is the one the server received, and only those.
    assert meta.request_parameters is not None
    assert meta.request_parameters.model_dump() == sent_parameters(received.body)
    response = meta.response_metadata
    assert response is not None
    assert response.finish_reason == FINISH[client]
    assert response.model_version == MODEL_VERSIONS[MODEL[client]]
    assert response.system_fingerprint == (SYSTEM_FINGERPRINT if client == "openai" else None)
    assert response.request_id == expected_request_id(client, mode, received)
    assert meta.output_text == ANSWER
    perf = meta.performance_metrics
    assert perf is not None and perf.total_duration_ms is not None
    assert perf.total_duration_ms > 0
    if mode == "stream":
        assert perf.time_to_first_token_ms is not None
        assert 0 < perf.time_to_first_token_ms <= perf.total_duration_ms
    else:
        assert perf.time_to_first_token_ms is None
    # Rate limits arrive only where the client exposes the response headers.
    if client == "openai":
        limits = meta.rate_limit_info
        assert limits is not None
        assert (limits.requests_limit, limits.requests_remaining, limits.tokens_limit,
                limits.tokens_remaining) == (10000, 9998, 200000, 198760)
        assert limits.requests_reset_at is not None and limits.tokens_reset_at is not None
    else:
        assert meta.rate_limit_info is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", CLIENTS)
def test_every_field_sync(client: str, mode: str, provider: ProviderServer,
                          trail: Trail) -> None:
    handler = RagtrailCallbackHandler(trail)
    rid = uuid.uuid4()
    answer = call(chat_model(client, provider), mode, {"callbacks": [handler], "run_id": rid})
    check_call(client, mode, answer, stored(trail, rid), provider.last())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", CLIENTS)
async def test_every_field_async(client: str, mode: str, provider: ProviderServer,
                                 trail: Trail) -> None:
    handler = RagtrailCallbackHandler(trail)
    rid = uuid.uuid4()
    answer = await acall(chat_model(client, provider), mode,
                         {"callbacks": [handler], "run_id": rid})
    check_call(client, mode, answer, stored(trail, rid), provider.last())


M = Decimal("0.000001")  # prices are per million tokens
# Hand-computed from the public price lists, bucket by bucket:
# gpt-4o-mini $0.15 input (cache writes too), $0.075 cached input, $0.60 output
# (reasoning included);
# claude-3-5-haiku $0.80 input, $0.08 cache read, $1.00 cache write (5 minutes),
# $1.60 cache write kept 1 hour, $4.00 output.
BY_HAND = {
    "openai": {"input_cost": (1200 - 1024 - 128) * Decimal("0.15") * M,
               "cache_read_cost": 1024 * Decimal("0.075") * M,
               # gpt-4o-mini has no cache-write price: writes are billed as input.
               "cache_write_cost": 128 * Decimal("0.15") * M,
               "output_cost": 40 * Decimal("0.60") * M,
               "total_cost": Decimal("0.0001272")},
    "anthropic": {"input_cost": 100 * Decimal("0.80") * M,
                  "cache_read_cost": 1000 * Decimal("0.08") * M,
                  "cache_write_cost": (150 * Decimal("1.00") + 50 * Decimal("1.60")) * M,
                  "output_cost": 50 * Decimal("4.00") * M,
                  "total_cost": Decimal("0.00059")},
}


@pytest.mark.parametrize("client", CLIENTS)
def test_cost_by_hand(client: str, provider: ProviderServer, trail: Trail) -> None:
    rid = uuid.uuid4()
    call(chat_model(client, provider), "invoke",
         {"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    cost = only_llm(stored(trail, rid)).cost_metrics
    assert cost is not None
    assert {name: getattr(cost, name) for name in BY_HAND[client]} == BY_HAND[client]
    assert (cost.currency, cost.reasoning_cost) == ("USD", None)  # not priced apart


@pytest.mark.parametrize("mode", MODES)
def test_openai_rate_limit_resets_are_timestamps(mode: str, provider: ProviderServer,
                                                 trail: Trail) -> None:
    rid = uuid.uuid4()
    before = utc_now()
    call(chat_model("openai", provider), mode,
         {"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    after = utc_now()
    limits = only_llm(stored(trail, rid)).rate_limit_info
    assert limits is not None and limits.requests_reset_at and limits.tokens_reset_at
    low, high = reset_bounds(before, after, 360.0)  # x-ratelimit-reset-requests: 6m0s
    assert low <= limits.requests_reset_at <= high
    low, high = reset_bounds(before, after, 0.372)  # x-ratelimit-reset-tokens: 372ms
    assert low <= limits.tokens_reset_at <= high
    assert limits.requests_reset_at - limits.tokens_reset_at == timedelta(seconds=359.628)


@pytest.mark.parametrize("mode", MODES)
def test_openai_without_response_headers(mode: str, provider: ProviderServer,
                                         trail: Trail) -> None:
    """Headers are opt-in: without them no rate limits, and the request id falls back to
    the completion id, which ChatOpenAI does not report when streaming."""
    rid = uuid.uuid4()
    model = chat_model("openai", provider, include_response_headers=False)
    call(model, mode, {"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    meta = only_llm(stored(trail, rid))
    assert meta.rate_limit_info is None
    assert meta.response_metadata is not None
    expected = provider.last().response_id if mode == "invoke" else None
    assert meta.response_metadata.request_id == expected
    assert meta.token_usage == EXPECTED_USAGE["openai"]


@pytest.mark.parametrize(("status", "retry_after_s"), [(429, 2.5), (500, None)])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", CLIENTS)
def test_http_errors(client: str, mode: str, status: int, retry_after_s: float | None,
                     provider: ProviderServer, trail: Trail) -> None:
    provider.fail_next(status, retry_after_s=retry_after_s)
    rid = uuid.uuid4()
    with pytest.raises((openai.APIStatusError, anthropic.APIStatusError)):
        call(chat_model(client, provider), mode,
             {"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    check_error(stored(trail, rid), client, status, retry_after_s)
    assert len(provider.requests) == 1  # max_retries=0: the SDK did not retry


@pytest.mark.parametrize("client", CLIENTS)
async def test_http_error_async(client: str, provider: ProviderServer,
                                trail: Trail) -> None:
    provider.fail_next(429, retry_after_s=7)
    rid = uuid.uuid4()
    with pytest.raises((openai.RateLimitError, anthropic.RateLimitError)):
        await acall(chat_model(client, provider), "stream",
                    {"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    check_error(stored(trail, rid), client, 429, 7.0)


def check_error(lineage: Lineage, client: str, status: int, retry_after_s: float | None) -> None:
    meta = assert_http_error(lineage, status, retry_after_s, MODEL[client])
    assert meta.provider == client
    assert meta.cost_metrics is not None and meta.cost_metrics.total_cost is None


@pytest.mark.parametrize("client", CLIENTS)
def test_malformed_body(client: str, provider: ProviderServer,
                        trail: Trail) -> None:
    provider.malformed_next()
    rid = uuid.uuid4()
    with pytest.raises(ValueError, match="Unterminated string"):
        call(chat_model(client, provider), "invoke",
             {"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    run = stored(trail, rid).runs[0]
    assert run.status is RunStatus.ERROR and run.error is not None
    assert run.error.type == "JSONDecodeError"
    # ChatOpenAI attaches the HTTP response (a 200) to errors it does not classify.
    assert run.error.http_status == (200 if client == "openai" else None)
    assert run.error.retry_after_s is None


@pytest.mark.parametrize("client", CLIENTS)
def test_runnable_retries_are_counted(client: str, provider: ProviderServer,
                                      trail: Trail) -> None:
    """``.with_retry`` retries a 429: one retry on the retrying run, both attempts kept."""
    provider.fail_next(429, retry_after_s=1)
    retried = chat_model(client, provider).with_retry(
        stop_after_attempt=3, wait_exponential_jitter=False,
        retry_if_exception_type=(openai.RateLimitError, anthropic.RateLimitError))
    rid = uuid.uuid4()
    answer = call(retried, "invoke", {"callbacks": [RagtrailCallbackHandler(trail)],
                                      "run_id": rid})
    assert answer == ANSWER
    lineage = stored(trail, rid)
    root = lineage.run(str(rid))
    assert (root.status, root.retries) == (RunStatus.OK, 1)
    attempts = [r for r in lineage.runs if r.kind is RunKind.LLM]
    assert [r.parent_id for r in attempts] == [str(rid)] * 2
    assert [r.status for r in attempts] == [RunStatus.ERROR, RunStatus.OK]
    assert attempts[0].error is not None
    assert (attempts[0].error.http_status, attempts[0].error.retry_after_s) == (429, 1.0)
    assert [r.status for r in provider.requests] == [429, 200]
    assert lineage.total_tokens == EXPECTED_USAGE[client].total_tokens  # the answered call only


def test_sdk_retries_are_below_callbacks(provider: ProviderServer,
                                         trail: Trail) -> None:
    """The OpenAI SDK's own retry (``max_retries``) happens inside one LangChain call:
    one run, ok, no retry counted (the README's capture table says so)."""
    provider.fail_next(429, retry_after_s=0.01)
    rid = uuid.uuid4()
    call(chat_model("openai", provider, max_retries=1), "invoke",
         {"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    lineage = stored(trail, rid)
    assert [(r.status, r.retries) for r in lineage.runs] == [(RunStatus.OK, 0)]
    assert [r.status for r in provider.requests] == [429, 200]
    assert provider.requests[1].headers.get("x-stainless-retry-count") == "1"


# -- Anthropic cache writes by time to live (issue 20, point 3) ----------------------------


def test_anthropic_cache_writes_keep_their_ttl_split(provider: ProviderServer,
                                                     trail: Trail) -> None:
    """langchain-anthropic reports ``cache_creation: 0`` beside the TTL buckets; ragtrail
    stores the true count, keeps the split and prices the 1h writes at their own rate."""
    rid = uuid.uuid4()
    message = chat_model("anthropic", provider).invoke(
        QUESTION, config={"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    # What the client itself reports (the shape that lost the writes).
    details = dict((message.usage_metadata or {}).get("input_token_details") or {})
    assert details == {"cache_read": 1000, "cache_creation": 0, **ANTHROPIC_CACHE_TTL}
    meta = only_llm(stored(trail, rid))
    usage, cost = meta.token_usage, meta.cost_metrics
    assert usage is not None and cost is not None
    assert usage.cache_creation_tokens == ANTHROPIC_USAGE["cache_creation_input_tokens"] == 200
    assert meta.provider_specific is not None
    assert meta.provider_specific["cache_creation"] == ANTHROPIC_CACHE_TTL
    # 150 writes at $1.00/MTok (5 minutes), 50 at $1.60/MTok (1 hour): genai-prices' rates.
    prices = data_snapshot.get_snapshot().find_provider_model(
        ANTHROPIC_MODEL, None, "anthropic", None)[1].get_prices(meta.request_timestamp)
    assert cost.cache_write_cost == (150 * prices.cache_write_mtok
                                     + 50 * prices.cache_write_1h_mtok) / 1_000_000
    assert cost.cache_write_1h_price_per_1k == prices.cache_write_1h_mtok / 1000
    assert cost.price_source == f"genai-prices {genai_prices.__version__}"
    assert cost.total_cost == genai_prices_total("anthropic", meta.request_timestamp)


# -- a chat model class of the user's own (issue 20, point 4) ------------------------------


class ChatInHouse(BaseChatModel):
    """A chat model written by the user, calling an OpenAI-compatible endpoint itself.

    It does not override ``_get_ls_params``, so LangChain names its provider after the
    class (``inhouse``); its responses name the model that answered.
    """

    model_name: str
    base_url: str

    @property
    def _llm_type(self) -> str:
        return "in-house"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        body = {"model": self.model_name,
                "messages": [{"role": "user", "content": str(m.content)} for m in messages]}
        answer = httpx.post(f"{self.base_url}/chat/completions", json=body, timeout=10).json()
        usage = answer["usage"]
        message = AIMessage(
            content=answer["choices"][0]["message"]["content"],
            usage_metadata={"input_tokens": usage["prompt_tokens"],
                            "output_tokens": usage["completion_tokens"],
                            "total_tokens": usage["total_tokens"],
                            "input_token_details": {
                                "cache_read": usage["prompt_tokens_details"]["cached_tokens"],
                                "cache_creation": usage["prompt_tokens_details"][
                                    "cache_write_tokens"]},
                            "output_token_details": {
                                "reasoning": usage["completion_tokens_details"][
                                    "reasoning_tokens"]}},
            response_metadata={"model_name": answer["model"],
                               "finish_reason": answer["choices"][0]["finish_reason"]})
        return ChatResult(generations=[ChatGeneration(message=message)])


def provenance(meta: LLMMetadata) -> dict[str, Any]:
    """Where the stored provider came from, as the provider specifics say."""
    specific = meta.provider_specific or {}
    return {k: specific[k] for k in ("provider_inferred", "provider_from_class")
            if k in specific}


def test_own_chat_model_naming_a_known_model_is_priced(provider: ProviderServer,
                                                       trail: Trail) -> None:
    rid = uuid.uuid4()
    model = ChatInHouse(model_name=OPENAI_MODEL, base_url=provider.openai_url)
    assert model._get_ls_params()["ls_provider"] == "inhouse"  # LangChain's class-name guess
    assert model.invoke(QUESTION, config={"callbacks": [RagtrailCallbackHandler(trail)],
                                          "run_id": rid}).content == ANSWER
    meta = only_llm(stored(trail, rid))
    assert provider.last().body["model"] == meta.provider_model == OPENAI_MODEL
    assert meta.provider == "openai"
    assert provenance(meta) == {
        "provider_inferred": {"model": OPENAI_MODEL, "by": "genai-prices"},
        "provider_from_class": "inhouse"}
    assert meta.token_usage == EXPECTED_USAGE["openai"]
    assert_priced(meta, "openai", "openai")  # == genai-prices' price of the server's usage
    rows = trail.usage(["provider"], since=meta.request_timestamp)
    assert ("openai", 1) in [(row.group["provider"], row.calls) for row in rows]


def test_own_chat_model_naming_an_unknown_model_is_not_guessed(provider: ProviderServer,
                                                               trail: Trail) -> None:
    rid = uuid.uuid4()
    ChatInHouse(model_name="acme-1", base_url=provider.openai_url).invoke(
        QUESTION, config={"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    meta = only_llm(stored(trail, rid))
    assert (meta.provider, meta.provider_model) == ("inhouse", "acme-1")
    assert provenance(meta) == {"provider_from_class": "inhouse"}  # no provider_inferred
    assert meta.token_usage == EXPECTED_USAGE["openai"]
    assert meta.cost_metrics is not None
    assert (meta.cost_metrics.price_status, meta.cost_metrics.total_cost) == (
        PriceStatus.UNKNOWN_MODEL, None)


@pytest.mark.parametrize("mode", MODES)
def test_openai_service_tier_usage_details(mode: str, provider: ProviderServer,
                                           trail: Trail) -> None:
    """On the priority and flex tiers langchain-openai prefixes its usage details with the
    tier ("priority_cache_read"); the cached, written and reasoning tokens are kept."""
    rid = uuid.uuid4()
    model = chat_model("openai", provider, service_tier="priority")
    call(model, mode, {"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    assert provider.last().body["service_tier"] == "priority"
    meta = only_llm(stored(trail, rid))
    assert meta.token_usage == EXPECTED_USAGE["openai"]


class ChatInHouseCached(BaseChatModel):
    """A chat model of the user's own whose responses report Anthropic-style cache
    writes by TTL (as langchain-anthropic puts them in ``input_token_details``)."""

    model_name: str

    @property
    def _llm_type(self) -> str:
        return "in-house-cached"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        message = AIMessage(
            content=ANSWER,
            usage_metadata={"input_tokens": 300, "output_tokens": 20, "total_tokens": 320,
                            "input_token_details": {
                                "cache_read": 0, "cache_creation": 200,
                                "ephemeral_5m_input_tokens": 150,
                                "ephemeral_1h_input_tokens": 50}},
            response_metadata={"model_name": self.model_name})
        return ChatResult(generations=[ChatGeneration(message=message)])


def test_own_chat_model_keeps_its_cache_writes_by_ttl_beside_the_class_guess(
        trail: Trail) -> None:
    """The class-name guess is added to the provider specifics the response's usage
    filled, not put in their place (it used to replace them: the TTL split was lost)."""
    rid = uuid.uuid4()
    ChatInHouseCached(model_name="acme-1").invoke(
        QUESTION, config={"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid})
    meta = only_llm(stored(trail, rid))
    specific = meta.provider_specific or {}
    assert specific.get("provider_from_class") == "inhousecached"
    assert specific.get("cache_creation") == {"ephemeral_5m_input_tokens": 150,
                                              "ephemeral_1h_input_tokens": 50}
    assert meta.token_usage.cache_creation_tokens == 200
