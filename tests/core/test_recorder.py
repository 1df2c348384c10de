"""The Recorder through its public API, with an in-memory sink."""

from __future__ import annotations

import math
import threading
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragtrail.capture import (
    CaptureConfig,
    DocumentInput,
    Recorder,
    register_converter,
    register_parent_provider,
)
from ragtrail.errors import ConfigError
from ragtrail.guard import error_counter
from ragtrail.redaction import RedactionConfig, Redactor
from ragtrail.schemas import (
    CapturedRun,
    DocStage,
    LLMCostMetrics,
    LLMMetadata,
    LLMTokenUsage,
    PriceStatus,
    RunKind,
    RunStatus,
    content_hash,
)
from ragtrail.sink import ListSink


class FixedPricer:
    """Prices every call at $1 per 1k input and $2 per 1k output tokens."""

    def cost(self, usage: LLMTokenUsage | None, *, model: str | None, provider: str | None = None,
             at: datetime | None = None,
             cache_write_1h_tokens: int | None = None) -> LLMCostMetrics:
        if usage is None or usage.is_empty():
            return LLMCostMetrics(price_status=PriceStatus.NO_USAGE)
        cost = Decimal(usage.input_tokens or 0) / 1000 + Decimal(usage.output_tokens or 0) * 2 / 1000
        return LLMCostMetrics(total_cost=cost, currency="USD", price_status=PriceStatus.PRICED)


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def rec(sink: ListSink) -> Recorder:
    return Recorder(sink, pricer=FixedPricer())


def by_id(sink: ListSink) -> dict[str, CapturedRun]:
    return {r.run.id: r for r in sink.records}


def test_rag_trace_lineage_documents_and_llm(rec: Recorder, sink: ListSink) -> None:
    rec.start_run("root", kind="chain", name="rag", inputs={"question": "what is WAL?"},
                  user_id="u-42", session_id="s-1")
    rec.start_run("ret", kind=RunKind.RETRIEVER, name="retriever", parent_id="root",
                  inputs="what is WAL?")
    docs = [DocumentInput("WAL is write-ahead logging.", document_id="d1", score=0.9,
                          metadata={"source": "wal.md"}),
            DocumentInput("Vacuum reclaims space.", document_id="d2", score=0.5)]
    rec.add_documents("ret", docs, stage=DocStage.RETRIEVED)
    rec.end_run("ret", outputs=["..."])
    rec.start_run("rr", kind="reranker", name="rerank", parent_id="root")
    rec.add_documents("rr", [DocumentInput(docs[1].text, document_id="d2", score=0.8,
                                           input_rank=1),
                             DocumentInput(docs[0].text, document_id="d1", score=0.7,
                                           input_rank=0)], stage=DocStage.RERANKED)
    rec.end_run("rr")
    rec.note_prompt_template("root", "Context: {context}\nQ: {question}", {"question": "what is WAL?"})
    rec.start_run("llm", kind="llm", name="chat", parent_id="root")
    rec.update_llm("llm", LLMMetadata(
        provider="openai", provider_model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Context: WAL is write-ahead logging.\nQ: what is WAL?"}],
        token_usage=LLMTokenUsage(input_tokens=100, output_tokens=20, total_tokens=120)))
    rec.end_run("llm", outputs="It is write-ahead logging.")
    rec.end_run("root", outputs="It is write-ahead logging.")

    runs = by_id(sink)
    assert [r.run.id for r in sink.records] == ["ret", "rr", "llm", "root"]
    assert {r.run.trace_id for r in sink.records} == {"root"}
    assert runs["root"].run.parent_id is None and runs["llm"].run.parent_id == "root"
    assert all(runs[i].run.path.startswith(runs["root"].run.path + ".") for i in ("ret", "rr", "llm"))
    assert sorted(runs, key=lambda i: runs[i].run.path) == ["root", "ret", "rr", "llm"]
    retrieved = [(link.document_id, link.rank, link.score) for link in runs["ret"].links]
    assert retrieved == [("d1", 0, 0.9), ("d2", 1, 0.5)]
    reranked = [(link.document_id, link.rank, link.score, link.input_rank) for link in runs["rr"].links]
    assert reranked == [("d2", 0, 0.8, 1), ("d1", 1, 0.7, 0)]
    in_prompt = [(link.document_id, link.stage) for link in runs["llm"].links]
    assert in_prompt == [("d1", DocStage.IN_PROMPT)]  # d2 never reached the prompt
    assert runs["ret"].documents[0].content_hash == content_hash(docs[0].text)
    assert runs["ret"].documents[0].metadata == {"source": "wal.md"}
    llm = runs["llm"].llm
    assert llm.prompt_template == "Context: {context}\nQ: {question}"
    assert llm.prompt_template_hash == content_hash("Context: {context}\nQ: {question}")
    assert llm.prompt_variables == {"question": "what is WAL?"}
    assert llm.cost_metrics.total_cost == Decimal("0.14")
    assert llm.performance_metrics.total_duration_ms == runs["llm"].run.duration_ms
    assert llm.request_timestamp == runs["llm"].run.started_at
    user_hash = runs["root"].run.user_hash
    assert user_hash and user_hash == runs["llm"].run.user_hash and "u-42" not in user_hash
    assert runs["llm"].run.session_id == "s-1"
    assert runs["root"].run.environment["python_version"]
    assert runs["llm"].run.environment is None
    assert rec.last_trace_id == "root"


