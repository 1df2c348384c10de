"""Live OTLP export from the writer: ``Trail(exporters=[OtlpExporter(url)])``.

A receiver on 127.0.0.1 that answers, refuses, answers slowly or is not there at all:
capture and storage never wait for it, every stored record stays stored, and what the
exporter could not send is counted in ``stats()``."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from otlp_receiver import Receiver, serve

from ragtrail import Trail
from ragtrail.errors import ConfigError
from ragtrail.export import OtlpExporter, span_ids
from ragtrail_langchain import RagtrailCallbackHandler

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import langchain_rag


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


def _closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now: connections are refused
    return f"http://127.0.0.1:{port}/v1/traces"


def _fast_retries(**extra: object) -> dict[str, object]:
    return {"retry_attempts": 2, "retry_initial_backoff_s": 0.01, "retry_max_backoff_s": 0.05,
            "timeout_s": 1.0, **extra}


def test_live_export_of_a_langchain_chain(db_url, receiver) -> None:
    exporter = OtlpExporter(receiver.url, headers={"authorization": "Bearer sk-secret-xyz"})
    with Trail(db_url, app_name="live", exporters=[exporter]) as trail:
        handler = RagtrailCallbackHandler(trail)
        langchain_rag.build_chain().invoke(langchain_rag.QUESTION,
                                           config={"callbacks": [handler]})
        assert trail.flush()
        assert exporter.flush(10)
        lineage = trail.lineage(handler.last_trace_id)
        stats = trail.stats()["exporters"][0]
    assert {s.attributes["ragtrail.run.id"] for s in receiver.spans} == {r.id for r in
                                                                          lineage.runs}
    # The same ids as `ragtrail export --otlp` would give them, tree included.
    for span in receiver.spans:
        run = lineage.run(span.attributes["ragtrail.run.id"])
        trace_int, span_int = span_ids(run.trace_id, run.id)
        assert (span.trace_id, span.span_id) == (f"{trace_int:032x}", f"{span_int:016x}")
        if run.parent_id:
            assert span.parent_span_id == f"{span_ids(run.trace_id, run.parent_id)[1]:016x}"
    llm = [s for s in receiver.spans if s.attributes.get("openinference.span.kind") == "LLM"]
    assert llm[0].attributes["gen_ai.usage.input_tokens"] \
        == lineage.llm_calls[0].metadata.token_usage.input_tokens
    assert receiver.headers[0]["authorization"] == "Bearer sk-secret-xyz"
    assert stats["sent"] == len(lineage.runs) and stats["dropped_total"] == 0
    assert stats["target"] == receiver.url and "sk-secret-xyz" not in str(stats)


def test_a_receiver_that_is_down_neither_slows_nor_loses_capture(tmp_path) -> None:
    exporter = OtlpExporter(_closed_port_url(), **_fast_retries())
    with Trail(f"sqlite:///{tmp_path / 'down.db'}", exporters=[exporter]) as trail:
        started = time.monotonic()
        for i in range(200):
            with trail.run(f"step-{i}"):
                pass
        capture_s = time.monotonic() - started
        assert trail.flush(30)
        stored = len(trail.traces(limit=1000))
        assert exporter.flush(30)
        stats = trail.stats()
    assert stored == 200
    assert stats["writer"]["stored"] == 200
    ex = stats["exporters"][0]
    assert ex["sent"] == 0
    assert ex["dropped"].get("export_failed", 0) + ex["dropped"].get("queue_full", 0) == 200
    assert ex["failed_batches"] >= 1 and ex["retried"] >= 1
    # Capture ran while every export attempt failed: the 200 runs were recorded far
    # faster than even one failed attempt with its retries could take (bounded, loose).
    assert capture_s < 20


def test_a_refusing_receiver_is_counted_and_storage_goes_on(tmp_path, receiver) -> None:
    receiver.mode = "refuse"
    exporter = OtlpExporter(receiver.url, **_fast_retries())
    with Trail(f"sqlite:///{tmp_path / 'refuse.db'}", exporters=[exporter]) as trail:
        for i in range(10):
            with trail.run(f"r{i}"):
                pass
        assert trail.flush(10) and exporter.flush(10)
        assert len(trail.traces(limit=100)) == 10
        ex = trail.stats()["exporters"][0]
    assert ex["sent"] == 0 and ex["dropped"]["export_failed"] == 10
    assert ex["last_error"] and receiver.url in ex["last_error"]


def test_a_slow_receiver_fills_the_bounded_queue_and_drops_are_counted(tmp_path,
                                                                      receiver) -> None:
    receiver.mode, receiver.delay_s = "slow", 0.5
    exporter = OtlpExporter(receiver.url, max_queue_records=5, batch_size=5,
                            **_fast_retries(timeout_s=5.0))
    with Trail(f"sqlite:///{tmp_path / 'slow.db'}", exporters=[exporter],
               background=False) as trail:
        for i in range(60):
            with trail.run(f"s{i}"):
                pass
            trail.flush()  # one stored batch per run: offers arrive while the receiver sleeps
        assert len(trail.traces(limit=100)) == 60  # every record stored
        assert exporter.flush(30)
        ex = trail.stats()["exporters"][0]
    assert ex["dropped"]["queue_full"] > 0
    assert ex["offered"] == 60
    assert ex["sent"] + ex["dropped_total"] == 60  # nothing unaccounted for
    assert receiver.wait_for(ex["sent"]) and len(receiver.spans) == ex["sent"]


def test_close_with_a_dead_receiver_accounts_for_every_record(tmp_path) -> None:
    # close() stops the retries (how long it takes is not a test's business: the
    # exporter's shutdown_timeout_s bounds it, and pytest's timeout guards a hang).
    exporter = OtlpExporter(_closed_port_url(), shutdown_timeout_s=0.5,
                            **_fast_retries(retry_attempts=50, timeout_s=2.0))
    url = f"sqlite:///{tmp_path / 'close.db'}"
    trail = Trail(url, exporters=[exporter])
    for i in range(20):
        with trail.run(f"c{i}"):
            pass
    assert trail.close(10)  # the store has everything
    ex = exporter.stats()
    assert ex["sent"] == 0 and ex["dropped_total"] == 20 and ex["queued"] == 0
    assert ex["retried"] < 50  # closing cut the retries short
    with Trail.open_readonly(url) as reader:
        assert len(reader.traces(limit=100)) == 20  # a dead exporter never loses a record


def test_exporters_must_be_exporters(tmp_path) -> None:
    with pytest.raises(ConfigError, match="OtlpExporter"):
        Trail(f"sqlite:///{tmp_path / 'bad.db'}", exporters=["http://x"])  # type: ignore[list-item]


def test_a_bad_endpoint_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="http"):
        OtlpExporter("127.0.0.1:4318")


def test_hidden_and_redacted_content_is_not_exported(tmp_path, receiver) -> None:
    from ragtrail.capture import CaptureConfig

    exporter = OtlpExporter(receiver.url)
    config = CaptureConfig(hide_inputs=True, hide_document_content=True)
    with Trail(f"sqlite:///{tmp_path / 'hidden.db'}", capture=config,
               exporters=[exporter]) as trail:
        handler = RagtrailCallbackHandler(trail)
        langchain_rag.build_chain().invoke(
            langchain_rag.QUESTION + " My key is AKIAIOSFODNN7EXAMPLE.",
            config={"callbacks": [handler]})
        assert trail.flush() and exporter.flush(10)
        lineage = trail.lineage(handler.last_trace_id)
    text = repr([s.attributes for s in receiver.spans])
    assert len(receiver.spans) == len(lineage.runs)
    spans = {s.attributes["ragtrail.run.id"]: s.attributes for s in receiver.spans}
    for run in lineage.runs:  # what capture hid stays hidden: the span has what is stored
        assert langchain_rag.QUESTION not in json.dumps(run.inputs)
        sent = spans[run.id].get("input.value")
        if run.inputs is None:
            assert sent is None
        else:
            assert (sent if isinstance(run.inputs, str) else json.loads(sent)) == run.inputs
    assert "AKIAIOSFODNN7EXAMPLE" not in text  # redacted at capture stays redacted
    for use in lineage.documents:
        assert use.content is None
    for text_of_doc in langchain_rag.KNOWLEDGE.values():
        assert f"document.content': '{text_of_doc}" not in text
