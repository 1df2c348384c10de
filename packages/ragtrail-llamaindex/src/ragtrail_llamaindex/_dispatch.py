"""The span and event handlers an engine puts on LlamaIndex's root dispatcher."""

from __future__ import annotations

import inspect
from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span import BaseSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

from ._engine import Engine

__all__ = ["EngineEventHandler", "EngineSpanHandler"]


class EngineSpanHandler(BaseSpanHandler[BaseSpan]):
    """Forwards span enter, exit and drop to an engine (LlamaIndex keeps the books)."""

    _engine: Any = PrivateAttr(default=None)

    def __init__(self, engine: Engine) -> None:
        super().__init__(open_spans={}, completed_spans=[], dropped_spans=[], current_span_ids={})
        self._engine = engine

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "RagtrailSpanHandler"

    def new_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_span_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> BaseSpan:
        """Record the span (when it is a step) and give LlamaIndex a span to track."""
        self._engine.span_enter(id_, parent_span_id, instance, bound_args, tags)
        return BaseSpan(id_=id_, parent_id=parent_span_id)

    def prepare_to_exit_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> BaseSpan | None:
        """End the span's run with what it returned."""
        self._engine.span_exit(id_, result)
        return self.open_spans.get(id_)

    def prepare_to_drop_span(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> BaseSpan | None:
        """End the span's run with its error."""
        self._engine.span_drop(id_, err)
        return self.open_spans.get(id_)


class EngineEventHandler(BaseEventHandler):
    """Forwards dispatcher events (LLM stream progress, rerank, exceptions)."""

    _engine: Any = PrivateAttr(default=None)

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self._engine = engine

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "RagtrailEventHandler"

    def handle(self, event: Any, **kwargs: Any) -> None:
        """Pass the event on."""
        self._engine.on_event(event)