def test_timestamps_are_utc_and_consistent(rec: Recorder, sink: ListSink) -> None:
    rec.start_run("a", kind="chain", name="a")
    rec.end_run("a")
    run = sink.records[0].run
    assert run.started_at.tzinfo == timezone.utc
    assert run.ended_at >= run.started_at
    assert math.isclose((run.ended_at - run.started_at).total_seconds() * 1000, run.duration_ms,
                        abs_tol=0.01)


def test_error_is_recorded_with_type_message_and_stack(rec: Recorder, sink: ListSink) -> None:
    rec.start_run("a", kind="tool", name="t")
    try:
        raise ValueError("bad input from bob@example.com")
    except ValueError as exc:
        rec.fail_run("a", exc)
    run = sink.records[0].run
    assert run.status is RunStatus.ERROR
    assert run.error.type == "ValueError"
    assert run.error.message == "bad input from [EMAIL]"
    assert "test_error_is_recorded" in run.error.stack


def test_llm_without_usage_is_priced_as_no_usage_never_zero(rec: Recorder, sink: ListSink) -> None:
    rec.start_run("l", kind="llm", name="mock")
    rec.end_run("l", outputs="x")
    llm = sink.records[0].llm
    assert llm.token_usage is None
    assert llm.cost_metrics.total_cost is None
    assert llm.cost_metrics.price_status is PriceStatus.NO_USAGE


def test_duplicate_start_and_unknown_end_are_harmless(rec: Recorder, sink: ListSink) -> None:
    assert rec.start_run("a", kind="chain", name="a") is True
    assert rec.start_run("a", kind="chain", name="a") is False
    rec.end_run("a")
    assert rec.end_run("a") is None
    assert rec.end_run("never-started") is None
    assert len(sink.records) == 1
    assert rec.stats()["duplicate_starts"] == 1 and rec.stats()["unknown_ends"] == 2


def test_the_run_table_keeps_each_owners_state_with_its_runs(
        rec: Recorder, sink: ListSink) -> None:
    mine, theirs = object(), object()
    assert rec.start_run("a", kind="chain", name="a", owner=mine, state={"n": 1})
    assert rec.state_of("a", mine) == {"n": 1}
    assert rec.state_of("a", theirs) is None and rec.state_of("a") is None
    # The same owner starting the run again is a copy of one delivery, not a duplicate.
    assert rec.start_run("a", kind="chain", name="a", owner=mine) is False
    assert rec.start_run("a", kind="chain", name="a", owner=theirs) is False
    assert rec.stats()["duplicate_starts"] == 1
    rec.end_run("a")
    assert rec.state_of("a", mine) is None
    assert len(sink.records) == 1


def test_children_are_the_runs_started_under_a_run_by_its_owner(rec: Recorder) -> None:
    mine, theirs = object(), object()
    current: dict[str, Any] = {"id": None}
    unregister = register_parent_provider("test-children", lambda: current["id"])
    try:
        rec.start_run("p", kind="chain", name="p", owner=mine)
        rec.start_run("c1", kind="chain", name="c", parent_id="p", owner=mine)
        rec.start_run("c2", kind="chain", name="c", parent_id="p", owner=theirs)
        current["id"] = "p"
        rec.start_run("ambient", kind="chain", name="c", owner=mine)  # not a child here
    finally:
        unregister()
    assert rec.children_of("p", mine) == ["c1"]
    assert rec.children_of("p", theirs) == ["c2"]
    rec.end_run("c1")
    assert rec.children_of("p", mine) == []


