"""Public entry points: ``RagtrailHandler``, ``instrument`` and ``uninstrument``.

Both forms drive the same engine per Trail (one per Recorder), attached to
LlamaIndex's root dispatcher while anything needs it:

* ``instrument(trail)`` records every LlamaIndex step;
* a ``RagtrailHandler`` in a callback manager records the steps of components whose
  callback manager holds it (the classic callback contract), with the same run ids,
  kinds, lineage and documents, because LlamaIndex's classic callbacks alone do not
  report node postprocessors, streaming progress or span ids.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any

from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import CBEventType
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]

from ragtrail.capture import Recorder, guarded, register_parent_provider

from ._callbacks import LegacyCallbacks, rerank_details
from ._coverage import note_not_seen_once
from ._dispatch import EngineEventHandler, EngineSpanHandler
from ._engine import Engine
from ._roles import Family

__all__ = ["RagtrailHandler", "instrument", "uninstrument"]

# Which run a classic callback event belongs to (its id is kept on that run).
_CALLBACK_FAMILIES: dict[CBEventType, tuple[Family, ...]] = {
    CBEventType.QUERY: (Family.QUERY, Family.CHAT),
    CBEventType.RETRIEVE: (Family.RETRIEVER,),
    CBEventType.EMBEDDING: (Family.EMBEDDING,),
    CBEventType.LLM: (Family.LLM,),
    CBEventType.TEMPLATING: (Family.LLM_WRAPPER, Family.LLM),
    CBEventType.SYNTHESIZE: (Family.SYNTHESIZER,),
    CBEventType.RERANKING: (Family.POSTPROCESSOR, Family.RERANK_EVENT),
    CBEventType.FUNCTION_CALL: (Family.TOOL,),
    CBEventType.AGENT_STEP: (Family.WORKFLOW, Family.STEP),
    CBEventType.SUB_QUESTION: (Family.QUERY,),
}


class _Binding:
    """One engine, its dispatcher handlers and its users (see module docstring)."""

    def __init__(self, recorder: Recorder) -> None:
        self.engine = Engine(recorder)
        self.legacy = LegacyCallbacks(recorder)
        self.instrument_handler: RagtrailHandler | None = None
        self.direct_handlers = 0
        self._span_handler = EngineSpanHandler(self.engine)
        self._event_handler = EngineEventHandler(self.engine)
        self._unregister: Any = None

    def attach(self) -> None:
        root = get_dispatcher()
        root.add_span_handler(self._span_handler)
        root.add_event_handler(self._event_handler)
        self._unregister = register_parent_provider(
            f"llamaindex:{id(self)}", self.engine.active_run_id)

    def detach(self) -> None:
        root = get_dispatcher()
        # By identity: pydantic handlers compare equal field by field.
        root.span_handlers = [h for h in root.span_handlers if h is not self._span_handler]
        root.event_handlers = [h for h in root.event_handlers if h is not self._event_handler]
        if self._unregister is not None:
            self._unregister()

    def __copy__(self) -> _Binding:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Binding:
        # Components copied deeply (model_copy(deep=True)) keep reporting to the same
        # engine; its locks could not be copied anyway.
        return self

    @property
    def last_trace_id(self) -> str | None:
        return self.engine.last_trace_id

    @guarded
    def callback_start(self, event_type: CBEventType, payload: Mapping[Any, Any] | None,
                       event_id: str, parent_id: str | None) -> None:
        known, run = self.engine.run_for_callback()
        if not known:
            self.legacy.start(event_type, payload, event_id, parent_id)
            return
        if run is not None and run.role.family in _CALLBACK_FAMILIES.get(event_type, ()):
            rerank = rerank_details(payload) if event_type is CBEventType.RERANKING else None
            self.engine.note_callback(run, event_id, rerank)

    @guarded
    def callback_end(self, event_type: CBEventType, payload: Mapping[Any, Any] | None,
                     event_id: str) -> None:
        self.legacy.end(event_type, payload, event_id)
        if self.legacy.last_trace_id is not None:
            self.engine.last_trace_id = self.legacy.last_trace_id
            self.legacy.last_trace_id = None


_lock = threading.Lock()
_bindings: dict[int, _Binding] = {}


def _recorder_of(trail: Any) -> Recorder:
    if isinstance(trail, Recorder):
        return trail
    recorder = getattr(trail, "recorder", None)
    if isinstance(recorder, Recorder):
        return recorder
    raise TypeError(f"expected a ragtrail.Trail (or its .recorder), got {type(trail).__name__}")


def _binding_for(recorder: Recorder) -> _Binding:
    """The binding of ``recorder``, created and attached on first use. Call under _lock."""
    binding = _bindings.get(id(recorder))
    if binding is None or binding.engine.recorder is not recorder:
        binding = _bindings[id(recorder)] = _Binding(recorder)
        binding.attach()
    return binding


def _release_if_unused(key: int, binding: _Binding) -> None:
    """Detach a binding nothing uses any more. Call under _lock."""
    if binding.direct_handlers <= 0 and not binding.engine.instrumented:
        binding.detach()
        if _bindings.get(key) is binding:
            del _bindings[key]


def _handler_gone(key: int, binding: _Binding) -> None:
    with _lock:
        binding.direct_handlers -= 1
        binding.engine.has_handlers = binding.direct_handlers > 0
        _release_if_unused(key, binding)


class RagtrailHandler(BaseCallbackHandler):
    """Records LlamaIndex queries, retrievals, reranking, synthesis and LLM calls.

    Register it in a callback manager (``Settings.callback_manager =
    CallbackManager([RagtrailHandler(trail)])``) or get one from :func:`instrument`.
    ``trail`` is a :class:`ragtrail.Trail` (or its ``recorder``). Runs keep LlamaIndex's
    span ids as run ids, and the classic callback event ids in their metadata
    (``llamaindex_event_ids``).
    """

    _binding: _Binding

    def __init__(self, trail: Any) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
        recorder = _recorder_of(trail)
        with _lock:
            binding = _binding_for(recorder)
            binding.direct_handlers += 1
            binding.engine.has_handlers = True
        note_not_seen_once()
        self._use(binding)
        weakref.finalize(self, _handler_gone, id(recorder), binding)

    @classmethod
    def _for_instrument(cls, binding: _Binding) -> RagtrailHandler:
        handler = cls.__new__(cls)
        BaseCallbackHandler.__init__(handler, event_starts_to_ignore=[], event_ends_to_ignore=[])
        handler._use(binding)
        return handler

    def _use(self, binding: _Binding) -> None:
        self._binding = binding
        # The engine recognises its handlers in callback managers by this attribute.
        self._ragtrail_engine = binding.engine

    def __copy__(self) -> RagtrailHandler:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RagtrailHandler:
        # Components copied deeply (model_copy(deep=True)) keep reporting to the same
        # engine; its locks could not be copied anyway.
        return self

    @property
    def last_trace_id(self) -> str | None:
        """Trace id of the most recent LlamaIndex run started without a LlamaIndex parent
        that has ended (the enclosing trace's id when it ran inside another framework)."""
        return self._binding.last_trace_id

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        """Classic callback start: noted on its run, or recorded when outside any span."""
        self._binding.callback_start(event_type, payload, event_id, parent_id or None)
        return event_id

    def on_event_end(
        self,
        event_type: CBEventType,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        **kwargs: Any,
    ) -> None:
        """Classic callback end."""
        self._binding.callback_end(event_type, payload, event_id)

    def start_trace(self, trace_id: str | None = None) -> None:
        """Nothing to do: lineage comes from LlamaIndex's spans."""

    def end_trace(
        self,
        trace_id: str | None = None,
        trace_map: dict[str, list[str]] | None = None,
    ) -> None:
        """Nothing to do: runs end with their spans."""


def instrument(trail: Any) -> RagtrailHandler:
    """Record every LlamaIndex step into ``trail`` through the root dispatcher.

    Returns the handler (``handler.last_trace_id``). Calling it again for the same
    trail returns the same handler; using a ``RagtrailHandler`` for the same trail at
    the same time records each run once.
    """
    recorder = _recorder_of(trail)
    with _lock:
        binding = _binding_for(recorder)
        binding.engine.instrumented = True
        if binding.instrument_handler is None:
            binding.instrument_handler = RagtrailHandler._for_instrument(binding)
        return binding.instrument_handler


def uninstrument(trail: Any | None = None) -> None:
    """Undo :func:`instrument` for ``trail`` (every trail when None).

    The dispatcher handlers are removed unless a ``RagtrailHandler`` created for that
    trail is still alive (the callback form keeps using them).
    """
    with _lock:
        if trail is None:
            targets = list(_bindings.items())
        else:
            key = id(_recorder_of(trail))
            targets = [(key, _bindings[key])] if key in _bindings else []
        for key, binding in targets:
            binding.engine.instrumented = False
            binding.instrument_handler = None
            _release_if_unused(key, binding)
