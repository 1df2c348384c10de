"""The framework-free conventions (messages, tools) and the Recorder rules built on them:
in_prompt only for answering LLM calls, ids of copied documents, pieces' source ids."""

from __future__ import annotations

from typing import Any

import pytest

from ragtrail.capture import SOURCE_ID_KEY, DocumentInput, Recorder
from ragtrail.conventions import (
    answer_from_messages,
    question_from_messages,
    tool_call_list,
    tool_definition_hash,
    tool_definitions,
)
from ragtrail.schemas import ROLE_KEY, CapturedRun, DocStage, RunKind, StepRole
from ragtrail.sink import ListSink

KEPT = "SQLite WAL mode lets readers proceed while a single writer appends to the log."
DROPPED = "VACUUM rebuilds the SQLite database file and reclaims free pages."


@pytest.mark.parametrize("state", [
    {"messages": [{"role": "user", "content": "What is WAL?"}]},
    {"messages": [["user", "What is WAL?"]]},
    {"messages": [{"type": "human", "content": [{"type": "text", "text": "What is WAL?"}]}]},
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "older"},
     {"role": "assistant", "content": "old answer"}, {"role": "user", "content": "What is WAL?"}],
])
def test_the_question_is_the_last_user_message(state: Any) -> None:
    assert question_from_messages(state) == "What is WAL?"


def test_the_answer_is_the_last_assistant_message_that_is_not_a_tool_call() -> None:
    state = {"messages": [
        {"role": "user", "content": "What is WAL?"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "retrieve", "args": {}}]},
        {"role": "tool", "content": KEPT, "tool_call_id": "call_1"},
        {"role": "assistant", "content": "Readers go on while one writer appends."},
    ]}
    assert answer_from_messages(state) == "Readers go on while one writer appends."
    # A run that ended on a tool call has no answer, and an earlier turn's is not it.
    unfinished = {"messages": [{"role": "user", "content": "q1"},
                               {"role": "assistant", "content": "a1"},
                               {"role": "user", "content": "q2"},
                               {"role": "assistant", "content": "let me look",
                                "tool_calls": [{"name": "retrieve", "args": {}}]}]}
    assert answer_from_messages(unfinished) is None
    assert question_from_messages({"question": "not messages"}) is None


def test_tool_definitions_and_calls_have_one_shape_whatever_the_provider() -> None:
    schema = {"type": "object", "properties": {"query": {"type": "string"}}}
    openai = [{"type": "function", "function": {"name": "retrieve", "description": "Find.",
                                                "parameters": schema}}]
    anthropic = [{"name": "retrieve", "description": "Find.", "input_schema": schema}]
    assert tool_definitions(openai) == tool_definitions(anthropic) == [
        {"name": "retrieve", "description": "Find.", "parameters": schema}]
    assert (tool_definition_hash(tool_definitions(openai)[0])  # type: ignore[index]
            == tool_definition_hash({"parameters": schema, "description": "Find.",
                                     "name": "retrieve"}))
    calls = [
        [{"id": "c1", "type": "function", "function": {"name": "retrieve",
                                                        "arguments": '{"query": "wal"}'}}],
        [{"name": "retrieve", "args": {"query": "wal"}, "id": "c1", "type": "tool_call"}],
        {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "retrieve",
                                           "input": {"query": "wal"}}]},
        [{"tool_id": "c1", "tool_name": "retrieve", "tool_kwargs": {"query": "wal"}}],
    ]
    for raw in calls:
        assert tool_call_list(raw) == [{"id": "c1", "name": "retrieve",
                                        "arguments": {"query": "wal"}}]
    assert tool_definitions("retrieve") is None and tool_call_list({"content": "x"}) is None


def _prompt(*texts: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "\n\n".join(texts)}]}


def _links(sink: ListSink, stage: DocStage) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for record in sink.records:
        assert isinstance(record, CapturedRun)
        for link in record.links:
            if link.stage is stage:
                found.setdefault(record.run.id, []).append(link.document_id)
    return found


