"""Light in-flight records: the Recorder hands the writer the run as it ended, and the
record is built (and priced) on the writer's side; a record that cannot be built is
dropped and counted, never lost silently."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ragtrail.capture import DocumentInput, Recorder
from ragtrail.capture.records import EndedRun
from ragtrail.schemas import (
    CapturedRun,
    DocStage,
    LLMCostMetrics,
    LLMTokenUsage,
    PriceStatus,
    RunKind,
)
from ragtrail.sink import LightRecord, LightSink, ListSink
from ragtrail.testing import capture_records
from ragtrail.writer import BackgroundWriter, DropReason, WriterConfig
from reliability._factory import make_record
from reliability._stores import FaultyStore, MemoryStore


class ThreadPricer:
    """Prices at $1 per 1k input tokens and remembers on which threads it was asked."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def cost(self, usage: LLMTokenUsage | None, *, model: str | None,
             provider: str | None = None, at: datetime | None = None,
             cache_write_1h_tokens: int | None = None) -> LLMCostMetrics:
        self.threads.append(threading.current_thread().name)
        tokens = usage.input_tokens if usage is not None else None
        return LLMCostMetrics(total_cost=Decimal(tokens or 0) / 1000, currency="USD",
                              price_status=PriceStatus.PRICED)


class Unbuildable:
    """A light record whose build fails (a bug in building, as the writer sees it)."""

    approx_bytes = 2_000

    def __init__(self, run_id: str) -> None:
        self.id = run_id

    def build(self) -> CapturedRun:
        raise RuntimeError(f"cannot build {self.id}")


def config(tmp_path: Path, **overrides: object) -> WriterConfig:
    values: dict[str, object] = {"spool_dir": tmp_path / "spool", "flush_interval_s": 0.02,
                                 "batch_max_events": 50, "retry_max_attempts": 2,
                                 "retry_initial_backoff_s": 0.001,
                                 "retry_max_backoff_s": 0.01, "shutdown_timeout_s": 5.0}
    values.update(overrides)
    return WriterConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def writers() -> Iterator[list[BackgroundWriter]]:
    created: list[BackgroundWriter] = []
    yield created
    for writer in created:
        writer.close(1.0)


def _chain(rec: Recorder, prefix: str) -> None:
    rec.start_run(f"{prefix}-root", kind=RunKind.CHAIN, name="rag", inputs={"q": "wal?"})
    rec.start_run(f"{prefix}-llm", kind=RunKind.LLM, name="chat", parent_id=f"{prefix}-root")
    rec.update_llm(f"{prefix}-llm", {"provider": "openai", "provider_model": "gpt-4o-mini",
                                     "token_usage": {"input_tokens": 1200, "output_tokens": 7},
                                     "prompt_text": "Context: WAL. Question: wal?"})
    rec.end_run(f"{prefix}-llm", outputs="It is write-ahead logging.")
    rec.end_run(f"{prefix}-root", outputs="It is write-ahead logging.")


def test_records_are_built_and_priced_on_the_writer_side(
        tmp_path: Path, writers: list[BackgroundWriter]) -> None:
    store = MemoryStore()
    writer = BackgroundWriter(store, config(tmp_path), name="light")
    writers.append(writer)
    assert isinstance(writer, LightSink)
    pricer = ThreadPricer()
    rec = Recorder(writer, pricer=pricer)
    _chain(rec, "a")
    assert pricer.threads == []  # nothing was built on this thread
    assert writer.flush(10.0)
    assert pricer.threads and all(name.startswith("ragtrail-") for name in pricer.threads)
    assert set(store.rows) == {"a-root", "a-llm"}
    llm = store.rows["a-llm"].llm
    assert llm is not None and llm.cost_metrics is not None
    assert llm.cost_metrics.total_cost == Decimal("1.2")
    assert store.rows["a-llm"].run.outputs == "It is write-ahead logging."
    assert store.rows["a-llm"].run.parent_id == "a-root"
    assert rec.stats()["offered"] == 2 and writer.stats().stored == 2


