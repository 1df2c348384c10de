"""The span and event handlers an engine puts on LlamaIndex's root dispatcher."""

from __future__ import annotations

import inspect
from typing import Any, cast

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span import BaseSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler

from ._engine import Engine

__all__ = ["EngineEventHandler", "EngineSpanHandler"]


class EngineSpanHandler(BaseSpanHandler[BaseSpan]):
    """Forwards span enter, exit and drop to an engine.

    ``span_enter``, ``span_exit`` and ``span_drop`` are overridden: the base class
    builds a validated span model per step and takes a lock (through a private
    pydantic attribute) to file it, bookkeeping the engine does itself, in this
    handler's ``open_spans`` (the one table of open spans, under the Recorder's lock).
    """

    _engine: Any = PrivateAttr(default=None)

    def __init__(self, engine: Engine) -> None:
        super().__init__(open_spans={}, completed_spans=[], dropped_spans=[], current_span_ids={})
        self._engine = engine
        engine.spans = cast("dict[str, Any]", self.open_spans)

    @property
    def engine(self) -> Engine:
        """The engine (read without pydantic's private-attribute lookup)."""
        engine: Engine = self.__pydantic_private__["_engine"]  # type: ignore[index]
        return engine

    @classmethod
    def class_name(cls) -> str:
        """Class name."""
        return "RagtrailSpanHandler"

    def span_enter(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record the span (when it is a step)."""
        if id_ not in self.open_spans:
            self.engine.span_enter(id_, parent_id, instance, bound_args, tags)

    def span_exit(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        result: Any | None = None,
        **kwargs: Any,
    ) -> None:
        """End the span's run with what it returned."""
        self.engine.span_exit(id_, result)

    def span_drop(
        self,
        id_: str,
        bound_args: inspect.BoundArguments,
        instance: Any | None = None,
        err: BaseException | None = None,
        **kwargs: Any,
    ) -> None:
        """End the span's run with its error."""
        self.engine.span_drop(id_, err)

    # The base class's abstract hooks. Only its own span_enter/exit/drop call them, and
    # those are overridden above, so they do nothing here.

    def new_span(self, id_: str, bound_args: inspect.BoundArguments, instance: Any = None,
                 parent_span_id: str | None = None, tags: dict[str, Any] | None = None,
                 **kwargs: Any) -> BaseSpan | None:
        """Unused (see :meth:`span_enter`)."""
        return None

    def prepare_to_exit_span(self, id_: str, bound_args: inspect.BoundArguments,
                             instance: Any = None, result: Any = None,
                             **kwargs: Any) -> BaseSpan | None:
        """Unused (see :meth:`span_exit`)."""
        return None

    def prepare_to_drop_span(self, id_: str, bound_args: inspect.BoundArguments,
                             instance: Any = None, err: BaseException | None = None,
                             **kwargs: Any) -> BaseSpan | None:
        """Unused (see :meth:`span_drop`)."""
        return None


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
        engine: Engine = self.__pydantic_private__["_engine"]  # type: ignore[index]
        engine.on_event(event)
