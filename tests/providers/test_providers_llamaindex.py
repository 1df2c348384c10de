"""LlamaIndex's OpenAI, OpenAILike and Anthropic LLMs, for real, against the fake provider.

The handler is the classic one (``RagtrailHandler`` in the LLM's callback manager); each
test asserts on what ragtrail STORED, compared with what the server received and answered.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.callbacks import CallbackManager
from llama_index.core.llms import LLM, CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.llms.anthropic import Anthropic
from llama_index.llms.openai import OpenAI
from llama_index.llms.openai_like import OpenAILike

from provider_server import (
    ANSWER,
    ANTHROPIC_CACHE_TTL,
    ANTHROPIC_MODEL,
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
    sent_parameters,
    serve_provider,
)
from ragtrail import Trail
from ragtrail.query import Lineage
from ragtrail.schemas import PriceStatus, RunStatus
from ragtrail_llamaindex import RagtrailHandler

provider = pytest.fixture(name="provider")(serve_provider)
trail = pytest.fixture(name="trail", scope="module")(module_trail)

QUESTION = "What does WAL change for readers?"
CLIENTS = ("openai", "openai_like", "anthropic")
MODES = ("chat", "stream_chat", "complete", "stream_complete")
API = {"openai": "openai", "openai_like": "openai", "anthropic": "anthropic"}
# OpenAILike serves any vendor's models: the client names no provider, so it is inferred
# from the model name (genai-prices knows gpt-4o-mini as OpenAI's), and flagged.
PROVIDER = {"openai": "openai", "openai_like": "openai", "anthropic": "anthropic"}
INFERRED = {"openai_like": {"model": OPENAI_MODEL, "by": "genai-prices"}}
MODEL = {"openai": OPENAI_MODEL, "anthropic": ANTHROPIC_MODEL}
FINISH = {"openai": "stop", "anthropic": "end_turn"}


def make_llm(client: str, server: ProviderServer, handler: RagtrailHandler) -> LLM:
    """The real client, pointed at the server, with every parameter it can send set."""
    common: dict[str, Any] = {"api_key": "sk-test", "max_retries": 0, "timeout": 10,
                              "temperature": 0.3, "max_tokens": 64,
                              "callback_manager": CallbackManager([handler])}
    # OpenAI streams report usage only when asked (the clients drop it when not streaming).
    sampling = {"top_p": 0.9, "seed": 7, "stop": ["\n\n"], "frequency_penalty": 0.1,
                "presence_penalty": 0.2, "stream_options": {"include_usage": True}}
    if client == "openai":
        return OpenAI(model=OPENAI_MODEL, api_base=server.openai_url,
                      additional_kwargs=sampling, **common)
    if client == "openai_like":
        return OpenAILike(model=OPENAI_MODEL, api_base=server.openai_url, is_chat_model=True,
                          context_window=128_000, additional_kwargs=sampling, **common)
    return Anthropic(model=ANTHROPIC_MODEL, base_url=server.url,
                     additional_kwargs={"top_p": 0.9, "top_k": 40, "stop_sequences": ["\n\n"]},
                     **common)


def call(llm: LLM, mode: str) -> str:
    messages = [ChatMessage(role="user", content=QUESTION)]
    if mode == "chat":
        return str(llm.chat(messages).message.content)
    if mode == "complete":
        return llm.complete(QUESTION).text
    stream: Any = llm.stream_chat(messages) if mode == "stream_chat" \
        else llm.stream_complete(QUESTION)
    return "".join(part.delta or "" for part in stream)


async def acall(llm: LLM, mode: str) -> str:
    messages = [ChatMessage(role="user", content=QUESTION)]
    if mode == "chat":
        return str((await llm.achat(messages)).message.content)
    if mode == "complete":
        return (await llm.acomplete(QUESTION)).text
    stream: Any = await llm.astream_chat(messages) if mode == "stream_chat" \
        else await llm.astream_complete(QUESTION)
    return "".join([part.delta or "" async for part in stream])


def stored(trail: Trail, handler: RagtrailHandler) -> Lineage:
    assert trail.flush(10.0)
    assert handler.last_trace_id is not None
    return trail.lineage(handler.last_trace_id)


def expected_ids(client: str, streamed: bool, received: Received) -> tuple[str | None, ...]:
    """(model version, request id) as each client exposes them.

    OpenAI responses carry the x-request-id; stream chunks do not, so the completion id
    stands in. LlamaIndex's Anthropic keeps the message as a dict (its request id is
    lost, the message id stands in) and never yields ``message_start`` when streaming,
    so neither id nor model version arrives then.
    """
    api = API[client]
    version = MODEL_VERSIONS[MODEL[api]]
    if api == "openai":
        return version, received.response_id if streamed else received.request_id
    return (None, None) if streamed else (version, received.response_id)


def check_call(client: str, mode: str, answer: str, lineage: Lineage,
               received: Received) -> None:
    api = API[client]
    streamed = mode.startswith("stream")
    assert answer == ANSWER
    run = lineage.runs[0]
    assert (run.status, run.framework.value) == (RunStatus.OK, "llamaindex")
    meta = only_llm(lineage)
    assert (meta.provider, meta.provider_model) == (PROVIDER[client], MODEL[api])
    assert (meta.provider_specific or {}).get("provider_inferred") == INFERRED.get(client)
    assert received.streamed is streamed
    assert meta.token_usage == EXPECTED_USAGE[api]
    # The TTL split of Anthropic's cache writes is in a whole message's usage; a stream's
    # message_delta has none (and the client never hands message_start on).
    assert_priced(meta, api, PROVIDER[client], ttl_split=api == "anthropic" and not streamed)
    assert meta.request_parameters is not None
    assert meta.request_parameters.model_dump() == sent_parameters(received.body)
    response = meta.response_metadata
    assert response is not None
    assert response.finish_reason == FINISH[api]
    assert (response.model_version, response.request_id) == expected_ids(client, streamed,
                                                                         received)
    assert response.system_fingerprint == (SYSTEM_FINGERPRINT if api == "openai" else None)
    assert meta.output_text == ANSWER
    assert meta.rate_limit_info is None  # no LlamaIndex client exposes response headers
    perf = meta.performance_metrics
    assert perf is not None and perf.total_duration_ms is not None
    if streamed:
        assert perf.time_to_first_token_ms is not None
        assert 0 < perf.time_to_first_token_ms <= perf.total_duration_ms
    else:
        assert perf.time_to_first_token_ms is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", CLIENTS)
def test_every_field_sync(client: str, mode: str, provider: ProviderServer,
                          trail: Trail) -> None:
    handler = RagtrailHandler(trail)
    answer = call(make_llm(client, provider, handler), mode)
    check_call(client, mode, answer, stored(trail, handler), provider.last())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("client", CLIENTS)
async def test_every_field_async(client: str, mode: str, provider: ProviderServer,
                                 trail: Trail) -> None:
    handler = RagtrailHandler(trail)
    answer = await acall(make_llm(client, provider, handler), mode)
    check_call(client, mode, answer, stored(trail, handler), provider.last())


ERRORS = (openai.APIStatusError, anthropic.APIStatusError)


@pytest.mark.parametrize(("status", "retry_after_s"), [(429, 2.5), (500, None)])
@pytest.mark.parametrize("mode", ["chat", "stream_chat"])
@pytest.mark.parametrize("client", CLIENTS)
def test_http_errors(client: str, mode: str, status: int, retry_after_s: float | None,
                     provider: ProviderServer, trail: Trail) -> None:
    provider.fail_next(status, retry_after_s=retry_after_s)
    handler = RagtrailHandler(trail)
    with pytest.raises(ERRORS):
        call(make_llm(client, provider, handler), mode)
    check_error(stored(trail, handler), client, status, retry_after_s)
    assert len(provider.requests) == 1  # max_retries=0: neither SDK nor LlamaIndex retried


@pytest.mark.parametrize("client", CLIENTS)
async def test_http_error_async(client: str, provider: ProviderServer,
                                trail: Trail) -> None:
    provider.fail_next(429, retry_after_s=7)
    handler = RagtrailHandler(trail)
    with pytest.raises(ERRORS):
        await acall(make_llm(client, provider, handler), "stream_chat")
    check_error(stored(trail, handler), client, 429, 7.0)


def check_error(lineage: Lineage, client: str, status: int, retry_after_s: float | None) -> None:
    meta = assert_http_error(lineage, status, retry_after_s, MODEL[API[client]])
    assert meta.provider == PROVIDER[client]
    assert (meta.provider_specific or {}).get("provider_inferred") == INFERRED.get(client)
    assert meta.cost_metrics is not None and meta.cost_metrics.total_cost is None


@pytest.mark.parametrize("client", CLIENTS)
def test_malformed_body(client: str, provider: ProviderServer,
                        trail: Trail) -> None:
    provider.malformed_next()
    handler = RagtrailHandler(trail)
    with pytest.raises(ValueError, match="Unterminated string"):
        call(make_llm(client, provider, handler), "chat")
    run = stored(trail, handler).runs[0]
    assert run.status is RunStatus.ERROR and run.error is not None
    assert (run.error.type, run.error.http_status) == ("JSONDecodeError", None)


# -- Anthropic cache writes by time to live (issue 20, point 3) ----------------------------


def test_anthropic_cache_writes_keep_their_ttl_split(provider: ProviderServer,
                                                     trail: Trail) -> None:
    handler = RagtrailHandler(trail)
    response = make_llm("anthropic", provider, handler).chat(
        [ChatMessage(role="user", content=QUESTION)])
    # What the client hands on: the API's usage object, split by TTL.
    raw_usage = response.raw["usage"]
    assert raw_usage.cache_creation.model_dump() == ANTHROPIC_CACHE_TTL
    meta = only_llm(stored(trail, handler))
    assert meta.token_usage is not None and meta.cost_metrics is not None
    assert meta.token_usage.cache_creation_tokens == raw_usage.cache_creation_input_tokens == 200
    assert (meta.provider_specific or {})["cache_creation"] == ANTHROPIC_CACHE_TTL
    assert meta.cost_metrics.total_cost == genai_prices_total("anthropic",
                                                              meta.request_timestamp)


# -- an LLM class of the user's own (issue 20, point 4) ------------------------------------


class InHouseLLM(CustomLLM):
    """A LlamaIndex LLM written by the user, calling an OpenAI-compatible endpoint itself."""

    model: str
    base_url: str

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model, is_chat_model=False)

    def _post(self, prompt: str) -> dict[str, Any]:
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}]}
        answer: dict[str, Any] = httpx.post(f"{self.base_url}/chat/completions", json=body,
                                            timeout=10).json()
        return answer

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        answer = self._post(prompt)
        return CompletionResponse(text=answer["choices"][0]["message"]["content"], raw=answer)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False,
                        **kwargs: Any) -> CompletionResponseGen:
        answer = self._post(prompt)
        yield CompletionResponse(text=answer["choices"][0]["message"]["content"],
                                 delta=answer["choices"][0]["message"]["content"], raw=answer)


def test_own_llm_naming_a_known_model_is_priced(provider: ProviderServer,
                                                trail: Trail) -> None:
    handler = RagtrailHandler(trail)
    llm = InHouseLLM(model=OPENAI_MODEL, base_url=provider.openai_url,
                     callback_manager=CallbackManager([handler]))
    assert llm.complete(QUESTION).text == ANSWER
    meta = only_llm(stored(trail, handler))
    assert provider.last().body["model"] == meta.provider_model == OPENAI_MODEL
    assert meta.provider == "openai"
    assert meta.provider_specific is not None
    assert meta.provider_specific["provider_inferred"] == {"model": OPENAI_MODEL,
                                                           "by": "genai-prices"}
    assert meta.provider_specific["llm_class"] == "InHouseLLM"
    assert meta.token_usage == EXPECTED_USAGE["openai"]
    assert_priced(meta, "openai", "openai")  # == genai-prices' price of the server's usage


def test_own_llm_naming_an_unknown_model_is_not_guessed(provider: ProviderServer,
                                                        trail: Trail) -> None:
    handler = RagtrailHandler(trail)
    InHouseLLM(model="acme-1", base_url=provider.openai_url,
               callback_manager=CallbackManager([handler])).complete(QUESTION)
    meta = only_llm(stored(trail, handler))
    assert (meta.provider, meta.provider_model) == (None, "acme-1")
    assert "provider_inferred" not in (meta.provider_specific or {})
    assert meta.token_usage == EXPECTED_USAGE["openai"]
    assert meta.cost_metrics is not None
    assert (meta.cost_metrics.price_status, meta.cost_metrics.total_cost) == (
        PriceStatus.UNKNOWN_MODEL, None)
