"""``ragtrail.testing``: records captured in memory, through the adapters, without a database."""

from __future__ import annotations

import threading

import pytest
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

from lc_support import build_rag_chain, flatten
from ragtrail.schemas import DocStage, RunKind, RunStatus
from ragtrail.testing import CapturingTrail, capture_records
from ragtrail_langchain import RagtrailCallbackHandler

QUESTION = "What does VACUUM do in SQLite?"


def test_a_langchain_chain_is_captured_in_memory_as_the_collector_sees_it() -> None:
    collector = RunCollectorCallbackHandler()
    with capture_records() as captured:
        handler = RagtrailCallbackHandler(captured)
        build_rag_chain().invoke(QUESTION, config={"callbacks": [handler, collector]})
    expected = {str(run.id): run.name for run in flatten(collector.traced_runs)}
    assert {run.id: run.name for run in captured.runs()} == expected
    assert captured.trace_ids() == [handler.last_trace_id]
    (llm,) = captured.llm_calls()
    assert llm.token_usage is not None and llm.token_usage.input_tokens
    assert captured.run("FakeOpenAIChat").kind is RunKind.LLM
    retrieved = captured.links(DocStage.RETRIEVED)
    assert [link.rank for link in retrieved] == list(range(len(retrieved))) and retrieved
    assert captured.links("in_prompt")


def test_runs_filter_and_run_lookup() -> None:
    with capture_records() as captured:
        handler = RagtrailCallbackHandler(captured)
        chain = build_rag_chain()
        chain.invoke(QUESTION, config={"callbacks": [handler]})
        chain.invoke(QUESTION, config={"callbacks": [handler]})
    assert len(captured.trace_ids()) == 2
    assert [r.kind for r in captured.runs(kind="llm")] == [RunKind.LLM, RunKind.LLM]
    first = captured.trace_ids()[0]
    assert {r.trace_id for r in captured.runs(trace_id=first)} == {first}
    with pytest.raises(LookupError, match="2 runs named 'FakeOpenAIChat'"):
        captured.run("FakeOpenAIChat")
    captured.clear()
    assert captured.records == []


def test_runs_left_open_are_abandoned_at_the_end_of_the_block() -> None:
    with capture_records() as captured:
        captured.recorder.start_run("r1", kind=RunKind.CHAIN, name="never ends")
        assert captured.records == []
    (run,) = captured.runs()
    assert run.name == "never ends" and run.status is RunStatus.ABANDONED
    assert captured.recorder.start_run("r2", kind=RunKind.CHAIN, name="late") is not None
    captured.recorder.end_run("r2")
    assert [r.name for r in captured.runs()] == ["never ends"]  # refused after close


def test_threads_share_one_capturing_trail() -> None:
    captured = CapturingTrail()
    handler = RagtrailCallbackHandler(captured)
    chain = build_rag_chain()
    threads = [threading.Thread(target=chain.invoke, args=(QUESTION,),
                                kwargs={"config": {"callbacks": [handler]}}) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(captured.trace_ids()) == 8
    assert len(captured.llm_calls()) == 8
    captured.close()