def test_cut_descendants_end_cancelled_on_their_own_or_when_overdue(
        rec: Recorder, sink: ListSink) -> None:
    owner = object()
    rec.start_run("root", kind="chain", name="root", owner=owner)
    rec.start_run("mid", kind="chain", name="mid", parent_id="root", owner=owner)
    rec.start_run("leaf", kind="llm", name="leaf", parent_id="mid", owner=owner)
    assert not rec.has_cuts
    assert rec.cut_below("root", owner) == 2
    assert rec.cut_below("root", owner) == 0  # cut once
    assert rec.is_cut("leaf") and rec.is_cut("mid") and not rec.is_cut("root")
    assert rec.cancel_overdue_cuts(3600, lambda: RuntimeError("late")) == 0
    rec.end_run("leaf")  # the adapter ends it itself (and asks is_cut for the status)
    assert not rec.is_cut("leaf")
    assert rec.cancel_overdue_cuts(0, lambda: RuntimeError("closed")) == 1
    assert not rec.has_cuts
    mid = by_id(sink)["mid"].run
    assert mid.status is RunStatus.CANCELLED and mid.error is not None
    assert "closed" in (mid.error.message or "")


def test_the_end_hook_gets_the_trace_id_unless_the_run_is_abandoned(sink: ListSink) -> None:
    rec = Recorder(sink, pricer=FixedPricer(), config=CaptureConfig(max_open_runs=1))
    ended: list[str] = []
    rec.start_run("r", kind="chain", name="r", on_end=ended.append)
    rec.start_run("c", kind="chain", name="c", parent_id="r", on_end=ended.append)
    assert ended == []  # "r" was abandoned (the cap is 1)
    rec.fail_run("c", RuntimeError("boom"))
    assert ended == ["r"]  # the child's trace is its parent's


def test_unknown_parent_becomes_a_root_remembering_it(rec: Recorder, sink: ListSink) -> None:
    rec.start_run("c", kind="chain", name="c", parent_id="elsewhere")
    rec.end_run("c")
    run = sink.records[0].run
    assert run.parent_id is None and run.trace_id == "c"
    assert run.metadata["external_parent_id"] == "elsewhere"


def test_late_child_of_ended_parent_stays_in_trace(rec: Recorder, sink: ListSink) -> None:
    rec.start_run("p", kind="chain", name="p")
    rec.end_run("p")
    rec.start_run("c", kind="chain", name="c", parent_id="p")
    rec.end_run("c")
    assert by_id(sink)["c"].run.trace_id == "p"
    assert by_id(sink)["c"].run.parent_id == "p"


def test_ambient_parent_links_runs_without_parent(rec: Recorder, sink: ListSink) -> None:
    current: dict[str, Any] = {"id": None}
    unregister = register_parent_provider("test", lambda: current["id"])
    try:
        rec.start_run("outer", kind="chain", name="outer")
        current["id"] = "outer"
        rec.start_run("inner", kind="retriever", name="inner")
        rec.end_run("inner")
        current["id"] = None
        rec.end_run("outer")
    finally:
        unregister()
    assert by_id(sink)["inner"].run.parent_id == "outer"
    assert by_id(sink)["inner"].run.trace_id == "outer"


def test_open_runs_are_bounded_and_abandoned(sink: ListSink) -> None:
    rec = Recorder(sink, pricer=FixedPricer(), config=CaptureConfig(max_open_runs=3))
    for i in range(5):
        rec.start_run(f"r{i}", kind="chain", name="x")
    assert [r.run.id for r in sink.records] == ["r0", "r1"]
    assert all(r.run.status is RunStatus.ABANDONED for r in sink.records)
    assert rec.abandon_all() == 3
    assert len(sink.records) == 5 and rec.stats()["abandoned"] == 5


def test_hiding_keeps_hashes_for_joins(sink: ListSink) -> None:
    rec = Recorder(sink, pricer=FixedPricer(), config=CaptureConfig(
        hide_inputs=True, hide_outputs=True, hide_document_content=True))
    rec.start_run("r", kind="retriever", name="r", inputs="secret question")
    rec.add_documents("r", [DocumentInput("private text")], stage=DocStage.RETRIEVED)
    rec.end_run("r", outputs="secret answer")
    record = sink.records[0]
    assert record.run.inputs == {"__hidden__": True, "sha256": content_hash("secret question")}
    assert record.run.outputs["sha256"] == content_hash("secret answer")
    assert record.documents[0].content is None
    assert record.documents[0].content_hash == content_hash("private text")
    assert record.run.redacted


