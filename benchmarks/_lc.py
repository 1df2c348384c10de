"""LangChain configurations and workloads (invoke, stream, batch of 8)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._floor import floor_handler
from ._frameworks import QUESTION, support
from ._tools import MLFLOW_BLOCK, Config, Tools, imported

Workload = Callable[[list[Any]], Any]


def workloads() -> dict[str, Workload]:
    chain = support("lc_support").build_rag_chain()

    def invoke(callbacks: list[Any]) -> Any:
        return chain.invoke(QUESTION, config={"callbacks": callbacks})

    def stream(callbacks: list[Any]) -> Any:
        return [chunk for chunk in chain.stream(QUESTION, config={"callbacks": callbacks})]

    def batch(callbacks: list[Any]) -> Any:
        return chain.batch([QUESTION] * 8, config={"callbacks": callbacks})

    return {"invoke": invoke, "stream": stream, "batch8": batch}


def configs(tools: Tools) -> list[Config]:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.tracers.run_collector import RunCollectorCallbackHandler

    from ragtrail_langchain import RagtrailCallbackHandler

    class NoOpHandler(BaseCallbackHandler):
        """Receives every callback and does nothing: the framework's own floor."""

    floor, floor_flush = floor_handler(tools.work_dir / "floor.db")
    found = [Config("none"), Config("noop_handler", callbacks=[NoOpHandler()]),
             Config("floor_to_json_sqlite", callbacks=[floor], flush=floor_flush,
                    note="payloads serialized by pydantic-core and inserted, nothing else")]
    for name, trail in tools.trails.items():
        found.append(Config(name, callbacks=[RagtrailCallbackHandler(trail)],
                            flush=tools.trail_flush(name)))
    collector = RunCollectorCallbackHandler()
    found.append(Config("lc_run_collector", callbacks=[collector],
                        reset=collector.traced_runs.clear))
    found.extend(_langfuse(tools) + _openinference(tools) + _mlflow(tools))
    return found


def _langfuse(tools: Tools) -> list[Config]:
    if tools.langfuse is None:
        return []
    from langfuse.langchain import CallbackHandler

    return [Config("langfuse", callbacks=[CallbackHandler(public_key="pk-lf-bench")],
                   note="exports to a closed port; its flush is not timed (see BENCHMARKS.md)")]


def _openinference(tools: Tools) -> list[Config]:
    if tools.otel is None:
        return []
    module = imported(tools, "openinference", "openinference.instrumentation.langchain")
    if module is None:
        return []
    provider, exporter = tools.otel
    instrumentor = module.LangChainInstrumentor()
    return [Config("openinference",
                   enter=lambda: instrumentor.instrument(tracer_provider=provider),
                   exit=instrumentor.uninstrument, flush=provider.force_flush,
                   reset=exporter.clear)]


def _mlflow(tools: Tools) -> list[Config]:
    if tools.mlflow is None:
        return []
    module = imported(tools, "mlflow", "mlflow.langchain.langchain_tracer")
    if module is None:
        return []
    return [Config("mlflow", callbacks=[module.MlflowLangchainTracer()],
                   flush=tools.mlflow_flush, max_block=MLFLOW_BLOCK)]
