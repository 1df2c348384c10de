"""``RagtrailCallbackHandler``: LangChain callbacks translated into Recorder calls.

Callbacks only record: they never wait on I/O (the Recorder hands finished runs to the
writer's queue) and never raise into the application (each one is ``guarded``).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import LLMResult
from ragtrail.capture import Recorder, guarded
from ragtrail.schemas import AppContext, DocStage, Framework, MetaKey, RunKind, RunStatus

from ._convert import plain, run_name
from ._documents import DocList, doc_list, docs_in, reranking
from ._llm import llm_end_metadata, llm_start_metadata, output_text
from ._names import (
    CANCEL_ERRORS,
    INFERRED_RERANKER_NAME,
    KIND_KEY,
    RERANKER_MARK,
    RETRY_TAG_PREFIX,
    RUN_TYPE_KINDS,
)
from ._prompt import template_text
from ._state import RunState, RunTable

__all__ = ["RagtrailCallbackHandler", "StreamAbandoned"]

_UNSET: Any = object()
_CUT_GRACE_S = 1.0
_CONTEXT_KEYS = (MetaKey.SESSION_ID.value, MetaKey.APP_NAME.value, MetaKey.APP_VERSION.value,
                 MetaKey.REQUEST_TYPE.value)


class StreamAbandoned(Exception):
    """Stored as the error of a step whose stream was closed before the step ended."""


class RagtrailCallbackHandler(BaseCallbackHandler):
    """One LangChain callback handler capturing chains, retrievers, rerankers and LLM calls.

    Args:
        trail: a ``ragtrail.Trail`` (anything with a ``recorder``); None uses the
            process-wide default ``Trail()``, created on first use.
        user_id: stored only as a keyed hash; run metadata ``user_id`` overrides it.
        session_id, app_name, app_version: application context; run metadata with the
            same keys overrides them per invocation.

    LangChain's run ids are kept as ragtrail run ids. ``last_trace_id`` is the trace id
    of the most recent LangChain root run this handler finished.
    """

    run_inline = True  # cheap and I/O-free: run in the caller's thread or event loop
    raise_error = False

    def __init__(
        self,
        trail: Any = None,
        *,
        user_id: object | None = None,
        session_id: str | None = None,
        app_name: str | None = None,
        app_version: str | None = None,
    ) -> None:
        super().__init__()
        self._trail = trail
        self._trail_lock = threading.Lock()
        self.user_id = user_id
        self.session_id = session_id
        self.app_name = app_name
        self.app_version = app_version
        self._runs = RunTable()
        self._last_trace_id: str | None = None

    # LangChain copies configs (and with them handler lists); a copy must share state.
    def __copy__(self) -> RagtrailCallbackHandler:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> RagtrailCallbackHandler:
        return self

    @property
    def trail(self) -> Any:
        """The Trail this handler records into (the default one is created on first use)."""
        if self._trail is None:
            with self._trail_lock:
                if self._trail is None:
                    from ._switch import default_trail

                    self._trail = default_trail()
        return self._trail

    @property
    def recorder(self) -> Recorder:
        """The Trail's Recorder."""
        recorder: Recorder = self.trail.recorder
        return recorder

    @property
    def last_trace_id(self) -> str | None:
        """Trace id of the most recent root run this handler finished."""
        return self._last_trace_id

    # -- shared start / end ------------------------------------------------------------

    def _context(self, metadata: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run metadata without the raw user id, and the Recorder's context arguments."""
        meta = dict(metadata)
        user_id = meta.pop(MetaKey.USER_ID.value, None) or self.user_id
        given = {k: meta.get(k) for k in _CONTEXT_KEYS}
        app = AppContext(
            app_name=given[MetaKey.APP_NAME.value] or self.app_name,
            app_version=given[MetaKey.APP_VERSION.value] or self.app_version,
            request_type=given[MetaKey.REQUEST_TYPE.value],
        )
        return meta, {
            "user_id": user_id,
            "session_id": given[MetaKey.SESSION_ID.value] or self.session_id,
            "app": app,
        }

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        kind: RunKind,
        name: str,
        inputs: Any,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        marked: bool = False,
    ) -> RunState | None:
        self._sweep()
        parent_key = str(parent_run_id) if parent_run_id is not None else None
        state = RunState(str(run_id), kind, parent_key, lc_root=parent_run_id is None,
                         marked=marked)
        if not self._runs.claim(state):
            return None  # this handler is attached to the run more than once
        recorder = self.recorder
        meta, context = self._context(metadata or {})
        if self._runs.parent_of(state) is not None:
            context = {}  # children inherit the context from their parent run
        state.owned = recorder.start_run(
            state.key, kind=kind, name=name, framework=Framework.LANGCHAIN,
            parent_id=parent_key, inputs=plain(inputs, recorder.config.max_list_items),
            tags=tags, metadata=meta, **context,
        )
        if not state.owned:
            self._runs.release(state.key)  # another handler on this Recorder has it
            return None
        if parent_key and any(str(t).startswith(RETRY_TAG_PREFIX) for t in tags or ()):
            recorder.record_retry(parent_key)  # RunnableRetry's attempts 2, 3, ...
        return state

    def _end(
        self,
        state: RunState,
        outputs: Any = _UNSET,
        *,
        error: BaseException | None = None,
        inputs: Any = _UNSET,
    ) -> None:
        if self._runs.release(state.key) is None:
            return
        recorder = self.recorder
        if inputs is not _UNSET:
            recorder.set_inputs(state.key, plain(inputs, recorder.config.max_list_items))
        cancelled = state.cut or (error is not None and isinstance(error, CANCEL_ERRORS))
        if state.children and (cancelled or (error is None and inputs is not _UNSET)):
            # A stream closed early: LangChain ends the outer steps (reporting success
            # for sync streams) before the inner ones it abandoned.
            if self._runs.cut_below(state):
                self._sweep_later()
            cancelled = True
        out = plain(outputs, recorder.config.max_list_items) if outputs is not _UNSET else _UNSET
        if error is not None:
            status = RunStatus.CANCELLED if cancelled else RunStatus.ERROR
            record = recorder.fail_run(state.key, error, outputs=out, status=status)
        else:
            status = RunStatus.CANCELLED if cancelled else RunStatus.OK
            record = recorder.end_run(state.key, outputs=out, status=status)
        if state.lc_root and record is not None:
            self._last_trace_id = record.run.trace_id
        self._sweep()

    def _sweep_later(self) -> None:
        # Under asyncio, LangChain closes abandoned inner generators only when the loop
        # finalizes them, sometimes never: close what is still open after the grace.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # sync generators close right away; late ones go at the next event
        loop.call_later(_CUT_GRACE_S, self._sweep)

    @guarded
    def _sweep(self) -> None:
        for state in self._runs.overdue_cuts(_CUT_GRACE_S):
            self.recorder.fail_run(
                state.key, StreamAbandoned("the stream was closed before this step ended"),
                status=RunStatus.CANCELLED,
            )

    def _state(self, run_id: UUID) -> RunState | None:
        return self._runs.get(str(run_id))

    # -- chains, prompts, parsers, rerankers ------------------------------------------

    @guarded
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a chain, prompt, parser or reranker run."""
        kind = RUN_TYPE_KINDS.get(kwargs.get("run_type") or "chain", RunKind.CHAIN)
        marked = (metadata or {}).get(KIND_KEY) == RERANKER_MARK
        parent = self._state(parent_run_id) if parent_run_id else None
        if marked and not (parent is not None and parent.marked):
            kind = RunKind.RERANKER  # the outermost run carrying the mark
        deferred = bool(kwargs.get("defers_inputs"))  # streaming: inputs come at the end
        name = run_name(serialized, kwargs.get("name"), "Unnamed") or "Unnamed"
        state = self._start(run_id, parent_run_id, kind, name, None if deferred else inputs,
                            tags, metadata, marked=marked)
        if state is None:
            return
        if kind is RunKind.PROMPT:
            template = template_text(serialized)
            if template:
                variables = inputs if isinstance(inputs, Mapping) else {"input": inputs}
                self.recorder.note_prompt_template(
                    state.key, template, plain(variables, self.recorder.config.max_list_items)
                )
        elif not deferred:
            state.input_docs = docs_in(inputs)

    @guarded
    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a chain run; recognise reranking from its documents in and out."""
        state = self._state(run_id)
        if state is None:
            return
        inputs = kwargs.get("inputs", _UNSET)
        reranked = self._detect_reranking(state, outputs, inputs)
        self._runs.report_to_parent(state, docs=None, reranked=reranked)
        self._end(state, outputs, inputs=inputs)

    @guarded
    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a chain run with its error (``cancelled`` for a closed stream)."""
        state = self._state(run_id)
        if state is not None:
            self._end(state, error=error, inputs=kwargs.get("inputs", _UNSET))

    def _detect_reranking(
        self, state: RunState, outputs: Any, inputs: Any
    ) -> tuple[str, ...] | None:
        """Record a reranking step; returns the reranked hashes to report upwards."""
        if state.kind not in (RunKind.CHAIN, RunKind.RERANKER):
            return None
        out = doc_list(outputs)
        if out is None:
            return None
        if state.reranked == out.hashes:
            return out.hashes  # a step below already reranked into this very list
        source = state.input_docs or (docs_in(inputs) if inputs is not _UNSET else None)
        found = reranking(source, out, explicit=state.kind is RunKind.RERANKER) if source else None
        if found is None:
            return None
        if state.kind is not RunKind.RERANKER:
            self.recorder.set_kind(state.key, RunKind.RERANKER)
        self.recorder.add_documents(state.key, found.output.inputs(found.input_ranks),
                                    stage=DocStage.RERANKED)
        return out.hashes

    # -- retrievers ----------------------------------------------------------------------

    @guarded
    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a retriever run."""
        name = run_name(serialized, kwargs.get("name"), "Retriever") or "Retriever"
        self._start(run_id, parent_run_id, RunKind.RETRIEVER, name, {"query": query}, tags,
                    metadata)

    @guarded
    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        """Close a retriever run with its ranked documents (or an inferred reranking)."""
        state = self._state(run_id)
        if state is None:
            return
        docs = doc_list(list(documents))
        reranked = None
        if docs is not None:
            if state.reranked == docs.hashes:
                reranked = docs.hashes  # a marked reranker below holds these documents
            elif state.child_retrievers == 1 and state.child_docs is not None and (
                found := reranking(state.child_docs, docs)
            ):
                self._inferred_reranker(state, state.child_docs, found.output, found.input_ranks)
                reranked = docs.hashes
            else:
                self.recorder.add_documents(state.key, docs.inputs(), stage=DocStage.RETRIEVED)
        self._runs.report_to_parent(state, docs=docs, reranked=reranked)
        self._end(state, list(documents))

    def _inferred_reranker(
        self, state: RunState, source: DocList, output: DocList, ranks: Sequence[int]
    ) -> None:
        # LangChain emits no callback for document compressors, so a reranker inside a
        # ContextualCompressionRetriever is inferred from the child and parent outputs.
        recorder = self.recorder
        rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ragtrail:rerank:{state.key}"))
        limit = recorder.config.max_list_items
        recorder.start_run(rid, kind=RunKind.RERANKER, name=INFERRED_RERANKER_NAME,
                           framework=Framework.LANGCHAIN, parent_id=state.key,
                           inputs={"documents": plain(list(source.documents), limit)},
                           metadata={"inferred": True})
        recorder.add_documents(rid, output.inputs(ranks), stage=DocStage.RERANKED)
        recorder.end_run(rid, outputs=plain(list(output.documents), limit))

    @guarded
    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a retriever run with its error."""
        state = self._state(run_id)
        if state is not None:
            self._end(state, error=error)

    # -- tools and agents ----------------------------------------------------------------

    @guarded
    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a tool run."""
        name = run_name(serialized, kwargs.get("name"), "Tool") or "Tool"
        self._start(run_id, parent_run_id, RunKind.TOOL, name,
                    inputs if isinstance(inputs, dict) else {"input": input_str}, tags, metadata)

    @guarded
    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a tool run."""
        state = self._state(run_id)
        if state is not None:
            self._end(state, output)

    @guarded
    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a tool run with its error."""
        state = self._state(run_id)
        if state is not None:
            self._end(state, error=error)

    @guarded
    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Mark the run as an agent and keep the action as an event."""
        state = self._state(run_id)
        if state is None or not self._runs.once(state, "agent_action"):
            return
        if state.kind is not RunKind.AGENT:
            state.kind = RunKind.AGENT
            self.recorder.set_kind(state.key, RunKind.AGENT)
        data = {"tool": getattr(action, "tool", None),
                "tool_input": plain(getattr(action, "tool_input", None)),
                "log": getattr(action, "log", None)}
        self.recorder.add_event(state.key, "agent_action", data)

    @guarded
    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Keep the agent's final answer as an event."""
        state = self._state(run_id)
        if state is not None and self._runs.once(state, "agent_finish"):
            data = {"return_values": plain(getattr(finish, "return_values", None)),
                    "log": getattr(finish, "log", None)}
            self.recorder.add_event(state.key, "agent_finish", data)

    # -- retries and custom events -------------------------------------------------------

    @guarded
    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Count one retry on the run (e.g. a provider call retried by tenacity)."""
        state = self._state(run_id)
        if state is not None and self._runs.once(state, "retry"):
            self.recorder.record_retry(state.key)

    @guarded
    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Keep an event the application dispatched inside a run."""
        state = self._state(run_id)
        if state is not None and self._runs.once(state, "custom_event"):
            self.recorder.add_event(state.key, name, plain(data))

    # -- LLMs and chat models ------------------------------------------------------------

    @guarded
    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a chat model call with the messages actually sent."""
        sent = messages[0] if messages else []
        self._start_llm(serialized, run_id, parent_run_id, tags, metadata, kwargs,
                        {"messages": plain(sent)}, messages=list(sent))

    @guarded
    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a completion model call with the prompt actually sent."""
        prompt = prompts[0] if prompts else ""
        self._start_llm(serialized, run_id, parent_run_id, tags, metadata, kwargs,
                        {"prompts": list(prompts)}, prompt=prompt)

    def _start_llm(
        self,
        serialized: dict[str, Any] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: Mapping[str, Any],
        inputs: Any,
        **sent: Any,
    ) -> None:
        name = run_name(serialized, kwargs.get("name"), "LLM") or "LLM"
        state = self._start(run_id, parent_run_id, RunKind.LLM, name, inputs, tags, metadata)
        if state is not None:
            meta = llm_start_metadata(serialized, metadata or {},
                                      kwargs.get("invocation_params"), **sent)
            self.recorder.update_llm(state.key, meta)

    @guarded
    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Time to first token: the first streamed token with content."""
        state = self._state(run_id)
        if state is None or state.first_token:
            return
        chunk = kwargs.get("chunk")
        message = getattr(chunk, "message", None)
        if token or getattr(message, "tool_call_chunks", None):
            state.first_token = True
            self.recorder.record_first_token(state.key)

    @guarded
    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a model call with usage, response metadata and rate limits."""
        state = self._state(run_id)
        if state is None:
            return
        self.recorder.update_llm(state.key, llm_end_metadata(response, datetime.now(timezone.utc)))
        self._end(state, response)

    @guarded
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a model call with its error, keeping any partial output."""
        state = self._state(run_id)
        if state is None:
            return
        response = kwargs.get("response")
        text = output_text(response) if isinstance(response, LLMResult) else None
        if text:
            self.recorder.update_llm(state.key, {"output_text": text})
        self._end(state, error=error)