class _Unrepresentable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_hidden_payloads_hash_their_bounded_form_stably(sink: ListSink) -> None:
    rec = Recorder(sink, config=CaptureConfig(hide_inputs=True, hide_outputs=True))
    errors_before = error_counter.total()  # process-wide, so compared, not zero
    rec.start_run("a", kind="chain", name="x", inputs={"q": "what", "k": [1, 2]})
    rec.end_run("a", outputs={"odd": _Unrepresentable()})
    rec.start_run("b", kind="chain", name="x", inputs={"k": [1, 2], "q": "what"})
    rec.end_run("b", outputs=None)
    rec.start_run("c", kind="chain", name="x", inputs={"q": "what", "k": [1, 3]})
    rec.end_run("c")
    runs = {r.run.id: r.run for r in sink.records}
    # Equal payloads join on their hash whatever their key order; different ones do not.
    assert runs["a"].inputs == runs["b"].inputs
    assert runs["a"].inputs["sha256"] != runs["c"].inputs["sha256"]
    # A value whose repr raises is hidden like any other: the run keeps its status.
    assert runs["a"].status is RunStatus.OK and runs["a"].outputs["__hidden__"] is True
    assert error_counter.total() == errors_before


def test_a_huge_hidden_payload_is_hashed_within_the_limits(sink: ListSink) -> None:
    import tracemalloc

    rec = Recorder(sink, config=CaptureConfig(hide_inputs=True))
    huge = ["x" * 1_000] * 200_000  # 200 MB as text, 1.6 MB as a list
    tracemalloc.start()
    try:
        rec.start_run("h", kind="chain", name="x", inputs=huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    rec.end_run("h")
    inputs = sink.records[0].run.inputs
    assert inputs["__hidden__"] is True and inputs["truncated"] is True
    assert peak < 20_000_000  # the payload's text is never built whole


def test_hidden_inputs_leave_no_unredacted_conversion_for_shown_outputs(sink: ListSink) -> None:
    class Note:
        def __init__(self, text: str) -> None:
            self.text = text

    unregister = register_converter(Note, lambda note: {"text": note.text})
    try:
        rec = Recorder(sink, config=CaptureConfig(hide_inputs=True))
        note = Note("write to jane.doe@example.com")
        rec.start_run("n", kind="chain", name="x", inputs=[note])
        rec.end_run("n", outputs=[note])
    finally:
        unregister()
    run = sink.records[0].run
    assert "jane.doe@example.com" not in run.model_dump_json()
    assert run.outputs[0]["text"] != note.text and run.redacted


def test_a_payload_that_fails_to_convert_costs_the_field_not_the_run(
        sink: ListSink, monkeypatch: pytest.MonkeyPatch) -> None:
    from ragtrail.testing.internals import SafeJson

    rec = Recorder(sink)
    errors_before = error_counter.total()

    def broken(self: Any, value: Any, depth: int = 0) -> Any:
        raise RuntimeError("converter bug")

    monkeypatch.setattr(SafeJson, "convert", broken)
    assert rec.start_run("p", kind="chain", name="x", inputs={"q": 1}) is True
    monkeypatch.undo()
    rec.end_run("p", outputs={"a": 1})
    run = sink.records[0].run
    assert run.status is RunStatus.OK and run.inputs is None and run.truncated
    assert run.outputs == {"a": 1}
    assert error_counter.total() == errors_before + 1


def test_a_failure_to_report_a_failure_still_costs_only_the_field(
        sink: ListSink, monkeypatch: pytest.MonkeyPatch) -> None:
    # Near the recursion limit counting the error fails as well: still one field lost.
    from ragtrail.testing.internals import SafeJson

    def broken(self: Any, value: Any, depth: int = 0) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    def no_stack_left(where: str) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    rec = Recorder(sink)
    monkeypatch.setattr(SafeJson, "convert", broken)
    monkeypatch.setattr(error_counter, "add", no_stack_left)
    assert rec.start_run("p", kind="chain", name="x", inputs={"q": 1}) is True
    monkeypatch.undo()
    rec.end_run("p", outputs={"a": 1})
    run = sink.records[0].run
    assert run.status is RunStatus.OK and run.inputs is None and run.outputs == {"a": 1}


def test_a_cost_beyond_what_can_be_stored_keeps_the_call_and_says_error(
        sink: ListSink, tmp_path: Any) -> None:
    from ragtrail.store import open_store

    rec = Recorder(sink, pricer=FixedPricer())
    rec.start_run("l", kind="llm", name="x")
    rec.update_llm("l", {"provider_model": "m",
                         "token_usage": {"input_tokens": 10**14, "output_tokens": 1}})
    rec.end_run("l")
    record = sink.records[0]
    assert record.llm is not None and record.llm.token_usage is not None
    assert record.llm.token_usage.input_tokens == 10**14  # the tokens are kept
    cost = record.llm.cost_metrics
    assert cost is not None and cost.price_status is PriceStatus.ERROR
    assert cost.total_cost is None and cost.input_cost is None
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        store.write_batch([record])  # the database takes the record
    finally:
        store.close()


def test_impossible_token_counts_lose_only_those_counts(sink: ListSink) -> None:
    rec = Recorder(sink, pricer=FixedPricer())
    rec.start_run("l", kind="llm", name="x")
    rec.update_llm("l", {"provider_model": "m", "token_usage": {
        "input_tokens": 10, "output_tokens": 2**70, "total_tokens": -1, "reasoning_tokens": 2}})
    rec.end_run("l")
    usage = sink.records[0].llm.token_usage  # type: ignore[union-attr]
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens,
            usage.reasoning_tokens) == (10, None, None, 2)


