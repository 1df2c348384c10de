"""The MLflow tracking server as a real receiver: ``mlflow server`` on 127.0.0.1 with a
temporary SQLite backend accepts OTLP at /v1/traces with an ``x-mlflow-experiment-id``
header. The demo's traces go in with ``ragtrail export --otlp`` and the live
``OtlpExporter``; MLflow's client then shows their span types and token usage."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import free_port, start

from ragtrail import Trail
from ragtrail.cli import cli

pytest.importorskip("mlflow", reason="mlflow is not installed")

#: ragtrail run kind -> MLflow span type.
TYPES = {"llm": "LLM", "retriever": "RETRIEVER", "reranker": "RERANKER", "tool": "TOOL",
         "agent": "AGENT", "embedding": "EMBEDDING"}


@pytest.fixture(scope="module")
def mlflow_server() -> Iterator[str]:
    import tempfile

    port = free_port()
    store = tempfile.mkdtemp(prefix="ragtrail-mlflow-store-")
    args = ["server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{store}/mlflow.db",
            "--default-artifact-root", f"{store}/artifacts"]
    env = {"MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "true"}
    for _server, base in start("mlflow", "mlflow", args, env, "/health", port):
        yield base


def _traces(client: Any, experiment_id: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 60
    while True:
        found = client.search_traces(locations=[experiment_id], max_results=100)
        if len(found) >= count or time.monotonic() > deadline:
            return list(found)
        time.sleep(0.5)


def _check(found: list[Any], lineages: list[Any]) -> None:
    by_run = {}
    for trace in found:
        for span in trace.data.spans:
            by_run[span.attributes["ragtrail.run.id"]] = (trace, span)
    for lineage in lineages:
        assert {run.id for run in lineage.runs} <= set(by_run)
        for run in lineage.runs:
            _trace, span = by_run[run.id]
            assert span.span_type == TYPES.get(run.kind.value, "CHAIN")
            assert span.name == run.name
        for call in lineage.llm_calls:
            trace, span = by_run[call.run_id]
            usage = call.metadata.token_usage
            expected = {"input_tokens": usage.input_tokens,
                        "output_tokens": usage.output_tokens,
                        "total_tokens": usage.total_tokens}
            assert span.attributes["mlflow.chat.tokenUsage"] == expected
            # MLflow sums the trace's token usage from its LLM spans.
            assert trace.info.token_usage["input_tokens"] == sum(
                c.metadata.token_usage.input_tokens for c in lineage.llm_calls)


def test_mlflow_shows_span_types_and_token_usage(mlflow_server, demo_db) -> None:
    from mlflow import MlflowClient

    url, ids = demo_db
    client = MlflowClient(mlflow_server)
    experiment = client.create_experiment("ragtrail-cli")
    result = CliRunner().invoke(cli, ["export", *ids, "--db", url, "--otlp",
                                      f"{mlflow_server}/v1/traces",
                                      "--header", f"x-mlflow-experiment-id={experiment}",
                                      "--timeout", "120"])
    assert result.exit_code == 0, result.output
    with Trail(url, background=False) as trail:
        lineages = [trail.lineage(i) for i in ids]
    found = _traces(client, experiment, len(ids))
    assert len(found) == len(ids)
    _check(found, lineages)


def test_mlflow_receives_live_export(mlflow_server, tmp_path) -> None:
    import langchain_rag
    from mlflow import MlflowClient

    from ragtrail.export import OtlpExporter
    from ragtrail_langchain import RagtrailCallbackHandler

    client = MlflowClient(mlflow_server)
    experiment = client.create_experiment("ragtrail-live")
    exporter = OtlpExporter(f"{mlflow_server}/v1/traces", timeout_s=60.0,
                            headers={"x-mlflow-experiment-id": experiment})
    with Trail(f"sqlite:///{tmp_path / 'live.db'}", app_name="live",
               exporters=[exporter]) as trail:
        handler = RagtrailCallbackHandler(trail)
        langchain_rag.build_chain().invoke(langchain_rag.QUESTION,
                                           config={"callbacks": [handler]})
        assert trail.flush() and exporter.flush(60)
        lineage = trail.lineage(handler.last_trace_id)
        assert exporter.stats()["sent"] == len(lineage.runs)
    _check(_traces(client, experiment, 1), [lineage])


def _json(value: Any) -> Any:
    """An attribute as MLflow's client returns it: parsed, or still JSON text."""
    return json.loads(value) if isinstance(value, str) else value


