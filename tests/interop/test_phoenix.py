"""Arize Phoenix as a real receiver: ``phoenix serve`` on 127.0.0.1 with a temporary
working directory and telemetry off; the demo's traces go in with ``ragtrail export
--otlp`` and come back through Phoenix's own client, checked against ``trail.lineage()``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from conftest import free_port, start

from ragtrail import Trail
from ragtrail.cli import cli
from ragtrail.export import span_ids
from ragtrail.schemas import DocStage

pytest.importorskip("phoenix.client", reason="arize-phoenix is not installed")

#: ragtrail run kind -> the span kind Phoenix shows.
KINDS = {"llm": "LLM", "retriever": "RETRIEVER", "reranker": "RERANKER", "tool": "TOOL",
         "agent": "AGENT", "embedding": "EMBEDDING"}


@pytest.fixture(scope="module")
def phoenix() -> Iterator[str]:
    port, grpc = free_port(), free_port()
    env = {"PHOENIX_PORT": str(port), "PHOENIX_GRPC_PORT": str(grpc),
           "PHOENIX_HOST": "127.0.0.1", "PHOENIX_TELEMETRY_ENABLED": "false"}
    for _server, base in start("phoenix", "phoenix", ["serve"], env, "/healthz", port,
                               workdir_env="PHOENIX_WORKING_DIR"):
        yield base


def _export_and_read(phoenix: str, url: str, ids: list[str]) -> dict[str, Any]:
    """``ragtrail export --otlp`` to Phoenix, then every trace's spans through Phoenix's
    own client (waiting for its asynchronous ingestion)."""
    result = CliRunner().invoke(cli, ["export", *ids, "--db", url, "--otlp",
                                      f"{phoenix}/v1/traces"])
    assert result.exit_code == 0, result.output
    from phoenix.client import Client

    client = Client(base_url=phoenix)
    with Trail(url, background=False) as trail:
        lineages = [trail.lineage(i) for i in ids]
    spans: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + 60
    for lineage in lineages:
        project = lineage.root.app_name
        while True:  # Phoenix ingests asynchronously
            try:
                got = client.spans.get_spans(project_identifier=project, limit=1000,
                                             trace_ids=[_otel_trace(lineage.trace_id)])
            except httpx.HTTPStatusError as exc:
                # The project is created by the ingestion itself: 404 until it has run.
                if exc.response.status_code != 404 or time.monotonic() > deadline:
                    raise
                got = []
            if len(got) >= len(lineage.runs) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        spans[lineage.trace_id] = got
    return {"lineages": lineages, "spans": spans}


@pytest.fixture(scope="module")
def exported(phoenix: str, demo_db: tuple[str, list[str]]) -> dict[str, Any]:
    return _export_and_read(phoenix, *demo_db)


def _otel_trace(trace_id: str) -> str:
    return f"{span_ids(trace_id, trace_id)[0]:032x}"


def _by_run(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["attributes"]["ragtrail.run.id"]: s for s in spans}


def test_phoenix_shows_the_tree_of_every_trace(exported) -> None:
    for lineage in exported["lineages"]:
        spans = _by_run(exported["spans"][lineage.trace_id])
        assert set(spans) == {run.id for run in lineage.runs}
        for run in lineage.runs:
            span = spans[run.id]
            trace_int, span_int = span_ids(run.trace_id, run.id)
            assert span["context"]["trace_id"] == f"{trace_int:032x}"
            assert span["context"]["span_id"] == f"{span_int:016x}"
            parent = spans[run.parent_id]["context"]["span_id"] if run.parent_id else None
            assert span["parent_id"] == parent
            assert span["name"] == run.name
            assert span["status_code"] == "OK"


def test_phoenix_span_kinds_models_and_tokens(exported) -> None:
    for lineage in exported["lineages"]:
        spans = _by_run(exported["spans"][lineage.trace_id])
        for run in lineage.runs:
            assert spans[run.id]["span_kind"] == KINDS.get(run.kind.value, "CHAIN")
        assert lineage.llm_calls
        for call in lineage.llm_calls:
            meta, attrs = call.metadata, spans[call.run_id]["attributes"]
            usage = meta.token_usage
            assert attrs["llm.token_count.prompt"] == usage.input_tokens
            assert attrs["llm.token_count.completion"] == usage.output_tokens
            assert attrs["llm.token_count.total"] == usage.total_tokens
            model = (meta.response_metadata.model_version if meta.response_metadata else None) \
                or meta.provider_model
            assert attrs["llm.model_name"] == model
            assert attrs["gen_ai.response.model"] == model


def test_phoenix_retrieval_and_reranker_documents(exported) -> None:
    reranked_seen = False
    for lineage in exported["lineages"]:
        spans = _by_run(exported["spans"][lineage.trace_id])
        for use in lineage.documents_at(DocStage.RETRIEVED):
            attrs = spans[use.run_id]["attributes"]
            prefix = f"retrieval.documents.{use.rank}.document"
            assert attrs[f"{prefix}.id"] == use.document_id
            assert attrs[f"{prefix}.content"] == use.content
            if use.score is not None:
                assert attrs[f"{prefix}.score"] == pytest.approx(use.score)
            assert _metadata(attrs, f"{prefix}.metadata") == use.metadata
        for use in lineage.documents_at(DocStage.RERANKED):
            reranked_seen = True
            attrs = spans[use.run_id]["attributes"]
            prefix = f"reranker.output_documents.{use.rank}.document"
            assert attrs[f"{prefix}.id"] == use.document_id
            assert attrs[f"{prefix}.score"] == pytest.approx(use.score)
    assert reranked_seen, "the LangChain demo reranks"


def _metadata(attrs: dict[str, Any], key: str) -> Any:
    """A JSON attribute as Phoenix returns it: the JSON text, or flattened into keys."""
    if key in attrs:
        value = attrs[key]
        return json.loads(value) if isinstance(value, str) else value
    prefix = key + "."
    return {k[len(prefix):]: v for k, v in attrs.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def tools_exported(phoenix: str, tools_db: tuple[str, list[str]]) -> dict[str, Any]:
    return _export_and_read(phoenix, *tools_db)


def _json_attr(attrs: dict[str, Any], key: str) -> Any:
    """A JSON-valued attribute as Phoenix returns it (the JSON text, or already parsed)."""
    value = attrs[key]
    return json.loads(value) if isinstance(value, str) else value


def _tool_calls(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """The OpenInference ``message.tool_calls`` of the message at ``prefix``, as Phoenix
    returns them, in the canonical {id, name, arguments} shape."""
    calls = []
    index = 0
    while f"{prefix}.message.tool_calls.{index}.tool_call.function.name" in attrs:
        call = f"{prefix}.message.tool_calls.{index}.tool_call"
        calls.append({"id": attrs.get(f"{call}.id"),
                      "name": attrs[f"{call}.function.name"],
                      "arguments": _json_attr(attrs, f"{call}.function.arguments")})
        index += 1
    return calls


def test_phoenix_shows_tools_offered_called_and_run(tools_exported) -> None:
    for lineage in tools_exported["lineages"]:
        spans = _by_run(tools_exported["spans"][lineage.trace_id])
        assert set(spans) == {run.id for run in lineage.runs}
        asked, answered = lineage.llm_calls
        assert asked.metadata.tool_calls and asked.metadata.tools
        for call in (asked, answered):
            attrs = spans[call.run_id]["attributes"]
            assert spans[call.run_id]["span_kind"] == "LLM"
            # The tools offered: OpenInference llm.tools.N.tool.json_schema.
            offered = [_json_attr(attrs, f"llm.tools.{n}.tool.json_schema")
                       for n in range(len(call.metadata.tools or ()))]
            assert [t["function"] for t in offered] == [
                {k: v for k, v in d.items() if v is not None} for d in call.metadata.tools]
            assert "llm.tools.1.tool.json_schema" not in attrs  # one tool offered
        # The call the model asked for: the output message's tool_calls.
        attrs = spans[asked.run_id]["attributes"]
        assert _tool_calls(attrs, "llm.output_messages.0") == asked.metadata.tool_calls
        # The answering call got it back: the assistant message with the call, then the
        # tool result under its tool_call_id.
        attrs = spans[answered.run_id]["attributes"]
        (call_id,) = [c["id"] for c in asked.metadata.tool_calls]
        assert _tool_calls(attrs, "llm.input_messages.1") == asked.metadata.tool_calls
        assert attrs["llm.input_messages.2.message.role"] == "tool"
        assert attrs["llm.input_messages.2.message.tool_call_id"] == call_id
        # The tool run: a TOOL span with the tool's name and the call it answered.
        (tool,) = [run for run in lineage.runs if run.kind.value == "tool"]
        span = spans[tool.id]
        assert span["span_kind"] == "TOOL" and span["name"] == "search_notes"
        assert span["attributes"]["tool.name"] == "search_notes"
        assert span["attributes"]["tool.id"] == call_id
        assert span["parent_id"] == spans[tool.parent_id]["context"]["span_id"]