def test_documents_beyond_the_cap_are_counted_not_stored(sink: ListSink) -> None:
    assert CaptureConfig().max_documents_per_stage == 500
    rec = Recorder(sink, config=CaptureConfig(max_documents_per_stage=3))
    rec.start_run("r", kind="retriever", name="r")
    rec.add_documents("r", [DocumentInput(f"doc {i}") for i in range(5)], stage=DocStage.RETRIEVED)
    rec.add_documents("r", [DocumentInput("late")], stage=DocStage.RETRIEVED)
    rec.add_documents("r", [DocumentInput("doc 4")], stage=DocStage.RERANKED)
    rec.end_run("r")
    record = sink.records[0]
    retrieved = [link for link in record.links if link.stage is DocStage.RETRIEVED]
    assert [link.rank for link in retrieved] == [0, 1, 2]
    assert [link.content_hash for link in retrieved] == [content_hash(f"doc {i}") for i in range(3)]
    assert len(record.documents) == 4  # three retrieved, one reranked
    assert record.run.truncated
    assert record.run.metadata["documents_cut"] == {"retrieved": 3}


def test_the_same_text_twice_at_one_stage_is_linked_once_at_its_first_rank(
        sink: ListSink) -> None:
    rec = Recorder(sink)
    rec.start_run("r", kind="retriever", name="r")
    rec.add_documents("r", [DocumentInput("a"), DocumentInput("b"), DocumentInput("a", score=0.1),
                            DocumentInput("c")], stage=DocStage.RETRIEVED)
    rec.add_documents("r", [DocumentInput("b"), DocumentInput("d")], stage=DocStage.RETRIEVED)
    rec.add_documents("r", [DocumentInput("a")], stage=DocStage.RERANKED)
    rec.end_run("r")
    links = sink.records[0].links
    retrieved = [(link.content_hash, link.rank) for link in links
                 if link.stage is DocStage.RETRIEVED]
    assert retrieved == [(content_hash("a"), 0), (content_hash("b"), 1), (content_hash("c"), 3),
                         (content_hash("d"), 5)]
    assert [(link.content_hash, link.rank) for link in links
            if link.stage is DocStage.RERANKED] == [(content_hash("a"), 0)]


def test_the_document_cap_is_validated() -> None:
    with pytest.raises(ConfigError, match="max_documents_per_stage"):
        CaptureConfig(max_documents_per_stage=0)


def test_secrets_in_framework_objects_are_never_stored(rec: Recorder, sink: ListSink) -> None:
    serialized = {"kwargs": {"model_name": "gpt-4o", "openai_api_key": "sk-live-123456789012345678",
                             "headers": {"Authorization": "Bearer abcdefghijk"}}}
    rec.start_run("l", kind="llm", name="x", inputs=serialized, metadata={"api_key": "k"})
    rec.end_run("l")
    text = sink.records[0].model_dump_json()
    assert "sk-live" not in text and "abcdefghijk" not in text and '"k"' not in text
    assert sink.records[0].run.inputs["kwargs"]["model_name"] == "gpt-4o"


class Weird:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_odd_data_is_captured_safely(rec: Recorder, sink: ListSink) -> None:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    odd = {"bytes": b"\x00\xff", "set": {3, 1, 2}, "when": datetime(2024, 1, 1), "nan": float("nan"),
           "inf": float("-inf"), "cyclic": cyclic, "weird": Weird(), "big": "x" * 50_000,
           "huge_list": list(range(10_000)), 7: "int key", "deep": _deep(100), "dec": Decimal("1.5")}
    rec.start_run("o", kind="tool", name="odd", inputs=odd)
    rec.end_run("o", outputs=object())
    run = sink.records[0].run
    CapturedRun.model_validate_json(sink.records[0].model_dump_json())  # JSON-safe
    assert run.truncated
    assert run.inputs["bytes"]["__bytes__"] == 2
    assert run.inputs["set"] == [1, 2, 3]
    assert run.inputs["nan"] == "nan" and run.inputs["inf"] == "-inf"
    assert run.inputs["cyclic"][1] == "…[cycle]"
    assert "unrepresentable" in run.inputs["weird"]
    assert len(run.inputs["big"]) < 25_000
    assert len(run.inputs["huge_list"]) == 501
    assert run.inputs["7"] == "int key"
    assert run.inputs["dec"] == "1.5"


