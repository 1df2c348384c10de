"""The engine: LlamaIndex dispatcher spans and events in, Recorder calls out.

One engine serves one Recorder, whichever way it was enabled (``instrument()`` or a
``RagtrailHandler`` in a callback manager), so both forms produce the same runs and,
used together, record each run once. Run ids are LlamaIndex span ids.

Bookkeeping: the Recorder is the run table (each run carries the engine's ``_Run`` as
its state) and its lock is the engine's; the open spans are the span handler's
``open_spans`` (see ``_dispatch``), each holding the engine's ``_Span``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any, ClassVar, cast

from llama_index.core.instrumentation.span import active_span_id

from ragtrail.capture import LLMUpdate, Recorder, extract, guarded
from ragtrail.capture.rerank import record_reranking
from ragtrail.providers import merge_counts
from ragtrail.schemas import (
    ROLE_KEY,
    AppContext,
    DocStage,
    Framework,
    MetaKey,
    RunKind,
    RunStatus,
    StepRole,
)

from . import _extractors as read
from ._coverage import handlers_of, holds_engine, reaches_engine
from ._events import RERANK_EVENTS, EventKind, event_kind, is_streaming
from ._extract import NodeRef, arguments_of, document_inputs
from ._extractors import (
    Event,
    Progress,
    RerankStart,
    SpanEnter,
    SpanExit,
    llm_answer,
    llm_start,
)
from ._infer import Pipeline, infer_rerank, node_plan
from ._roles import Family, Role, classify, starts_ingestion
from ._streams import is_lazy_stream, wrap_response_gen

__all__ = ["Engine"]

#: An engine recording every span of this thread or task, instrumented or not.
recording_everything: ContextVar[Engine | None] = ContextVar(
    "ragtrail_llamaindex_recording_everything", default=None)
_MAX_HOPS = 10_000  # bound on parent walks (a cycle would be a LlamaIndex bug)
# Spans remembered at once. Entries leave when their span exits or their run ends; a
# stream never consumed keeps its runs (and entries) until this bound evicts them.
_MAX_SPANS = 100_000
_UNSET: Any = object()
#: ``request_type`` of the traces ingestion starts.
INGESTION_REQUEST_TYPE = "ingestion"


@dataclass(eq=False)
class _Run:
    run_id: str
    role: Role
    instance_id: int
    parent: _Run | None
    open_children: int = 0
    exited: bool = False
    ended: bool = False
    waiting: str | None = None  # "event" (LLM stream), "stream" (lazy answer), "children"
    pending: Any = None  # what the span returned, while waiting
    child_text: str | None = None
    child_error: BaseException | None = None  # a streaming child failed
    input_refs: list[NodeRef] = field(default_factory=list)
    template: LLMUpdate | None = None
    stream_usage: dict[str, int] = field(default_factory=dict)
    stream_meta: dict[str, str] = field(default_factory=dict)  # response metadata so far
    inner_spans: list[str] = field(default_factory=list)  # same-call spans streaming for it
    first_token: bool = False
    streamed: bool = False  # an in-progress event arrived: stored as the call's ``streamed``
    event_ids: list[str] = field(default_factory=list)
    pipeline: Pipeline | None = None  # query and chat runs: see _infer


@dataclass(eq=False)
class _Span:
    parent: str | None
    covered: bool
    run: _Run | None = None
    same_call: _Run | None = None  # the run this span is a part of (see _same_call)
    rerank_event: _Run | None = None  # the run a ReRankStartEvent in this span opened
    placeholder: bool = False  # a span the engine never saw enter, kept for its rerank


class Engine:
    """Turns the spans LlamaIndex reports into ragtrail runs (see module docstring)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.instrumented = False
        self.has_handlers = False  # a RagtrailHandler of the callback form exists
        self.last_trace_id: str | None = None
        #: The open spans by id: the span handler's ``open_spans`` once one is attached.
        self.spans: dict[str, _Span] = {}

    # -- who records what --------------------------------------------------------

    def _covered(self, instance: Any, parent: _Span | None) -> bool:
        """Callback form: a component reports to the handlers of its own callback
        manager; a component without one (a tool, a workflow step) inherits, and one
        that starts a trace (an agent, a workflow) asks :func:`reaches_engine`."""
        if recording_everything.get() is self:  # ragtrail_llamaindex.evaluate's judge
            return True
        handlers = handlers_of(instance)
        if handlers is not None:
            return holds_engine(handlers, self)
        if parent is not None:
            return parent.covered
        return instance is not None and self.has_handlers and reaches_engine(instance, self)

    def _nearest_run(self, span_id: str | None) -> _Run | None:
        hops = 0
        while span_id is not None and hops < _MAX_HOPS:
            span = self.spans.get(span_id)
            if span is None:
                return None
            if span.run is not None and not span.run.ended:
                return span.run
            span_id, hops = span.parent, hops + 1
        return None

    def active_run_id(self) -> str | None:
        """Ambient parent provider: the run of the LlamaIndex span active here."""
        run = self._nearest_run(active_span_id.get())
        return run.run_id if run is not None else None

    # -- dispatcher spans --------------------------------------------------------

    @guarded
    def span_enter(self, span_id: str, parent_id: str | None, instance: Any,
                   bound_args: Any, tags: Mapping[str, Any] | None) -> None:
        """A span started: record it when it is a step worth a run."""
        with self.recorder.lock:
            parent = self.spans.get(parent_id) if parent_id is not None else None
            if parent is not None and parent.placeholder:
                parent = None
            if len(self.spans) >= _MAX_SPANS:
                self.spans.pop(next(iter(self.spans)))
            span = self.spans[span_id] = _Span(parent_id, self._covered(instance, parent))
            if not (self.instrumented or span.covered):
                return
            parent_run = self._nearest_run(parent_id)
            direct = parent.run.role.family if parent is not None and parent.run else None
            role = classify(span_id, instance, direct)
            if role is None:
                return
            if _same_call(parent_run, role, instance):
                span.same_call = parent_run
                return
            span.run = run = _Run(span_id, role, id(instance), parent_run)
            arguments = arguments_of(bound_args)
            found = extract(read.enter_extractors(role.family),
                            SpanEnter(role.family, instance, arguments))
            self._prepare(run, found, arguments)
            metadata = found.get("metadata") or {}
            if _in_silent_postprocessor(parent_run, role, instance):
                metadata[ROLE_KEY] = StepRole.RERANKER.value
            self._start(run, found.get("inputs"), metadata, tags)
            self._after_start(run, instance, arguments)

    def _prepare(self, run: _Run, found: Mapping[str, Any],
                 arguments: Mapping[str, Any]) -> None:
        family = run.role.family
        pipeline = run.parent.pipeline if run.parent is not None else None
        run.input_refs = found.get("candidates") or []
        run.template = found.get("template")
        run.pipeline = found.get("pipeline")
        if family is Family.SYNTHESIZER and pipeline is not None and run.parent is not None:
            infer_rerank(self.recorder, run.parent.run_id, pipeline, arguments.get("nodes"))
        if pipeline is not None and family in (Family.POSTPROCESSOR, Family.RERANK_EVENT):
            pipeline.postprocessed = True

    def _start(self, run: _Run, inputs: Any, metadata: Mapping[str, Any],
               tags: Mapping[str, Any] | None) -> None:
        tags = tags or {}
        meta = dict(metadata)
        # The user id is stored only as the Recorder's keyed hash, never in metadata.
        kept = {k: v for k, v in tags.items() if k != MetaKey.USER_ID.value}
        if kept:
            meta["instrument_tags"] = kept
        # A trace an ingestion pipeline (or a transformation called on its own) starts
        # is ingestion work: ``usage(group_by="request_type")`` tells it from answering.
        app = AppContext(request_type=INGESTION_REQUEST_TYPE) if run.parent is None \
            and starts_ingestion(run.role) else None
        self.recorder.start_run(
            run.run_id, kind=run.role.kind, name=run.role.name, framework=Framework.LLAMAINDEX,
            parent_id=run.parent.run_id if run.parent is not None else None, inputs=inputs,
            metadata=meta, user_id=tags.get(MetaKey.USER_ID.value),
            session_id=_str_or_none(tags.get(MetaKey.SESSION_ID.value)),
            app=_tenant_context(tags) if app is None else app.merged(_tenant_context(tags)),
            owner=self, state=run, on_end=self._root_ended if run.parent is None else None,
        )
        if run.parent is not None:
            run.parent.open_children += 1

    def _after_start(self, run: _Run, instance: Any, arguments: Mapping[str, Any]) -> None:
        if run.role.family is not Family.LLM:
            return
        self.recorder.update_llm(run.run_id, cast(LLMUpdate, extract(
            read.LLM_START, llm_start(instance, arguments))))
        wrapper = run.parent
        if wrapper is not None and wrapper.role.family is Family.LLM_WRAPPER and wrapper.template:
            self.recorder.update_llm(run.run_id, wrapper.template)

    @guarded
    def span_exit(self, span_id: str, result: Any) -> None:
        """A span returned: end its run, unless what it returned is still streaming."""
        with self.recorder.lock:
            span = self.spans.get(span_id)
            run = span.run if span is not None else None
            if run is None or run.ended:
                if not self._keep_inner_stream(span_id, span, result):
                    self.spans.pop(span_id, None)
                return
            run.exited = True
            if run.role.family is Family.LLM and isinstance(result, (Generator, AsyncGenerator)):
                run.waiting = "event"  # ended by the LLM end (or exception) event
            elif is_lazy_stream(result):
                run.waiting, run.pending = "stream", result
                wrap_response_gen(result, span_id, partial(self._stream_done, run))
            elif is_streaming(result) and run.open_children > 0:
                run.waiting, run.pending = "children", result
            else:
                self._finish(run, result)

    def _keep_inner_stream(self, span_id: str, span: _Span | None, result: Any) -> bool:
        """``OpenAILike.stream_chat`` returns ``OpenAI.stream_chat``'s stream: LlamaIndex
        reports that stream's progress and end under the inner span, so the inner span
        is kept (as an alias of the outer run) until the outer run ends."""
        outer = span.same_call if span is not None else None
        if outer is None or outer.ended or not isinstance(result, (Generator, AsyncGenerator)):
            return False
        outer.inner_spans.append(span_id)
        return True

    @guarded
    def span_drop(self, span_id: str, error: BaseException | None) -> None:
        """A span raised: its run ends with status error (cancelled for cancellation)."""
        with self.recorder.lock:
            span = self.spans.get(span_id)
            run = span.run if span is not None else None
            if run is not None and run.exited:
                return  # the dispatcher's shutdown: what it returned is still streaming
            if run is None or run.ended:
                self.spans.pop(span_id, None)
                return
            self._finish(run, _UNSET, error=error or RuntimeError("span dropped"))

    # -- ending runs -------------------------------------------------------------

    def _stream_done(self, run: _Run, text: str, error: BaseException | None) -> None:
        with self.recorder.lock:
            if run.ended:
                return
            error = error or run.child_error
            if error is not None:
                self._finish(run, _UNSET, error=error)
            elif run.open_children > 0:
                run.waiting, run.child_text = "children", text
            else:
                self._finish(run, run.pending, text=text)

    def _finish(self, run: _Run, result: Any, *, text: str | None = None,
                error: BaseException | None = None) -> None:
        run.ended = True
        rid = run.run_id
        for inner in run.inner_spans:
            self.spans.pop(inner, None)
        if error is not None:
            status = RunStatus.CANCELLED if _is_cancel(error) else RunStatus.ERROR
            self.recorder.fail_run(rid, error, status=status)
        else:
            outputs = self._outputs(run, result, text)
            self.recorder.end_run(rid, outputs=outputs)
            if text is None and run.role.family is Family.LLM and isinstance(outputs, dict):
                text = outputs.get("output")
        self.spans.pop(rid, None)
        parent = run.parent
        if parent is None or parent.ended:
            return
        parent.open_children -= 1
        if text is not None:
            parent.child_text = text
        if error is not None and parent.waiting is not None:
            parent.child_error = error  # what it returned was this child's stream
        if parent.waiting == "children" and parent.open_children <= 0:
            self._finish(parent, parent.pending, text=parent.child_text,
                         error=parent.child_error)

    def _root_ended(self, trace_id: str) -> None:
        self.last_trace_id = trace_id

    def _outputs(self, run: _Run, result: Any, text: str | None) -> Any:
        family = run.role.family
        if result is _UNSET:
            return None
        if family is Family.LLM:
            meta = llm_answer(result, run.stream_usage, run.stream_meta)
            self.recorder.update_llm(run.run_id, meta)
            calls = meta.get("tool_calls")
            return {"output": meta.get("output_text"), **({"tool_calls": calls} if calls else {})}
        found = extract(read.exit_extractors(family), SpanExit(family, result))
        nodes = found.get("nodes")  # None: they could not be read
        if family is Family.RETRIEVER:
            self.recorder.add_documents(run.run_id, found.get("documents") or [],
                                        stage=DocStage.RETRIEVED)
            if run.parent is not None and run.parent.pipeline is not None:
                run.parent.pipeline.retrieved = nodes
                run.parent.pipeline.postprocessed = False
        elif family in (Family.POSTPROCESSOR, Family.RERANK_EVENT) and nodes is not None:
            self._reranked(run, result, nodes)
        elif family is Family.TOOL and found.get("documents"):
            # A tool that returns nodes (or a response carrying them) retrieved them;
            # rendered into the tool message, they are in the next call's prompt.
            self.recorder.add_documents(run.run_id, found["documents"],
                                        stage=DocStage.RETRIEVED)
        outputs = found.get("outputs")
        if text is not None and isinstance(outputs, dict):
            outputs["response"] = text
        return outputs

    def _reranked(self, run: _Run, result: Any, nodes: list[NodeRef]) -> None:
        plan = node_plan(run.input_refs, nodes)
        if plan is None:
            return  # content changed or nodes added: a transform, not a reranker
        record_reranking(self.recorder, run.run_id, document_inputs(result, plan.input_ranks),
                         kind=run.role.kind)

    # -- dispatcher events -------------------------------------------------------

    @guarded
    def on_event(self, event: Any) -> None:
        """LLM streaming progress and end, exceptions, rerank events, tool calls (each
        handled by the method its type maps to, see :mod:`._events`)."""
        kind = event_kind(event)
        if kind is None:
            return
        with self.recorder.lock:
            span_id = getattr(event, "span_id", None)
            span = self.spans.get(span_id) if span_id is not None else None
            run = span.run if span is not None else None
            if kind in RERANK_EVENTS:
                self._rerank_event(kind, event, span_id, span, run)
                return
            if run is None and span is not None:
                run = span.same_call
            if run is None or run.ended:
                return
            self._ON_RUN_EVENT[kind](self, run, event)

    def _on_llm_progress(self, run: _Run, event: Any) -> None:
        self._progress(run, event.response)

    def _on_llm_end(self, run: _Run, event: Any) -> None:
        if run.waiting == "event":
            self._finish(run, event.response)

    def _on_exception(self, run: _Run, event: Any) -> None:
        if run.exited:
            self._finish(run, _UNSET, error=event.exception)

    def _on_tool_call(self, run: _Run, event: Any) -> None:
        self.recorder.add_event(run.run_id, "tool_call", extract(read.TOOL_CALL, Event(event)))

    #: Event kind -> what it does to the run it belongs to (rerank events aside).
    _ON_RUN_EVENT: ClassVar[dict[EventKind, Callable[[Engine, _Run, Any], None]]] = {
        EventKind.LLM_PROGRESS: _on_llm_progress,
        EventKind.LLM_END: _on_llm_end,
        EventKind.EXCEPTION: _on_exception,
        EventKind.TOOL_CALL: _on_tool_call,
    }

    def _progress(self, run: _Run, response: Any) -> None:
        if run.role.family is not Family.LLM:
            return
        if not run.streamed:
            run.streamed = True
            self.recorder.update_llm(run.run_id, LLMUpdate(streamed=True))
        found = extract(read.LLM_PROGRESS, Progress(response))
        if not run.first_token and found.get("content"):
            run.first_token = True
            self.recorder.record_first_token(run.run_id)
        merge_counts(run.stream_usage, found.get("usage") or {})
        # OpenAI's last chunk carries the usage but no finish reason: keep what came before.
        run.stream_meta.update(found.get("metadata") or {})

    def _rerank_event(self, kind: EventKind, event: Any, span_id: str | None,
                      span: _Span | None, run: _Run | None) -> None:
        """A rerank event in a postprocessor's run makes it a reranker; elsewhere (say, a
        retriever that reranks inline) the start and end events become a run of their
        own, kept on the span they happened in until its end event."""
        key = span_id or ""
        if kind is EventKind.RERANK_START:
            in_postprocessor = run is not None and run.role.family is Family.POSTPROCESSOR
            opens_run = not in_postprocessor and (
                self.instrumented or (span is not None and span.covered))
            found = extract(read.RERANK_START, RerankStart(event, opens_run))
            info = {k: found[k] for k in ("model_name", "top_n") if k in found}
            if run is not None and in_postprocessor:
                self.recorder.set_kind(run.run_id, RunKind.RERANKER)
                self.recorder.add_metadata(run.run_id, info)
                return
            if not opens_run:
                return
            born = _Run(event.id_, Role(Family.RERANK_EVENT, RunKind.RERANKER,
                                        info.get("model_name") or "ReRank"), 0,
                        self._nearest_run(span_id))
            born.input_refs = found.get("candidates") or []
            if born.parent is not None and born.parent.pipeline is not None:
                born.parent.pipeline.postprocessed = True
            if span is None:  # a span that entered before the engine was attached
                if len(self.spans) >= _MAX_SPANS:
                    self.spans.pop(next(iter(self.spans)))
                span = self.spans[key] = _Span(None, False, placeholder=True)
            span.rerank_event = born
            self._start(born, {"query": found.get("query"),
                               "nodes": [r.as_dict() for r in born.input_refs]},
                        {**info, "llamaindex_event": type(event).__name__}, None)
        elif kind is EventKind.RERANK_END:
            holder = self.spans.get(key)
            ended = holder.rerank_event if holder is not None else None
            if holder is not None:
                holder.rerank_event = None
                if holder.placeholder:
                    del self.spans[key]
            if ended is not None and not ended.ended:
                self._finish(ended, extract(read.RERANK_END, Event(event)).get("nodes"))

    # -- classic callback events -------------------------------------------------

    def run_for_callback(self) -> tuple[bool, _Run | None]:
        """(whether a known LlamaIndex span is active here, the run it belongs to)."""
        span_id = active_span_id.get()
        span = self.spans.get(span_id) if span_id is not None else None
        if span is None or span.placeholder:
            return False, None
        return True, self._nearest_run(span_id)

    def note_callback(self, run: _Run, event_id: str, rerank: Mapping[str, Any] | None) -> None:
        """Keep a classic callback event's id (and a legacy rerank's model) on its run."""
        with self.recorder.lock:
            if run.ended or event_id in run.event_ids:
                return
            run.event_ids.append(event_id)
            meta: dict[str, Any] = {"llamaindex_event_ids": list(run.event_ids)}
            if rerank:
                meta.update(rerank)
                self.recorder.set_kind(run.run_id, RunKind.RERANKER)
            self.recorder.add_metadata(run.run_id, meta)


