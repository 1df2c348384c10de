"""Tools and tool calls as data: per LLM call the tool definitions offered, tool_choice,
the tool calls the model made and tool results with their tool_call_id, with the real
ChatOpenAI and ChatAnthropic clients against the loopback provider server; and
``ragtrail replay --format request`` giving a body the provider's own client sends
unchanged."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from click.testing import CliRunner
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from test_providers_langchain import chat_model

from provider_server import ProviderServer, module_trail, serve_provider
from ragtrail import Trail
from ragtrail.cli import cli
from ragtrail.conventions import tool_definitions
from ragtrail.schemas import LLMMetadata
from ragtrail_langchain import RagtrailCallbackHandler

provider = pytest.fixture(name="provider")(serve_provider)
trail = pytest.fixture(name="trail", scope="module")(module_trail)

QUESTION = "What does WAL change for readers?"
RESULT = "Source: doc-wal\nContent: SQLite WAL mode lets readers proceed while one writer appends."


@tool
def search_notes(query: str, k: int = 2) -> str:
    """Search the engineering notes."""
    return RESULT


@tool
def get_weather(city: str) -> str:
    """Weather in a city."""
    return "sunny"


def _stored_call(trail: Trail, rid: uuid.UUID) -> tuple[str, LLMMetadata]:
    assert trail.flush(10.0)
    (call,) = trail.lineage(str(rid)).llm_calls
    return call.run_id, call.metadata


def _replay(trail: Trail, run_id: str, fmt: str = "request") -> dict[str, Any]:
    db = trail.url
    result = CliRunner().invoke(cli, ["replay", run_id, "--db", db, "--format", fmt],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    body: dict[str, Any] = json.loads(result.stdout)
    return body


#: Transport, not the request: the replayed body asks for no stream, whatever the call did.
_TRANSPORT = ("stream", "stream_options")


def _request(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _TRANSPORT}


def _send(client: str, provider: ProviderServer, body: dict[str, Any]) -> dict[str, Any]:
    """Send ``body`` with the provider's own client, unchanged; what the server got."""
    if client == "openai":
        import openai

        openai.OpenAI(base_url=provider.openai_url, api_key="sk-test",
                      max_retries=0).chat.completions.create(**body)
    else:
        import anthropic

        anthropic.Anthropic(base_url=provider.url, api_key="sk-ant-test",
                            max_retries=0).messages.create(**body)
    return _request(provider.last(client).body)


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_tool_definitions_calls_and_results_are_data_and_replay_unchanged(
        client: str, provider: ProviderServer, trail: Trail) -> None:
    model = chat_model(client, provider).bind_tools([search_notes, get_weather],
                                                   tool_choice="search_notes")
    handler = RagtrailCallbackHandler(trail)
    # 1. The model asks for a tool.
    call_id = provider.tool_call_next("search_notes", {"query": "WAL readers", "k": 2})
    rid = uuid.uuid4()
    asked = model.invoke([HumanMessage(QUESTION)], config={"callbacks": [handler],
                                                           "run_id": rid})
    first = _request(provider.last(client).body)
    run_id, meta = _stored_call(trail, rid)
    assert meta.tool_calls == [{"id": call_id, "name": "search_notes",
                                "arguments": {"query": "WAL readers", "k": 2}}]
    offered = tool_definitions(first["tools"])
    assert meta.tools == offered and [t["name"] for t in offered or ()] == [
        "search_notes", "get_weather"]
    assert meta.tool_choice == first["tool_choice"]
    assert _send(client, provider, _replay(trail, run_id)) == first
    # 2. The tool result goes back; the model answers.
    history = [HumanMessage(QUESTION), asked, ToolMessage(RESULT, tool_call_id=call_id)]
    rid = uuid.uuid4()
    model.invoke(history, config={"callbacks": [handler], "run_id": rid})
    second = _request(provider.last(client).body)
    run_id, meta = _stored_call(trail, rid)
    messages = meta.messages or []
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == call_id
    assert messages[2]["tool_call_id"] == call_id and meta.tool_calls is None
    replayed = _replay(trail, run_id)
    assert _send(client, provider, replayed) == second
    # The other format is built from the same stored call.
    other = "anthropic" if client == "openai" else "openai"
    assert _send(other, provider, _replay(trail, run_id, other))["messages"]


def test_show_and_lineage_print_each_calls_tool_calls(provider: ProviderServer,
                                                      trail: Trail) -> None:
    model = chat_model("openai", provider).bind_tools([search_notes])
    call_id = provider.tool_call_next("search_notes", {"query": "WAL"})
    rid = uuid.uuid4()
    model.invoke(QUESTION, config={"callbacks": [RagtrailCallbackHandler(trail)],
                                   "run_id": rid})
    assert trail.flush(10.0)
    db = trail.url
    for command in ("show", "lineage"):
        out = CliRunner().invoke(cli, [command, str(rid), "--db", db],
                                 catch_exceptions=False, terminal_width=200).stdout
        assert "search_notes" in out and call_id in out, out


def test_each_distinct_tool_definition_is_stored_once(provider: ProviderServer,
                                                      db_url: str) -> None:
    import sqlalchemy as sa
    from pydantic_core import from_json

    from ragtrail.schemas.flat import FlatRecord, flatten

    model = chat_model("openai", provider).bind_tools([search_notes, get_weather])
    with Trail(db_url) as own:
        handler = RagtrailCallbackHandler(own)
        rids = [uuid.uuid4() for _ in range(3)]
        for rid in rids:
            model.invoke(QUESTION, config={"callbacks": [handler], "run_id": rid})
        assert own.flush(10.0)
        with own.store.engine.connect() as conn:
            stored_tools = conn.execute(sa.text(
                "SELECT name FROM tool_definitions ORDER BY name")).scalars().all()
            raw = conn.execute(sa.text("SELECT metadata FROM llm_calls")).scalars().all()
        assert stored_tools == ["get_weather", "search_notes"]  # 3 calls, 2 definitions
        for value in raw:  # each call keeps references, not the schemas
            tools = (json.loads(value) if isinstance(value, str) else value)["tools"]
            assert [set(t) for t in tools] == [{"name", "definition_hash"}] * 2
        offered = tool_definitions(provider.last("openai").body["tools"])
        for rid in rids:
            (call,) = own.lineage(str(rid)).llm_calls
            assert call.metadata.tools == offered  # read back whole
    # A record spooled to disk (flat form) keeps them too.
    lineage_call = call
    from ragtrail.schemas import CapturedRun

    record = CapturedRun.model_validate({"run": own_run(lineage_call.run_id),
                                         "llm": lineage_call.metadata.model_dump()})
    back = FlatRecord.from_data(from_json(flatten(record).to_json())).to_record()
    assert back.llm is not None and back.llm.tools == offered


def own_run(run_id: str) -> dict[str, Any]:
    from datetime import datetime, timezone

    return {"id": run_id, "trace_id": run_id, "path": run_id, "kind": "llm",
            "started_at": datetime.now(timezone.utc)}