def _deep(n: int) -> Any:
    value: Any = "bottom"
    for _ in range(n):
        value = {"d": value}
    return value


@settings(max_examples=60, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text()
                    | st.binary(), lambda c: st.lists(c) | st.dictionaries(st.text(), c),
                    max_leaves=30))
def test_any_value_becomes_json_without_raising(value: Any) -> None:
    sink = ListSink()
    rec = Recorder(sink, pricer=FixedPricer())
    rec.start_run("v", kind="chain", name="v", inputs=value)
    rec.end_run("v", outputs=value)
    assert len(sink.records) == 1
    CapturedRun.model_validate_json(sink.records[0].model_dump_json())


class ExplodingSink(ListSink):
    def offer(self, record: CapturedRun) -> bool:
        raise OSError("disk on fire")


def test_nothing_raises_into_the_caller() -> None:
    rec = Recorder(ExplodingSink(), pricer=FixedPricer())
    rec.start_run("a", kind="chain", name="a")
    rec.end_run("a")  # sink blew up: swallowed and counted
    assert rec.stats()["refused"] == 1 and rec.stats()["offered"] == 0
    assert rec.stats()["internal_errors"] >= 1
    rec.update_llm("a", {"token_usage": "not a mapping"})
    rec.add_documents("nope", [DocumentInput("x")], stage=DocStage.RETRIEVED)


def test_a_bad_llm_field_loses_that_field_only(rec: Recorder, sink: ListSink) -> None:
    rec.start_run("l", kind="llm", name="x")
    rec.update_llm("l", {"provider": "openai", "token_usage": {"input_tokens": -5}})
    rec.end_run("l")
    llm = sink.records[0].llm
    assert llm.provider == "openai" and llm.token_usage is None


def test_streaming_time_to_first_token(rec: Recorder, sink: ListSink) -> None:
    rec.start_run("s", kind="llm", name="x")
    rec.record_first_token("s")
    rec.record_first_token("s")
    rec.update_llm("s", LLMMetadata(token_usage=LLMTokenUsage(input_tokens=3, output_tokens=50)))
    rec.end_run("s")
    perf = sink.records[0].llm.performance_metrics
    assert 0 <= perf.time_to_first_token_ms <= perf.total_duration_ms
    assert perf.tokens_per_second and perf.tokens_per_second > 0


def test_concurrent_traces_do_not_cross(sink: ListSink) -> None:
    rec = Recorder(sink, pricer=FixedPricer())

    def trace(n: int) -> None:
        rec.start_run(f"t{n}", kind="chain", name="t")
        for c in range(5):
            rec.start_run(f"t{n}-{c}", kind="llm", name="l", parent_id=f"t{n}")
            rec.end_run(f"t{n}-{c}")
        rec.end_run(f"t{n}")

    threads = [threading.Thread(target=trace, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sink.records) == 300
    for r in sink.records:
        assert r.run.trace_id == r.run.id.split("-")[0]


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="max_open_runs"):
        CaptureConfig(max_open_runs=0)
    with pytest.raises(ConfigError, match="max_run_age_s"):
        CaptureConfig(max_run_age_s=-1)


def test_in_prompt_rank_follows_position_in_the_prompt(rec: Recorder, sink: ListSink) -> None:
    rec.start_run("root", kind="chain", name="rag")
    rec.start_run("ret", kind="retriever", name="r", parent_id="root")
    rec.add_documents("ret", [DocumentInput("alpha doc"), DocumentInput("beta doc"),
                              DocumentInput("gamma doc")], stage=DocStage.RETRIEVED)
    rec.end_run("ret")
    rec.start_run("llm", kind="llm", name="m", parent_id="root")
    rec.update_llm("llm", {"prompt_text": "Context: gamma doc | alpha doc. Question?"})
    rec.end_run("llm")
    rec.end_run("root")
    links = by_id(sink)["llm"].links
    assert [(link.document_id, link.rank) for link in links] == [
        (content_hash("gamma doc"), 0), (content_hash("alpha doc"), 1)]


class _Card:
    """A framework object the Recorder knows nothing about."""

    def __init__(self, title: str, inner: Any = None) -> None:
        self.title, self.inner = title, inner


class _SpecialCard(_Card):
    pass


class _BadCard(_Card):
    pass