def _in_silent_postprocessor(parent: _Run | None, role: Role, instance: Any) -> bool:
    """An LLM call a query's postprocessor makes on the async path, where LlamaIndex
    opens no postprocessor span (see ``_infer``): between the query's retrieval and its
    synthesis, by the LLM one of the query's postprocessors holds. It only sees the
    candidates, so it must not count as the answer's prompt."""
    if role.family not in (Family.LLM, Family.LLM_WRAPPER) or parent is None:
        return False
    pipeline = parent.pipeline
    if pipeline is None or pipeline.retrieved is None:
        return False
    return any(_holds(p, instance) for p in pipeline.postprocessors)


def _holds(component: Any, instance: Any) -> bool:
    """Whether ``instance`` is one of ``component``'s attributes (``llm``, or any name)."""
    values = getattr(component, "__dict__", None)
    return isinstance(values, dict) and any(v is instance for v in values.values())


def _same_call(parent: _Run | None, role: Role, instance: Any) -> bool:
    """``MockLLM.chat`` calling ``self.complete``, ``aquery`` calling ``query``: one call."""
    return parent is not None and parent.instance_id == id(instance) \
        and parent.role.family is role.family


def _is_cancel(error: BaseException) -> bool:
    return isinstance(error, (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt))


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None



def _tenant_context(tags: Mapping[str, Any]) -> AppContext | None:
    """The tenant given in ``instrument_tags`` (``{"tenant": "acme"}``), as context."""
    tenant = _str_or_none(tags.get(MetaKey.TENANT.value))
    return AppContext(tenant=tenant) if tenant is not None else None
