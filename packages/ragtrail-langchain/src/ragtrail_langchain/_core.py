"""The handler's core: the start and end of runs, shared by every callback.

The Recorder is the run table: each run this handler records carries its
:class:`RunState` there (no map of runs here).

Callbacks only record: they never wait on I/O (the Recorder hands finished runs to the
writer's queue) and never raise into the application (each one is ``guarded``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from ragtrail import default_trail
from ragtrail.capture import Recorder, guarded
from ragtrail.schemas import AppContext, Framework, MetaKey, RunKind, RunStatus

from . import _convert  # noqa: F401  (registers the LangChain converters)
from ._documents import DocList
from ._names import CANCEL_ERRORS, LG_THREAD_ID, LS_INTEGRATION, RETRY_TAG_PREFIX
from ._state import RunState

__all__ = ["UNSET", "HandlerCore", "StreamAbandoned"]

UNSET: Any = object()
_logger = logging.getLogger("ragtrail.langchain")
_CUT_GRACE_S = 1.0
_CONTEXT_KEYS = (MetaKey.SESSION_ID.value, MetaKey.APP_NAME.value, MetaKey.APP_VERSION.value,
                 MetaKey.REQUEST_TYPE.value, MetaKey.TENANT.value)


class StreamAbandoned(Exception):
    """Stored as the error of a step whose stream was closed before the step ended."""


class HandlerCore(BaseCallbackHandler):
    """Trail, application context, and the start/end of runs for the callbacks."""

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
        if not (trail is None or isinstance(trail, Recorder)
                or isinstance(getattr(trail, "recorder", None), Recorder)):
            # Caught here: inside a callback the mistake would only lose every run.
            raise TypeError("RagtrailCallbackHandler expects a ragtrail.Trail (or its "
                            f".recorder) or None, got {type(trail).__name__}")
        self._trail = trail
        self._trail_lock = threading.Lock()
        self.user_id = user_id
        self.session_id = session_id
        self.app_name = app_name
        self.app_version = app_version
        self._last_trace_id: str | None = None

    # LangChain copies configs (and with them handler lists); a copy must share state.
    def __copy__(self) -> HandlerCore:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> HandlerCore:
        return self

    @property
    def trail(self) -> Any:
        """The Trail this handler records into (the default one is created on first use)."""
        if self._trail is None:
            with self._trail_lock:
                if self._trail is None:
                    self._trail = default_trail(
                        logger=_logger, remedy="give RagtrailCallbackHandler a Trail")
        return self._trail

    @property
    def recorder(self) -> Recorder:
        """The Trail's Recorder (``trail`` may also be a ``Recorder`` itself)."""
        trail = self.trail
        recorder: Recorder = trail if isinstance(trail, Recorder) else trail.recorder
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
            tenant=_text_or_none(given[MetaKey.TENANT.value]),
        )
        # A LangGraph thread is the conversation: its id is the session when the
        # application named none (LangGraph copies configurable.thread_id to metadata).
        thread = meta.get(LG_THREAD_ID)
        session = given[MetaKey.SESSION_ID.value] or self.session_id or (
            str(thread) if isinstance(thread, (str, int)) and thread != "" else None)
        return meta, {"user_id": user_id, "session_id": session, "app": app}

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
        recorder = self.recorder
        if recorder.has_cuts:
            self._sweep()
        parent_key = str(parent_run_id) if parent_run_id is not None else None
        state = RunState(str(run_id), kind, parent_key, lc_root=parent_run_id is None,
                         marked=marked, name=name,
                         integration=str((metadata or {}).get(LS_INTEGRATION) or ""))
        if self._state_of(parent_key) is None:
            meta, context = self._context(metadata or {})
        else:  # children inherit the context from their parent run
            meta, context = dict(metadata or ()), {}
            meta.pop(MetaKey.USER_ID.value, None)
        started = recorder.start_run(
            state.key, kind=kind, name=name, framework=Framework.LANGCHAIN,
            parent_id=parent_key, inputs=inputs, tags=tags, metadata=meta,
            owner=self, state=state, on_end=self._root_ended if state.lc_root else None,
            **context,
        )
        if not started:
            known = self._state_of(state.key)
            if known is not None:  # this handler is attached to the run more than once
                with recorder.lock:
                    known.copies += 1
            return None  # else another handler on this Recorder has it
        if parent_key and tags and any(str(t).startswith(RETRY_TAG_PREFIX) for t in tags):
            recorder.record_retry(parent_key)  # RunnableRetry's attempts 2, 3, ...
        return state

    def _end(
        self,
        state: RunState,
        outputs: Any = UNSET,
        *,
        error: BaseException | None = None,
        inputs: Any = UNSET,
    ) -> None:
        recorder = self.recorder
        if inputs is not UNSET:
            recorder.set_inputs(state.key, inputs)
        cancelled = recorder.is_cut(state.key) or (
            error is not None and isinstance(error, CANCEL_ERRORS))
        if (cancelled or (error is None and inputs is not UNSET)) and recorder.children_of(
                state.key, self):
            # A stream closed early: LangChain ends the outer steps (reporting success
            # for sync streams) before the inner ones it abandoned.
            if recorder.cut_below(state.key, self):
                self._sweep_later()
            cancelled = True
        out = None if outputs is UNSET else outputs  # None: the run reported no outputs
        if error is not None:
            status = RunStatus.CANCELLED if cancelled else RunStatus.ERROR
            recorder.fail_run(state.key, error, outputs=out, status=status)
        else:
            status = RunStatus.CANCELLED if cancelled else RunStatus.OK
            recorder.end_run(state.key, outputs=out, status=status)
        if recorder.has_cuts:
            self._sweep()

    def _root_ended(self, trace_id: str) -> None:
        self._last_trace_id = trace_id

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
        self.recorder.cancel_overdue_cuts(
            _CUT_GRACE_S, lambda: StreamAbandoned("the stream was closed before this step ended"))

    def _state(self, run_id: UUID) -> RunState | None:
        """The state of an open run this handler records."""
        return self._state_of(str(run_id))

    def _state_of(self, key: str | None) -> RunState | None:
        if key is None:
            return None
        state: RunState | None = self.recorder.state_of(key, self)
        return state

    def _once(self, state: RunState, event: str) -> bool:
        """True for the first of the ``copies`` identical deliveries of an event."""
        with self.recorder.lock:
            count = state.seen.get(event, 0)
            state.seen[event] = count + 1
            return count % state.copies == 0

    def _report_to_parent(
        self, state: RunState, *, docs: DocList | None, reranked: tuple[str, ...] | None
    ) -> None:
        """Tell the parent what an ending child produced (for reranking detection)."""
        if reranked is None and state.kind is not RunKind.RETRIEVER:
            return  # nothing to tell: no lock taken
        with self.recorder.lock:
            parent = self._state_of(state.parent)
            if parent is None:
                return
            if state.kind is RunKind.RETRIEVER and parent.kind is RunKind.RETRIEVER:
                parent.child_retrievers += 1
                parent.child_docs = docs
            if reranked is not None:
                parent.reranked = reranked


def _text_or_none(value: object) -> str | None:
    """A context value given in run metadata as text (a tenant), else None."""
    return str(value) if isinstance(value, (str, int)) and value != "" else None