def test_registered_converters_apply_at_any_depth_and_a_failing_one_loses_one_value(
        rec: Recorder, sink: ListSink) -> None:
    def bad(card: _Card) -> Any:
        raise RuntimeError("converter bug")

    removers = [register_converter(_Card, lambda c: {"title": c.title, "inner": c.inner}),
                register_converter(_BadCard, bad)]
    try:
        nested = _Card("outer", [_SpecialCard("inner mail bob@example.com")])
        rec.start_run("c1", kind="chain", name="cards",
                      inputs={"deep": [{"x": nested}], "bad": _BadCard("b")})
        rec.end_run("c1", outputs=_SpecialCard("done"))
    finally:
        for remove in removers:
            remove()
    run = sink.records[-1].run
    # The subclass uses its base's converter; its result is walked (and redacted) too.
    assert run.inputs["deep"] == [{"x": {"title": "outer", "inner": [
        {"title": "inner mail [EMAIL]", "inner": None}]}}]
    assert run.redacted
    assert run.inputs["bad"].startswith("<_BadCard: ")  # the one value, not the record
    assert run.outputs == {"title": "done", "inner": None}
    # Unregistered again: back to the generic form of unknown objects.
    rec.start_run("c2", kind="chain", name="cards", inputs=_Card("plain"))
    rec.end_run("c2")
    assert sink.records[-1].run.inputs != {"title": "plain", "inner": None}


def test_a_converter_returning_its_own_object_is_cut_as_a_cycle(
        rec: Recorder, sink: ListSink) -> None:
    remove = register_converter(_Card, lambda c: {"again": c})
    try:
        rec.start_run("c3", kind="chain", name="loop", inputs=_Card("x"))
        rec.end_run("c3")
    finally:
        remove()
    run = sink.records[-1].run
    assert run.inputs == {"again": "…[cycle]"} and run.truncated


@pytest.fixture
def cards() -> Any:
    """_Card registered with a converter copying its fields (``inner`` shallowly)."""
    remove = register_converter(_Card, lambda c: {"title": c.title, "inner": c.inner})
    yield
    remove()


def _payload(rec: Recorder, sink: ListSink, run_id: str, inputs: Any) -> Any:
    rec.start_run(run_id, kind="chain", name="step", inputs=inputs)
    rec.end_run(run_id)
    return sink.records[-1].run


def test_an_object_met_again_is_stored_as_it_is_now(
        rec: Recorder, sink: ListSink, cards: None) -> None:
    # A document flows through several steps; a step between them changes it in place.
    card = _Card("doc", {"source": "a", "tags": ["x"]})
    first = _payload(rec, sink, "s1", {"documents": [card]})
    card.inner["tags"].append("y")  # a nested list of the converter's shallow copy
    card.inner["score"] = 0.5
    second = _payload(rec, sink, "s2", [card, card])
    card.title = "renamed"
    third = _payload(rec, sink, "s3", card)
    assert first.inputs == {"documents": [{"title": "doc", "inner": {"source": "a",
                                                                   "tags": ["x"]}}]}
    changed = {"title": "doc", "inner": {"source": "a", "tags": ["x", "y"], "score": 0.5}}
    assert second.inputs == [changed, changed]
    assert third.inputs == {**changed, "title": "renamed"}
    # Each record owns its data: the first one still shows the document as it was then.
    assert first.inputs["documents"][0]["inner"]["tags"] == ["x"]


def test_an_object_met_again_is_still_cut_by_the_payload_and_depth_limits(
        sink: ListSink, cards: None) -> None:
    rec = Recorder(sink, config=CaptureConfig(max_payload_chars=40, max_depth=4))
    card = _Card("t" * 30, {"k": "v"})
    first = _payload(rec, sink, "s1", ["a", card])
    assert first.inputs == ["a", {"title": "t" * 30, "inner": {"k": "v"}}]
    # Less room left before it: its stored conversion does not fit any more.
    later = _payload(rec, sink, "s2", ["u" * 20, card])
    assert later.truncated and later.inputs[1] != {"title": "t" * 30, "inner": {"k": "v"}}
    # Deeper than before: its inner mapping now passes the depth limit.
    deep = _payload(rec, sink, "s3", [[card]])
    assert deep.truncated and deep.inputs == [[{"title": "t" * 30,
                                                "inner": "…[truncated: max depth]"}]]


def test_objects_kept_for_reuse_are_bounded_by_the_text_they_hold(
        rec: Recorder, sink: ListSink, cards: None) -> None:
    import gc
    import weakref

    # Large documents (95,000 chars each, within the limits): the Recorder keeps recent
    # conversions for reuse, but never more than about 2 MB of their text.
    def big(tag: str) -> _Card:
        return _Card(tag, [f"{tag}-{part}-" + "x" * 19_000 for part in range(5)])

    first = big("first")
    kept = weakref.ref(first)
    _payload(rec, sink, "s0", first)
    del first
    for i in range(30):
        _payload(rec, sink, f"s{i + 1}", big(str(i)))
    gc.collect()
    assert kept() is None
    last = sink.records[-1].run
    assert not last.truncated and last.inputs["inner"][4].startswith("29-4-xxx")