def test_the_writer_stores_what_a_plain_sink_gets(
        tmp_path: Path, writers: list[BackgroundWriter]) -> None:
    store = MemoryStore()
    writer = BackgroundWriter(store, config(tmp_path), name="same")
    writers.append(writer)
    plain = ListSink()
    for sink in (writer, plain):
        rec = Recorder(sink, pricer=ThreadPricer())
        rec.start_run("r", kind=RunKind.RETRIEVER, name="search")
        rec.add_documents("r", [DocumentInput("WAL keeps a log.", document_id="d1",
                                              metadata={"page": 2}, score=0.5)],
                          stage=DocStage.RETRIEVED)
        rec.end_run("r", outputs=["WAL keeps a log."])
    assert writer.flush(10.0)
    (expected,) = plain.records
    stored = store.rows["r"]
    skip = {"started_at", "ended_at", "duration_ms", "path"}
    assert stored.run.model_dump(exclude=skip) == expected.run.model_dump(exclude=skip)
    assert [d.model_dump() for d in stored.documents] == [
        d.model_dump() for d in expected.documents]
    assert [link.model_dump() for link in stored.links] == [
        link.model_dump() for link in expected.links]
    assert stored.documents[0].metadata == {"page": 2}


def test_a_record_that_cannot_be_built_is_dropped_and_counted(
        tmp_path: Path, writers: list[BackgroundWriter]) -> None:
    store = MemoryStore()
    writer = BackgroundWriter(store, config(tmp_path), name="unbuildable")
    writers.append(writer)
    before, after = make_record("before"), make_record("after")
    assert writer.offer(before)
    assert writer.offer_light(Unbuildable("broken"))
    assert writer.offer(after)
    assert writer.flush(10.0)  # settled: a flush does not wait for it forever
    stats = writer.stats()
    assert stats.dropped == {DropReason.BUILD_FAILED.value: 1}
    assert stats.stored == 2 and stats.offered == 3 and stats.balanced()
    assert set(store.rows) == {before.id, after.id}
    assert stats.last_error is not None and "cannot build broken" in stats.last_error


def test_a_record_that_cannot_be_built_is_counted_while_the_store_is_down(
        tmp_path: Path, writers: list[BackgroundWriter]) -> None:
    inner = MemoryStore()
    store = FaultyStore(inner)
    store.down = True
    writer = BackgroundWriter(store, config(tmp_path, max_queue_events=40, batch_max_events=10,
                                            spill_high_water_fraction=0.25), name="spill")
    writers.append(writer)
    records = [make_record("ok") for _ in range(30)]
    for record in records[:15]:
        writer.offer(record)
    writer.offer_light(Unbuildable("broken"))
    for record in records[15:]:
        writer.offer(record)
    store.down = False
    assert writer.flush(20.0)
    stats = writer.stats()
    assert stats.dropped == {DropReason.BUILD_FAILED.value: 1}
    assert stats.balanced() and stats.stored == 30
    assert set(inner.rows) == {r.id for r in records}


def test_capturing_trail_builds_records_when_they_are_read() -> None:
    pricer = ThreadPricer()
    with capture_records(pricer=pricer) as captured:
        _chain(captured.recorder, "t")
        assert pricer.threads == []  # ended, not built yet
        records = captured.records
        assert all(isinstance(r, CapturedRun) for r in records)
        assert [r.run.id for r in records] == ["t-llm", "t-root"]
        assert len(pricer.threads) == 1
        assert captured.records[0] is records[0]  # built once
        (llm,) = captured.llm_calls()
        assert llm.cost_metrics is not None and llm.cost_metrics.total_cost == Decimal("1.2")


def test_end_run_returns_the_ended_run() -> None:
    sink = ListSink()
    rec = Recorder(sink, pricer=ThreadPricer())
    rec.start_run("x", kind=RunKind.CHAIN, name="x")
    ended = rec.end_run("x", outputs={"a": 1})
    assert isinstance(ended, EndedRun) and isinstance(ended, LightRecord)
    assert ended.build() is sink.records[0]  # a plain sink got it built
    assert ended.build().run.outputs == {"a": 1}