@pytest.mark.parametrize("step", [
    {"kind": RunKind.RERANKER},
    {"kind": RunKind.RETRIEVER},
    {"kind": RunKind.PARSER},
    {"kind": RunKind.CHAIN, "metadata": {ROLE_KEY: StepRole.EVALUATOR.value}},
])
def test_documents_only_reach_the_prompt_of_an_answering_call(step: dict[str, Any]) -> None:
    sink = ListSink()
    rec = Recorder(sink)
    rec.start_run("root", kind=RunKind.CHAIN, name="rag")
    rec.start_run("ret", kind=RunKind.RETRIEVER, name="retriever", parent_id="root")
    rec.add_documents("ret", [DocumentInput(KEPT, "doc-kept"), DocumentInput(DROPPED, "doc-drop")],
                      stage=DocStage.RETRIEVED)
    rec.end_run("ret")
    rec.start_run("step", name="step", parent_id="root", **step)
    rec.start_run("step-llm", kind=RunKind.LLM, name="judge", parent_id="step")
    assert not rec.is_answering("step-llm")
    rec.update_llm("step-llm", _prompt(KEPT, DROPPED))  # the step's LLM saw both
    rec.end_run("step-llm")
    rec.end_run("step")
    rec.start_run("answer", kind=RunKind.LLM, name="chat", parent_id="root")
    assert rec.is_answering("answer")
    rec.update_llm("answer", _prompt(KEPT))
    rec.end_run("answer")
    rec.end_run("root")
    assert _links(sink, DocStage.IN_PROMPT) == {"answer": ["doc-kept"]}


def test_a_copy_keeps_the_id_and_a_piece_names_its_source() -> None:
    sink = ListSink()
    rec = Recorder(sink)
    rec.start_run("root", kind=RunKind.RETRIEVER, name="compression")
    rec.start_run("base", kind=RunKind.RETRIEVER, name="base", parent_id="root")
    rec.add_documents("base", [DocumentInput(KEPT, "doc-kept")], stage=DocStage.RETRIEVED)
    rec.end_run("base")
    piece = KEPT.split(" while ")[0]
    rec.add_documents("root", [DocumentInput(KEPT, None, input_rank=0),  # a copy, id dropped
                               DocumentInput(piece, None, input_rank=0, source_id="doc-kept")],
                      stage=DocStage.RERANKED)
    rec.end_run("root")
    root = next(r for r in sink.records if isinstance(r, CapturedRun) and r.run.id == "root")
    assert [link.document_id for link in root.links] == ["doc-kept", "doc-kept"]
    assert [link.input_rank for link in root.links] == [0, 0]
    piece_doc = next(d for d in root.documents if d.content == piece)
    assert piece_doc.metadata[SOURCE_ID_KEY] == "doc-kept"


@pytest.mark.parametrize(("inputs", "outputs", "question", "answer"), [
    # A chain with a history beside its question: the question key wins, not the history.
    ({"question": "Q", "chat_history": [{"role": "user", "content": "old"}]},
     {"answer": "A", "chat_history": [{"role": "assistant", "content": "old answer"}]},
     "Q", "A"),
    ("Q", "A", "Q", "A"),
    ({"messages": [{"role": "user", "content": "Q"}]},
     {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
     "Q", "A"),
    ({"messages": [("user", "Q")]},
     {"messages": [{"role": "user", "content": "Q"},
                   {"role": "assistant", "content": "", "tool_calls": [{"name": "t"}]}]},
     "Q", None),
])
def test_question_and_answer_of_a_root(inputs: Any, outputs: Any, question: str,
                                       answer: str | None) -> None:
    from ragtrail.testing.internals import answer_of, question_of

    assert (question_of(inputs), answer_of(outputs)) == (question, answer)


def test_client_request_fields_keep_wire_parameters_not_transport_or_secrets() -> None:
    from ragtrail.conventions.requests import provider_request
    from ragtrail.providers import REQUEST_EXTRA, REQUEST_STYLE, client_request_fields
    from ragtrail.schemas import LLMMetadata

    fields = client_request_fields(
        "llama_index.llms.anthropic.base",
        {"user": "u-1", "extra_headers": {"Authorization": "Bearer s"}, "api_key": "k"},
        {"parallel_tool_calls": True, "tools": [{"name": "t"}], "tool_choice": "auto",
         "timeout": 3.0, "stream": True, "callback": object()})
    assert fields == {REQUEST_EXTRA: {"user": "u-1", "parallel_tool_calls": True},
                      REQUEST_STYLE: "llamaindex-anthropic"}
    assert client_request_fields("llama_index.llms.anthropic_like", {}) == {}
    meta = LLMMetadata(provider="openai", provider_model="gpt-4o-mini",
                       messages=[{"role": "user", "content": "hi"}],
                       provider_specific={REQUEST_EXTRA: {"parallel_tool_calls": False,
                                                          "model": "other"}})
    body = provider_request(meta)
    assert body["parallel_tool_calls"] is False and body["model"] == "gpt-4o-mini"
    assert "parallel_tool_calls" not in provider_request(meta, "anthropic")