def _export_tools(server: str, client: Any, url: str, ids: list[str],
                  conventions: str) -> dict[str, Any]:
    experiment = client.create_experiment(f"ragtrail-tools-{conventions.replace(',', '-')}")
    result = CliRunner().invoke(cli, ["export", *ids, "--db", url, "--otlp",
                                      f"{server}/v1/traces", "--conventions", conventions,
                                      "--header", f"x-mlflow-experiment-id={experiment}",
                                      "--timeout", "120"])
    assert result.exit_code == 0, result.output
    found = _traces(client, experiment, len(ids))
    assert len(found) == len(ids)
    return {span.attributes["ragtrail.run.id"]: span
            for trace in found for span in trace.data.spans}


def test_mlflow_shows_tools_offered_called_and_run(mlflow_server, tools_db) -> None:
    """MLflow reads the tools offered from ``gen_ai.tool.definitions`` (its chat tools),
    the tool runs as TOOL spans with their arguments and results, and, when only the
    GenAI convention is sent, the tool calls from ``gen_ai.input/output.messages``."""
    from mlflow import MlflowClient

    url, ids = tools_db
    client = MlflowClient(mlflow_server)
    with Trail(url, background=False) as trail:
        lineages = [trail.lineage(i) for i in ids]
    assert len(lineages) == 4  # two rounds of the two clients
    # Each export its own traces: MLflow keys a trace by its OTLP trace id (the same on
    # every export), so a trace sent again would land in the experiment that has it.
    for conventions, some in (("genai,openinference", lineages[:2]), ("genai", lineages[2:])):
        spans = _export_tools(mlflow_server, client, url, [x.trace_id for x in some],
                              conventions)
        for lineage in some:
            asked, answered = lineage.llm_calls
            assert asked.metadata.tool_calls and asked.metadata.tools
            (call_id,) = [c["id"] for c in asked.metadata.tool_calls]
            for call in (asked, answered):
                span = spans[call.run_id]
                assert span.span_type == ("LLM" if "openinference" in conventions
                                          else "CHAT_MODEL")
                tools = _json(span.attributes["mlflow.chat.tools"])
                assert [(t["name"], t.get("description"), t.get("parameters"))
                        for t in tools] == [(d["name"], d["description"], d["parameters"])
                                            for d in call.metadata.tools]
            (tool,) = [run for run in lineage.runs if run.kind.value == "tool"]
            span = spans[tool.id]
            assert span.span_type == "TOOL" and span.name == "search_notes"
            assert span.inputs == tool.inputs == {"query": "WAL readers", "k": 2}
            assert span.outputs == tool.outputs and span.outputs["tool_call_id"] == call_id
            assert span.attributes["gen_ai.tool.call.id"] == call_id
            if conventions != "genai":
                continue
            # GenAI alone: MLflow's inputs and outputs are the GenAI messages, tool call
            # parts included.
            (asked_out,) = spans[asked.run_id].outputs
            assert [p for p in asked_out["parts"] if p["type"] == "tool_call"] == [
                {"type": "tool_call", **c} for c in asked.metadata.tool_calls]
            answered_in = spans[answered.run_id].inputs
            assert [m["role"] for m in answered_in] == ["user", "assistant", "tool"]
            assert answered_in[1]["parts"][-1]["id"] == call_id
            assert answered_in[2]["parts"] == [{"type": "tool_call_response", "id": call_id,
                                                "response": answered.metadata.messages[2][
                                                    "content"]}]
