"""The MLflow tracking server as a real receiver: ``mlflow server`` on 127.0.0.1 with a
temporary SQLite backend accepts OTLP at /v1/traces with an ``x-mlflow-experiment-id``
header. The demo's traces go in with ``ragtrail export --otlp`` and the live
``OtlpExporter``; MLflow's client then shows their span types and token usage."""

from __future__ import annotations

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
