"""``ragtrail replay`` of LlamaIndex tool-calling calls gives the request the client sent.

LlamaIndex's OpenAI and Anthropic clients (a ``FunctionAgent``, tools and tool results,
against the loopback provider server) send fields the canonical call does not model
(OpenAI: ``parallel_tool_calls``, the tools' ``strict``) and write the conversation
their own way (Anthropic: ``system: ""`` when there is none, text as blocks, tool
results without ``is_error``, one turn per role). The replayed request, sent with the
provider's own client, equals what the server received from the framework, as JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.llms import ChatMessage
from llama_index.core.tools import FunctionTool
from test_llamaindex_tools_provider import QUESTION, _llm, search_notes
from test_tools import _replay, _request, _send

from li_support import enable, reset_llamaindex
from provider_server import ProviderServer, serve_provider
from ragtrail import Trail

provider = pytest.fixture(name="provider")(serve_provider)


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_replay_equals_what_the_llamaindex_client_sent(
        client: str, provider: ProviderServer, tmp_path: Any) -> None:
    """With a system prompt (the agent without one, both forms: test_llamaindex_tools_provider)."""
    trail = Trail(f"sqlite:///{tmp_path}/t.db")
    handler = enable(trail, "instrument")
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=search_notes)],
                          llm=_llm(client, provider), streaming=False,
                          system_prompt="Answer from the engineering notes.")
    provider.tool_call_next("search_notes", {"topic": "wal"})
    await agent.run(user_msg=QUESTION)
    sent = [_request(r.body) for r in provider.requests[-2:]]
    assert trail.flush(10.0)
    calls = trail.lineage(str(handler.last_trace_id)).llm_calls
    assert len(calls) == 2
    for call, body in zip(calls, sent, strict=True):
        assert _send(client, provider, _replay(trail, call.run_id)) == body
    trail.close()


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_replay_of_a_plain_chat_without_system_message(
        client: str, provider: ProviderServer, tmp_path: Any) -> None:
    """No tools, no system message: Anthropic's LlamaIndex client still sends ``system``."""
    trail = Trail(f"sqlite:///{tmp_path}/t.db")
    handler = enable(trail, "instrument")
    _llm(client, provider).chat([ChatMessage(role="user", content=QUESTION)])
    sent = _request(provider.last(client).body)
    assert trail.flush(10.0)
    (call,) = trail.lineage(str(handler.last_trace_id)).llm_calls
    assert _send(client, provider, _replay(trail, call.run_id)) == sent
    trail.close()
