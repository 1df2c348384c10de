"""The span mapping on records as the writer hands them over (validated, or read back
from its spool), and tool calls and tool runs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from ragtrail.export import SpanOptions, to_spans, views_from_records
from ragtrail.schemas import (
    CapturedRun,
    DocStage,
    Document,
    DocumentLink,
    LLMMetadata,
    LLMTokenUsage,
    Run,
    RunKind,
)
from ragtrail.schemas.flat import flatten

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _records() -> list[CapturedRun]:
    doc = Document.from_text("Refunds take 5 days.", document_id="kb-7",
                             metadata={"source": "https://kb.example/refunds"})
    root = Run(id="r", trace_id="r", path="0", name="agent", kind=RunKind.AGENT,
               started_at=T0, ended_at=T0 + timedelta(seconds=2))
    calls = [{"id": "call_1", "type": "function",
              "function": {"name": "lookup_order", "arguments": '{"order": "A1"}'}}]
    llm = LLMMetadata(
        provider="openai", provider_model="gpt-4o-mini",
        token_usage=LLMTokenUsage(input_tokens=120, output_tokens=9, total_tokens=129,
                                  cache_read_tokens=100),
        messages=[{"role": "user", "content": "Where is A1?"},
                  {"role": "assistant", "content": "", "tool_calls": calls},
                  {"role": "tool", "content": "shipped", "tool_call_id": "call_1"}],
        output_text="It shipped.")
    chat = Run(id="c", trace_id="r", parent_id="r", path="0.1", name="ChatOpenAI",
               kind=RunKind.LLM, started_at=T0, ended_at=T0 + timedelta(seconds=1))
    tool = Run(id="t", trace_id="r", parent_id="r", path="0.2", name="lookup_order",
               kind=RunKind.TOOL, started_at=T0, ended_at=T0, inputs={"order": "A1"},
               outputs="shipped", metadata={"tool_call_id": "call_1"})
    link = DocumentLink(run_id="c", trace_id="r", content_hash=doc.content_hash,
                        document_id="kb-7", stage=DocStage.IN_PROMPT, rank=0)
    return [CapturedRun(run=root), CapturedRun(run=chat, llm=llm, documents=[doc], links=[link]),
            CapturedRun(run=tool)]


def _attrs(records: list) -> dict[str, dict]:
    return {s.attributes["ragtrail.run.id"]: dict(s.attributes)
            for s in to_spans(views_from_records(records), SpanOptions())}


def test_spooled_records_map_like_validated_ones() -> None:
    records = _records()
    assert _attrs([flatten(r) for r in records]) == _attrs(records)


def test_tool_calls_and_tool_runs() -> None:
    spans = _attrs(_records())
    chat = spans["c"]
    prefix = "llm.input_messages.1.message.tool_calls.0.tool_call"
    assert chat[f"{prefix}.function.name"] == "lookup_order"
    assert chat[f"{prefix}.function.arguments"] == '{"order": "A1"}'
    assert chat[f"{prefix}.id"] == "call_1"
    assert chat["llm.input_messages.2.message.tool_call_id"] == "call_1"
    genai = json.loads(chat["gen_ai.input.messages"])
    assert genai[1]["parts"] == [{"type": "tool_call", "id": "call_1", "name": "lookup_order",
                                  "arguments": '{"order": "A1"}'}]
    assert genai[2]["parts"][0]["type"] == "tool_call_response"
    assert chat["gen_ai.usage.cache_read.input_tokens"] == 100
    assert chat["llm.token_count.prompt_details.cache_read"] == 100
    assert chat["ragtrail.documents.in_prompt.0.document.id"] == "kb-7"
    tool = spans["t"]
    assert tool["openinference.span.kind"] == "TOOL" and tool["tool.name"] == "lookup_order"
    assert tool["gen_ai.operation.name"] == "execute_tool"
    assert tool["gen_ai.tool.call.id"] == "call_1" and tool["tool.id"] == "call_1"
    assert json.loads(tool["gen_ai.tool.call.arguments"]) == {"order": "A1"}
    assert tool["gen_ai.tool.call.result"] == "shipped"
    agent = spans["r"]
    assert agent["openinference.span.kind"] == "AGENT" and agent["agent.name"] == "agent"
    assert agent["gen_ai.operation.name"] == "invoke_agent"


def test_no_content_drops_tool_arguments_and_results() -> None:
    spans = {s.attributes["ragtrail.run.id"]: dict(s.attributes)
             for s in to_spans(views_from_records(_records()),
                               SpanOptions(include_content=False))}
    assert "gen_ai.tool.call.arguments" not in spans["t"]
    assert "gen_ai.tool.call.result" not in spans["t"]
    assert "A1" not in json.dumps(spans)
    assert spans["t"]["gen_ai.tool.name"] == "lookup_order"


def test_a_tool_run_returning_a_tool_message_names_the_call_it_answered() -> None:
    """LangChain stores a tool run's ToolMessage as its output (``tool_call_id`` there,
    not in the metadata): the span still says which call it answered."""
    tool = Run(id="t", trace_id="t", path="0", name="lookup_order", kind=RunKind.TOOL,
               started_at=T0, ended_at=T0, inputs={"order": "A1"},
               outputs={"role": "tool", "content": "shipped", "name": "lookup_order",
                        "tool_call_id": "call_9"})
    plain = tool.model_copy(update={"id": "p", "trace_id": "p", "outputs": "shipped"})
    spans = _attrs([CapturedRun(run=tool), CapturedRun(run=plain)])
    assert spans["t"]["gen_ai.tool.call.id"] == "call_9" and spans["t"]["tool.id"] == "call_9"
    assert "gen_ai.tool.call.id" not in spans["p"] and "tool.id" not in spans["p"]
