"""Time to first token and tokens per second from real streaming clients.

The server holds the first streamed event back by a known delay (after sending the
headers, like a model thinking before its first token), so the stored time to first
token must be at least that delay, and not much more. These are the only timing
assertions the provider issue asks for; they are marked ``reliability``.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

import httpx
import pytest
from langchain_anthropic import ChatAnthropic
from langchain_openai import ChatOpenAI
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.callbacks import CallbackManager
from llama_index.llms.anthropic import Anthropic
from llama_index.llms.openai import OpenAI

from provider_server import (
    ANSWER,
    ANTHROPIC_MODEL,
    EXPECTED_USAGE,
    OPENAI_MODEL,
    ProviderServer,
    module_trail,
    serve_provider,
)
from ragtrail import Trail
from ragtrail.schemas import LLMMetadata
from ragtrail_langchain import RagtrailCallbackHandler
from ragtrail_llamaindex import RagtrailHandler

provider = pytest.fixture(name="provider")(serve_provider)
trail = pytest.fixture(name="trail", scope="module")(module_trail)

DELAY_S = 0.4


def langchain_stream(client: str, server: ProviderServer, trail: Trail) -> LLMMetadata:
    model: Any
    if client == "openai":
        model = ChatOpenAI(model=OPENAI_MODEL, base_url=server.openai_url, api_key="sk-test",
                           max_retries=0, timeout=10, stream_usage=True)
    else:
        model = ChatAnthropic(model=ANTHROPIC_MODEL, base_url=server.url, api_key="sk-test",
                              max_retries=0, default_request_timeout=10)
    rid = uuid.uuid4()
    config: Any = {"callbacks": [RagtrailCallbackHandler(trail)], "run_id": rid}
    assert "".join(str(c.content) for c in model.stream("Why WAL?", config=config)) == ANSWER
    assert trail.flush(10.0)
    return trail.lineage(str(rid)).llm_calls[0].metadata


def llamaindex_stream(client: str, server: ProviderServer, trail: Trail) -> LLMMetadata:
    handler = RagtrailHandler(trail)
    llm: Any
    if client == "openai":
        llm = OpenAI(model=OPENAI_MODEL, api_base=server.openai_url, api_key="sk-test",
                     max_retries=0, timeout=10, callback_manager=CallbackManager([handler]),
                     additional_kwargs={"stream_options": {"include_usage": True}})
    else:
        llm = Anthropic(model=ANTHROPIC_MODEL, base_url=server.url, api_key="sk-test",
                        max_retries=0, timeout=10, callback_manager=CallbackManager([handler]))
    stream = llm.stream_chat([ChatMessage(role="user", content="Why WAL?")])
    assert "".join(part.delta or "" for part in stream) == ANSWER
    assert trail.flush(10.0) and handler.last_trace_id is not None
    return trail.lineage(handler.last_trace_id).llm_calls[0].metadata


@pytest.mark.reliability
@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("framework", ["langchain", "llamaindex"])
def test_time_to_first_token(framework: str, client: str, provider: ProviderServer,
                             trail: Trail) -> None:
    provider.first_chunk_delay_s = DELAY_S
    stream = langchain_stream if framework == "langchain" else llamaindex_stream
    meta = stream(client, provider, trail)
    assert meta.streamed is True
    perf = meta.performance_metrics
    assert perf is not None
    ttft, total = perf.time_to_first_token_ms, perf.total_duration_ms
    assert ttft is not None and total is not None
    # What must hold whatever the machine's load (no wall-clock ceiling): the first token
    # cannot arrive before the server sent it, and it arrives before the stream ends
    # (the server spaces out the remaining events).
    assert ttft >= DELAY_S * 1000
    assert total > ttft
    # Tokens per second: output tokens over the time spent after the first token.
    output = EXPECTED_USAGE[client].output_tokens
    assert meta.token_usage is not None and meta.token_usage.output_tokens == output
    assert perf.tokens_per_second == pytest.approx(output / ((total - ttft) / 1000), rel=1e-6)


def test_nothing_leaves_the_machine(provider: ProviderServer) -> None:
    """The fixture refuses every address beyond loopback at once (no client may hang on a
    download, e.g. tiktoken's), while the server itself stays reachable."""
    with pytest.raises(socket.gaierror, match="offline"):
        socket.getaddrinfo("provider.invalid", 443)
    with pytest.raises(httpx.ConnectError, match="offline"):
        httpx.get("https://provider.invalid/v1/models", timeout=5)
    answered = httpx.post(f"{provider.openai_url}/chat/completions",
                          json={"model": OPENAI_MODEL, "messages": []}, timeout=5)
    assert answered.json()["usage"]["prompt_tokens"] == 1200
