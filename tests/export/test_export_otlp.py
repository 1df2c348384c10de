"""OpenTelemetry export: the demo's real LangChain and LlamaIndex traces, sent as OTLP/HTTP
protobuf to a receiver on 127.0.0.1 that decodes them with opentelemetry-proto, checked
against what ``trail.lineage()`` returns; the CLI's --otlp; redaction switches."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from click.testing import CliRunner
from otlp_receiver import ReceivedSpan, Receiver, serve

from ragtrail import Trail
from ragtrail.cli import cli
from ragtrail.export import SpanOptions, span_ids
from ragtrail.query import Lineage
from ragtrail.schemas import DocStage
from ragtrail.testing.internals import send_lineages, span_exporter

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import langchain_rag
import llamaindex_rag


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """The demo's two traces (a LangChain LCEL chain with a reranker, a LlamaIndex query
    engine), stored in a fresh SQLite file."""
    url = f"sqlite:///{tmp_path_factory.mktemp('otlp') / 'demo.db'}"
    ids = [langchain_rag.main(url), llamaindex_rag.main(url)]
    return url, ids


def _send(url: str, ids: list[str], receiver: Receiver,
          options: SpanOptions | None = None) -> list[Lineage]:
    with Trail(url, background=False) as trail:
        lineages = [trail.lineage(i) for i in ids]
    summary = send_lineages(lineages, span_exporter(receiver.url), options)
    assert summary.ok and summary.spans == sum(len(lin.runs) for lin in lineages)
    return lineages


def _hex(value: int, width: int) -> str:
    return f"{value:0{width}x}"


def test_one_span_per_run_with_the_tree_times_and_status(demo, receiver: Receiver) -> None:
    url, ids = demo
    lineages = _send(url, ids, receiver)
    spans = {s.attributes["ragtrail.run.id"]: s for s in receiver.spans}
    for lineage in lineages:
        for run in lineage.runs:
            span = spans[run.id]
            trace_int, span_int = span_ids(run.trace_id, run.id)
            assert span.trace_id == _hex(trace_int, 32) and span.span_id == _hex(span_int, 16)
            if run.parent_id is None:
                assert span.parent_span_id == ""
            else:
                assert span.parent_span_id == spans[run.parent_id].span_id
            assert span.start_ns == int(run.started_at.timestamp() * 1e6) * 1000
            assert span.end_ns >= span.start_ns
            assert span.status_code == 1  # OK
            assert span.name == run.name
            assert span.attributes["ragtrail.run.kind"] == run.kind.value
        # One trace id per trace, and a service named after the application.
        assert len({spans[r.id].trace_id for r in lineage.runs}) == 1
        assert spans[lineage.trace_id].resource["service.name"] == lineage.root.app_name


def test_exporting_twice_gives_the_same_ids(demo, receiver: Receiver) -> None:
    url, ids = demo
    _send(url, ids, receiver)
    first = sorted((s.trace_id, s.span_id, s.parent_span_id) for s in receiver.spans)
    receiver.spans.clear()
    _send(url, ids, receiver)
    assert sorted((s.trace_id, s.span_id, s.parent_span_id) for s in receiver.spans) == first


def test_llm_spans_carry_both_conventions(demo, receiver: Receiver) -> None:
    url, ids = demo
    lineages = _send(url, ids, receiver)
    spans = {s.attributes["ragtrail.run.id"]: s for s in receiver.spans}
    calls = [call for lineage in lineages for call in lineage.llm_calls]
    assert len(calls) == 2
    for call in calls:
        meta = call.metadata
        a = spans[call.run_id].attributes
        assert spans[call.run_id].kind == 3  # SPAN_KIND_CLIENT
        usage = meta.token_usage
        # OpenTelemetry GenAI
        assert a.get("gen_ai.operation.name") == ("chat" if meta.messages else "text_completion")
        assert a.get("gen_ai.provider.name") == meta.provider
        params, response = meta.request_parameters, meta.response_metadata
        assert a["gen_ai.request.model"] == ((params.model if params else None)
                                             or meta.provider_model)
        assert a["gen_ai.response.model"] == ((response.model_version if response else None)
                                              or meta.provider_model)
        assert a.get("gen_ai.usage.input_tokens") == usage.input_tokens
        assert a.get("gen_ai.usage.output_tokens") == usage.output_tokens
        assert a.get("gen_ai.response.finish_reasons") == [meta.response_metadata.finish_reason]
        sent = meta.messages or [{"role": "user", "content": meta.prompt_text}]
        messages = json.loads(a["gen_ai.input.messages"])
        assert [m["role"] for m in messages] == [m["role"] for m in sent]
        assert messages[-1]["parts"][0]["content"] == sent[-1]["content"]
        output = json.loads(a["gen_ai.output.messages"])
        assert output[0]["parts"][0]["content"] == meta.output_text
        # OpenInference
        assert a["openinference.span.kind"] == "LLM"
        assert a["llm.model_name"] == a["gen_ai.response.model"] == (
            meta.response_metadata.model_version or meta.provider_model)
        assert a["llm.token_count.prompt"] == usage.input_tokens
        assert a["llm.token_count.completion"] == usage.output_tokens
        assert a["llm.token_count.total"] == usage.total_tokens
        assert json.loads(a["llm.invocation_parameters"]) == meta.request_parameters.dump()
        if meta.messages:
            for index, message in enumerate(meta.messages):
                assert a[f"llm.input_messages.{index}.message.role"] == message["role"]
                assert a[f"llm.input_messages.{index}.message.content"] == message["content"]
        else:
            assert a["llm.prompts.0.prompt.text"] == meta.prompt_text
        assert a["llm.output_messages.0.message.content"] == meta.output_text
        assert a["llm.cost.total"] == pytest.approx(float(meta.cost_metrics.total_cost))
        # ragtrail's own: cost by bucket and the prices used
        cost = meta.cost_metrics
        assert a["ragtrail.cost.input"] == pytest.approx(float(cost.input_cost))
        assert a["ragtrail.cost.output"] == pytest.approx(float(cost.output_cost))
        assert a["ragtrail.price.input_per_1k"] == pytest.approx(float(cost.input_price_per_1k))
        assert a["ragtrail.price.source"] == cost.price_source
        assert a["ragtrail.price.status"] == "priced"


def test_documents_by_stage(demo, receiver: Receiver) -> None:
    url, ids = demo
    lineages = _send(url, ids, receiver)
    spans = {s.attributes["ragtrail.run.id"]: s for s in receiver.spans}
    for lineage in lineages:
        retrieved = lineage.documents_at(DocStage.RETRIEVED)
        assert retrieved
        for use in retrieved:
            a = spans[use.run_id].attributes
            assert a["openinference.span.kind"] == "RETRIEVER"
            prefix = f"retrieval.documents.{use.rank}.document"
            assert a[f"{prefix}.id"] == use.document_id
            assert a[f"{prefix}.content"] == use.content
            assert json.loads(a[f"{prefix}.metadata"]) == use.metadata
            assert a[f"ragtrail.documents.retrieved.{use.rank}.document.content_hash"] \
                == use.content_hash
            if use.score is not None:
                assert a[f"{prefix}.score"] == pytest.approx(use.score)
            retrieval = json.loads(a["gen_ai.retrieval.documents"])
            assert retrieval[use.rank]["id"] == use.document_id
        in_prompt = lineage.documents_at(DocStage.IN_PROMPT)
        assert in_prompt
        for use in in_prompt:
            a = spans[use.run_id].attributes
            assert a[f"ragtrail.documents.in_prompt.{use.rank}.document.id"] == use.document_id
    # The LangChain demo reranks: output documents in their new order, inputs at their
    # position in the reranker's input.
    reranked = lineages[0].documents_at(DocStage.RERANKED)
    assert reranked
    for use in reranked:
        a = spans[use.run_id].attributes
        assert a["openinference.span.kind"] == "RERANKER"
        assert a[f"reranker.output_documents.{use.rank}.document.id"] == use.document_id
        assert a[f"reranker.input_documents.{use.input_rank}.document.id"] == use.document_id
        assert a[f"reranker.output_documents.{use.rank}.document.score"] \
            == pytest.approx(use.score)


def _all_values(spans: list[ReceivedSpan]) -> str:
    return json.dumps([[s.attributes, s.events] for s in spans], default=str)


def test_without_content_no_input_output_or_document_text_leaves(demo, receiver) -> None:
    url, ids = demo
    lineages = _send(url, ids, receiver, SpanOptions(include_content=False))
    text = _all_values(receiver.spans)
    for lineage in lineages:
        assert lineage.question and lineage.question not in text
        assert lineage.answer and lineage.answer not in text
        for use in lineage.documents:
            assert use.content and use.content not in text
    keys = {k for s in receiver.spans for k in s.attributes}
    for forbidden in ("input.value", "output.value", "gen_ai.input.messages",
                      "gen_ai.output.messages", "llm.prompt_template.variables"):
        assert forbidden not in keys
    assert not any(k.endswith(".document.content") or ".message.content" in k for k in keys)
    # What is not content is still there: tokens, models, document ids.
    assert "gen_ai.usage.input_tokens" in keys and "retrieval.documents.0.document.id" in keys


@pytest.mark.parametrize(("conventions", "present", "absent"), [
    ("genai", "gen_ai.", ("openinference.", "llm.", "retrieval.")),
    ("openinference", "openinference.", ("gen_ai.",)),
])
def test_one_convention_only(demo, receiver, conventions, present, absent) -> None:
    url, ids = demo
    _send(url, ids, receiver, SpanOptions.parse(conventions))
    keys = {k for s in receiver.spans for k in s.attributes}
    assert any(k.startswith(present) for k in keys)
    assert not [k for k in keys if k.startswith(absent)]
    assert any(k.startswith("ragtrail.") for k in keys)


def test_unknown_convention_is_a_clear_error() -> None:
    from ragtrail.errors import ConfigError

    with pytest.raises(ConfigError, match="genai, openinference"):
        SpanOptions.parse("genai,zipkin")


def test_a_failed_run_has_error_status_and_an_exception_event(tmp_path, receiver) -> None:
    url = f"sqlite:///{tmp_path / 'err.db'}"
    with Trail(url, background=False, app_name="errs") as trail:
        with pytest.raises(ZeroDivisionError), trail.run("divide", inputs={"x": 1}) as run:
            1 / 0  # noqa: B018
        trail.flush()
        lineage = trail.lineage(run.id)
    send_lineages([lineage], span_exporter(receiver.url))
    (span,) = receiver.spans
    assert span.status_code == 2 and span.status_message.startswith("ZeroDivisionError")
    (event,) = span.events
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ZeroDivisionError"
    assert event["attributes"]["exception.message"] == lineage.runs[0].error.message


def test_custom_events_and_session_travel(tmp_path, receiver) -> None:
    url = f"sqlite:///{tmp_path / 'ev.db'}"
    with Trail(url, background=False) as trail:
        with trail.run("step", session_id="s-1", user_id="alice") as run:
            run.event("cache-miss", {"key": "k1"})
        trail.flush()
        lineage = trail.lineage(run.id)
    send_lineages([lineage], span_exporter(receiver.url))
    (span,) = receiver.spans
    assert span.attributes["session.id"] == "s-1"
    assert span.attributes["gen_ai.conversation.id"] == "s-1"
    # The user is exported as the stored keyed hash, never the raw id.
    assert span.attributes["user.id"] == lineage.runs[0].user_hash != "alice"
    assert "alice" not in _all_values([span])
    (event,) = span.events
    assert event["name"] == "cache-miss"
    assert json.loads(event["attributes"]["ragtrail.event.data"]) == {"key": "k1"}


# --- the command line ------------------------------------------------------------------


def test_cli_export_otlp_sends_every_stored_trace(demo, receiver) -> None:
    url, _ids = demo
    result = CliRunner().invoke(cli, ["export", "--db", url, "--otlp", receiver.url,
                                      "--header", "x-team=search", "--header", "api-key=k=v"])
    assert result.exit_code == 0, result.output
    with Trail(url, background=False) as trail:
        total = {t.trace_id for t in trail.traces(limit=1000)}
        runs = sum(len(trail.lineage(t).runs) for t in total)
    assert len(receiver.spans) == runs
    assert f"sent {runs} spans from {len(total)} traces" in result.output
    assert receiver.headers[0]["x-team"] == "search"
    assert receiver.headers[0]["api-key"] == "k=v"
    assert receiver.headers[0]["content-type"] == "application/x-protobuf"


def test_cli_export_otlp_by_id(demo, receiver) -> None:
    url, ids = demo
    result = CliRunner().invoke(cli, ["export", ids[0], "--db", url, "--otlp", receiver.url,
                                      "--conventions", "genai"])
    assert result.exit_code == 0, result.output
    assert {s.attributes["ragtrail.trace.id"] for s in receiver.spans} == {ids[0]}
    assert not any("openinference.span.kind" in s.attributes for s in receiver.spans)


def test_cli_export_otlp_exits_non_zero_when_refused(demo, receiver) -> None:
    url, ids = demo
    receiver.mode = "refuse"
    result = CliRunner().invoke(cli, ["export", ids[0], "--db", url, "--otlp", receiver.url])
    assert result.exit_code == 1
    assert "1 batches" in result.output and "refused" in result.output


def test_cli_export_otlp_bad_header_is_a_clear_error(demo, receiver) -> None:
    url, _ = demo
    result = CliRunner().invoke(cli, ["export", "--db", url, "--otlp", receiver.url,
                                      "--header", "no-equals-sign"])
    assert result.exit_code == 1 and "KEY=VALUE" in result.output
    assert receiver.requests == 0
