"""LlamaIndex configurations and workloads (query, streaming query, 8 concurrent aquery)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from ._frameworks import QUESTION, support
from ._tools import MLFLOW_BLOCK, Config, Tools, imported

Workload = Callable[[list[Any]], Any]


def workloads() -> dict[str, Workload]:
    li = support("li_support")
    index = li.build_index()

    def engine(streaming: bool) -> Any:
        return index.as_query_engine(llm=li.UsageLLM(), similarity_top_k=4, streaming=streaming,
                                     node_postprocessors=[li.KeywordReranker(top_n=2)])

    plain, streamed = engine(False), engine(True)
    loop = asyncio.new_event_loop()

    def query(_: list[Any]) -> Any:
        return plain.query(QUESTION)

    def stream(_: list[Any]) -> Any:
        return list(streamed.query(QUESTION).response_gen)

    async def eight() -> Any:
        return await asyncio.gather(*(plain.aquery(QUESTION) for _ in range(8)))

    def batch(_: list[Any]) -> Any:
        return loop.run_until_complete(eight())

    return {"invoke": query, "stream": stream, "batch8": batch}


def _attach(handlers: list[Any]) -> tuple[Callable[[], None], Callable[[], None]]:
    from llama_index.core.instrumentation import get_dispatcher

    root = get_dispatcher()

    def enter() -> None:
        for handler in handlers:
            if hasattr(handler, "new_span"):
                root.add_span_handler(handler)
            else:
                root.add_event_handler(handler)

    def leave() -> None:
        root.span_handlers = [h for h in root.span_handlers
                              if not any(h is x for x in handlers)]
        root.event_handlers = [h for h in root.event_handlers
                               if not any(h is x for x in handlers)]

    return enter, leave


def _noop_handlers() -> list[Any]:
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.span import SimpleSpan
    from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

    class NoOpSpans(BaseSpanHandler[SimpleSpan]):
        """Receives every span and keeps nothing: the dispatcher's own floor."""

        def new_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any = None,
                     parent_span_id: str | None = None, tags: Any = None,
                     **kwargs: Any) -> SimpleSpan | None:
            return None

        def prepare_to_exit_span(self, id_: str, bound_args: inspect.BoundArguments,
                                 instance: Any = None, result: Any = None,
                                 **kwargs: Any) -> Any:
            return None

        def prepare_to_drop_span(self, id_: str, bound_args: inspect.BoundArguments,
                                 instance: Any = None, err: BaseException | None = None,
                                 **kwargs: Any) -> Any:
            return None

    class NoOpEvents(BaseEventHandler):
        """Receives every event and does nothing."""

        @classmethod
        def class_name(cls) -> str:
            return "NoOpEvents"

        def handle(self, event: Any, **kwargs: Any) -> None:
            return None

    return [NoOpSpans(), NoOpEvents()]


def attach_noop_handlers() -> None:
    """Attach the no-op span and event handlers to LlamaIndex's root dispatcher."""
    enter, _ = _attach(_noop_handlers())
    enter()


def configs(tools: Tools) -> list[Config]:
    from ragtrail_llamaindex import instrument, uninstrument

    enter, leave = _attach(_noop_handlers())
    found = [Config("none"), Config("noop_handler", enter=enter, exit=leave)]
    for name, trail in tools.trails.items():
        found.append(Config(name, enter=lambda t=trail: instrument(t),
                            exit=lambda t=trail: uninstrument(t), flush=tools.trail_flush(name)))
    found.extend(_openinference(tools) + _mlflow(tools))
    return found


def _instrumented(tools: Tools, name: str, provider: Any, **extra: Any) -> list[Config]:
    module = imported(tools, name, "openinference.instrumentation.llama_index")
    if module is None:
        return []
    instrumentor = module.LlamaIndexInstrumentor()
    return [Config(name, enter=lambda: instrumentor.instrument(tracer_provider=provider),
                   exit=instrumentor.uninstrument, **extra)]


def _openinference(tools: Tools) -> list[Config]:
    found: list[Config] = []
    if tools.langfuse_provider is not None:
        # Langfuse's LlamaIndex integration is the OpenInference instrumentor feeding
        # Langfuse's OpenTelemetry pipeline.
        found += _instrumented(tools, "langfuse", tools.langfuse_provider,
                               note="exports to a closed port; its flush is not timed")
    if tools.otel is not None:
        provider, exporter = tools.otel
        found += _instrumented(tools, "openinference", provider, flush=provider.force_flush,
                               reset=exporter.clear)
    return found


def _mlflow(tools: Tools) -> list[Config]:
    module = imported(tools, "mlflow", "mlflow.llama_index") if tools.mlflow else None
    if module is None:
        return []
    return [Config("mlflow", enter=lambda: module.autolog(silent=True),
                   exit=lambda: module.autolog(disable=True, silent=True),
                   flush=tools.mlflow_flush, max_block=MLFLOW_BLOCK)]
