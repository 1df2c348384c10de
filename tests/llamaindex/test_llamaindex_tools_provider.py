"""A LlamaIndex ``FunctionAgent`` on the real OpenAI and Anthropic clients (against the
loopback provider server): tool definitions, tool calls and tool results stored as the
provider received them, the tool's documents in the answering call's prompt, and
``ragtrail replay`` giving the body the client sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.schema import NodeWithScore, TextNode
from llama_index.core.tools import FunctionTool
from llama_index.llms.anthropic import Anthropic
from llama_index.llms.openai import OpenAI
from test_tools import _replay, _request, _send

from li_support import enable, reset_llamaindex
from provider_server import ProviderServer, serve_provider
from ragtrail import Trail
from ragtrail.conventions import tool_definitions
from ragtrail.schemas import DocStage, RunKind

provider = pytest.fixture(name="provider")(serve_provider)

QUESTION = "What does WAL change for readers?"
NOTE = "Readers keep reading the last committed snapshot while one writer appends."


@pytest.fixture(autouse=True)
def _clean_llamaindex() -> Iterator[None]:
    yield from reset_llamaindex()


def search_notes(topic: str) -> list[NodeWithScore]:
    """Search the engineering notes about a topic."""
    return [NodeWithScore(node=TextNode(text=NOTE, id_="note-wal"), score=0.8)]


def _llm(client: str, server: ProviderServer) -> Any:
    if client == "openai":
        return OpenAI(model="gpt-4o-mini", api_base=server.openai_url, api_key="sk-test",
                      max_retries=0, timeout=10)
    return Anthropic(model="claude-3-5-haiku-latest", base_url=server.url,
                     api_key="sk-ant-test", max_retries=0, timeout=10)


@pytest.mark.parametrize("form", ["instrument", "classic"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
async def test_function_agent_tools_as_the_provider_received_them(
        client: str, form: str, provider: ProviderServer, tmp_path: Any) -> None:
    trail = Trail(f"sqlite:///{tmp_path}/t.db")
    handler = enable(trail, form)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=search_notes)],
                          llm=_llm(client, provider), streaming=False)
    call_id = provider.tool_call_next("search_notes", {"topic": "wal"})
    result = await agent.run(user_msg=QUESTION)
    first, second = (_request(r.body) for r in provider.requests[-2:])
    assert trail.flush(10.0)
    lineage = trail.lineage(str(handler.last_trace_id))
    assert lineage.runs[0].kind is RunKind.AGENT
    assert (lineage.question, lineage.answer) == (QUESTION, str(result))
    asked, answered = lineage.llm_calls
    # What was offered and asked for, in the canonical shape, as the server received it.
    assert asked.metadata.tools == tool_definitions(first["tools"])
    assert [t["name"] for t in asked.metadata.tools or ()] == ["search_notes"]
    assert asked.metadata.tool_choice == first.get("tool_choice")
    assert asked.metadata.tool_calls == [{"id": call_id, "name": "search_notes",
                                          "arguments": {"topic": "wal"}}]
    # The tool result went back under its tool_call_id, and is stored so.
    tool_messages = [m for m in answered.metadata.messages or [] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [call_id]
    assert call_id in str(second["messages"]) and NOTE in str(second["messages"])
    # The tool's document: retrieved by the tool run, in the answering call's prompt.
    (tool,) = [r for r in lineage.runs if r.kind is RunKind.TOOL]
    assert tool.name == "search_notes"
    stages = {(d.run_id, d.stage) for d in lineage.documents if d.document_id == "note-wal"}
    assert stages == {(tool.id, DocStage.RETRIEVED), (answered.run_id, DocStage.IN_PROMPT)}
    # Replay: the provider's own client sends what LlamaIndex's client sent, as JSON
    # (its unmodelled parameters and request style included: test_llamaindex_replay.py).
    for call, sent in ((asked, first), (answered, second)):
        assert _send(client, provider, _replay(trail, call.run_id)) == sent
    trail.close()

