"""Instrumentation never breaks the host application (issue 4, test 10).

With each failure injected — the store raising on every write, the queue full behind a
stuck store, extractors raising on hostile provider data — a LangChain chain and a
LlamaIndex query engine return exactly what they return uninstrumented, no exception
from ragtrail reaches the caller, and what can still be stored is stored.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from llama_index.core.llms import CompletionResponse
from llama_index.core.llms.callbacks import llm_completion_callback

from ragtrail import Trail
from ragtrail.guard import error_counter
from ragtrail.schemas import CapturedRun, RunKind, RunStatus
from ragtrail.writer import WriterConfig
from ragtrail_langchain import RagtrailCallbackHandler
from ragtrail_llamaindex import instrument, uninstrument

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import langchain_rag
import llamaindex_rag

QUESTION = langchain_rag.QUESTION
pytestmark = pytest.mark.reliability


class Hostile:
    """Provider data from hell: every way of reading it raises."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"hostile attribute {name}")

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("hostile iteration")

    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError("hostile item")

    def __repr__(self) -> str:
        raise RuntimeError("hostile repr")

    __str__ = __repr__


class HostileChat(langchain_rag.OfflineChatModel):
    """Answers like the example model, with hostile response metadata."""

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        result = super()._generate(messages, stop, run_manager, **kwargs)
        message = result.generations[0].message
        assert isinstance(message, AIMessage)
        message.response_metadata = {"headers": Hostile(), "finish_reason": Hostile(),
                                     "model_name": "gpt-4o-mini-2024-07-18"}
        return result


class HostileLLM(llamaindex_rag.OfflineLLM):
    """Answers like the example LLM, with a hostile raw response."""

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        answer, _ = self._answer(prompt)
        return CompletionResponse(text=answer, raw=Hostile(), additional_kwargs={"x": Hostile()})


def lc_chain(hostile: bool = False) -> Any:
    chain = langchain_rag.build_chain()
    if hostile:  # swap the model step for the hostile one, same answers
        steps = list(chain.steps)  # type: ignore[attr-defined]
        steps[-2] = HostileChat()
        from langchain_core.runnables import RunnableSequence

        return RunnableSequence(*steps)
    return chain


def li_engine(hostile: bool = False) -> Any:
    engine = llamaindex_rag.build_query_engine()
    if hostile:
        engine._response_synthesizer._llm = HostileLLM()
    return engine


@pytest.fixture(scope="module")
def baseline() -> dict[str, str]:
    return {"langchain": lc_chain().invoke(QUESTION),
            "llamaindex": str(li_engine().query(QUESTION))}


def run_both(trail: Trail, hostile: bool = False) -> dict[str, str]:
    handler = RagtrailCallbackHandler(trail)
    answers = {"langchain": lc_chain(hostile).invoke(QUESTION, config={"callbacks": [handler]})}
    engine = li_engine(hostile)
    instrument(trail)
    try:
        answers["llamaindex"] = str(engine.query(QUESTION))
    finally:
        uninstrument(trail)
    return answers


class RaisingStore:
    """Stands in for the database: every write fails."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def write_batch(self, records: Sequence[CapturedRun]) -> None:
        self.calls += 1
        raise RuntimeError("the database is on fire")


def test_store_raising(baseline: dict[str, str], sqlite_url: str, tmp_path: Path) -> None:
    trail = Trail(sqlite_url, writer=WriterConfig(
        retry_max_attempts=1, retry_initial_backoff_s=0.01, retry_max_backoff_s=0.01,
        spool_dir=tmp_path / "spool", shutdown_timeout_s=1.0))
    failing = RaisingStore(trail.store)
    trail.store.write_batch = failing.write_batch  # type: ignore[method-assign]
    try:
        assert run_both(trail) == baseline
        trail.flush(2.0)
        assert failing.calls >= 1
        writer = trail.stats()["writer"]
        assert writer["stored"] == 0
        assert writer["offered"] == trail.stats()["capture"]["offered"] > 0
    finally:
        assert trail.close(2.0) in (True, False)  # bounded, never raises


def test_queue_full_behind_a_stuck_store(baseline: dict[str, str], sqlite_url: str,
                                         tmp_path: Path) -> None:
    release = threading.Event()
    trail = Trail(sqlite_url, writer=WriterConfig(
        max_queue_events=2, batch_max_events=1, spool_dir=tmp_path / "spool",
        spool_max_bytes=1, spool_segment_max_bytes=1, shutdown_timeout_s=1.0))
    real_write: Callable[[Sequence[CapturedRun]], None] = trail.store.write_batch

    def stuck(records: Sequence[CapturedRun]) -> None:
        release.wait(10)
        real_write(records)

    trail.store.write_batch = stuck  # type: ignore[method-assign]
    try:
        assert run_both(trail) == baseline
        stats = trail.stats()["writer"]
        assert stats["dropped_total"] > 0, stats  # counted, not raised
    finally:
        release.set()
        trail.close(5.0)


def test_extractors_raising_lose_fields_not_records(baseline: dict[str, str],
                                                    sqlite_url: str) -> None:
    before = error_counter.total()
    _hostile_fields_lost_records_kept(baseline, sqlite_url)
    assert error_counter.total() > before  # each lost field was counted


def _hostile_fields_lost_records_kept(baseline: dict[str, str], sqlite_url: str) -> None:
    with Trail(sqlite_url) as trail:
        assert run_both(trail, hostile=True) == baseline
        assert trail.flush(10)
        traces = trail.traces(limit=10)
        assert len(traces) == 2 and {t.status for t in traces} == {RunStatus.OK}
        for summary in traces:
            lineage = trail.lineage(summary.trace_id)
            llm_runs = [r for r in lineage.runs if r.kind is RunKind.LLM]
            assert llm_runs and all(r.status is RunStatus.OK for r in llm_runs)
            assert lineage.answer and lineage.documents  # the rest of the record survived
            call = lineage.llm_calls[0].metadata
            assert call.output_text  # the text still arrived
            assert call.response_metadata is None or call.response_metadata.finish_reason is None


def test_an_error_while_reporting_an_error_stays_inside(baseline: dict[str, str],
                                                        sqlite_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Near the recursion limit, counting or logging a failed extractor fails too
    # (RecursionError again): that second error must not reach the application either.
    def no_stack_left(where: str) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(error_counter, "add", no_stack_left)
    _hostile_fields_lost_records_kept(baseline, sqlite_url)