def test_redaction_applies_every_time_an_object_is_met(sink: ListSink, cards: None) -> None:
    seen: list[str] = []

    def rule(text: str) -> str:
        seen.append(text)
        return text.replace("secret-word", "[GONE]")

    rec = Recorder(sink, redactor=Redactor(RedactionConfig(rules=[rule])))
    card = _Card("has secret-word", {"mail": "bob@example.com"})
    for run_id in ("s1", "s2"):
        run = _payload(rec, sink, run_id, card)
        assert run.inputs == {"title": "has [GONE]", "inner": {"mail": "[EMAIL]"}}
        assert run.redacted
    # A user rule need not be a pure function: it sees the object's text at every step.
    assert seen.count("has secret-word") == 2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.datetimes(min_value=datetime(1000, 1, 1),  # strftime pads no earlier year
                             timezones=st.just(timezone.utc)), min_size=1, max_size=5),
       st.text(min_size=1, max_size=12))
def test_lineage_segments_spell_the_start_time_like_strftime(starts: list[datetime],
                                                              run_id: str) -> None:
    # The second's text is cached between runs; every start must still spell its own.
    from ragtrail.testing.internals import lineage_segment

    for started in starts:
        assert lineage_segment(started, run_id) == (started.strftime("%Y%m%dT%H%M%S%fZ")
                                             + run_id.replace(".", "_"))


@given(st.lists(st.text(max_size=40), min_size=1, max_size=30))
def test_content_hash_is_sha256_of_the_text_with_or_without_the_cache(texts: list[str]) -> None:
    import hashlib

    for text in texts + texts:  # the second round is served from the cache
        expected = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        assert content_hash(text) == expected


def _grading_step(rec: Recorder) -> None:
    """root > retriever (d1, d2) and root > step > wrapper > llm, whose prompt shows d1."""
    rec.start_run("root", kind="chain", name="rag")
    rec.start_run("ret", kind="retriever", name="r", parent_id="root")
    rec.add_documents("ret", [DocumentInput(text="WAL lets readers read.", document_id="d1"),
                              DocumentInput(text="Vacuum frees pages.", document_id="d2")],
                      stage=DocStage.RETRIEVED)
    rec.end_run("ret")
    rec.start_run("step", kind="chain", name="grade", parent_id="root")
    rec.start_run("wrap", kind="chain", name="judge", parent_id="step")
    rec.start_run("llm", kind="llm", name="chat", parent_id="wrap")
    rec.update_llm("llm", {"prompt_text": "Is this relevant? WAL lets readers read."})
    rec.end_run("llm")
    rec.end_run("wrap")


def _in_prompt(sink: ListSink, run_id: str) -> list[str]:
    (record,) = [r for r in sink.records if r.run.id == run_id]
    return [link.document_id for link in record.links if link.stage is DocStage.IN_PROMPT]


def test_llm_call_of_a_step_that_ends_a_reranker_links_nothing_in_prompt(
        rec: Recorder, sink: ListSink) -> None:
    _grading_step(rec)
    # Held while the steps around the call are open: they may still turn out rerankers.
    assert [r.run.id for r in sink.records] == ["ret", "wrap"]
    rec.set_kind("step", RunKind.RERANKER)  # recognised from its output, at its end
    rec.end_run("step", outputs=["d1"])
    assert [r.run.id for r in sink.records] == ["ret", "wrap", "llm", "step"]
    assert _in_prompt(sink, "llm") == []
    rec.end_run("root")


def test_held_in_prompt_links_are_kept_when_no_step_turns_reranker(
        rec: Recorder, sink: ListSink) -> None:
    _grading_step(rec)
    rec.end_run("step")
    rec.end_run("root")
    assert [r.run.id for r in sink.records] == ["ret", "wrap", "step", "llm", "root"]
    assert _in_prompt(sink, "llm") == ["d1"]


def test_held_records_are_stored_when_runs_are_abandoned(rec: Recorder, sink: ListSink) -> None:
    _grading_step(rec)
    assert rec.abandon_all() == 2  # step and root: on close
    assert {r.run.id for r in sink.records} == {"ret", "llm", "wrap", "step", "root"}
    assert _in_prompt(sink, "llm") == ["d1"]  # no step said it was a reranker
