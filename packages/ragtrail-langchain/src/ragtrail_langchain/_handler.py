"""``RagtrailCallbackHandler``: LangChain callbacks translated into Recorder calls."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ragtrail.capture import extract, guarded
from ragtrail.schemas import DocStage, RunKind

from . import _extractors as read
from ._convert import plain, run_name
from ._core import StreamAbandoned
from ._documents import DocList
from ._extractors import AgentEvent, Documents
from ._llm_callbacks import LLMCallbacks
from ._steps import StepCallbacks

__all__ = ["RagtrailCallbackHandler", "StreamAbandoned"]


class RagtrailCallbackHandler(StepCallbacks, LLMCallbacks):
    """One LangChain callback handler capturing chains, retrievers, rerankers and LLM calls.

    Args:
        trail: a ``ragtrail.Trail`` (or a ``ragtrail.capture.Recorder``); None uses the
            process-wide default ``Trail()``, opened on first use (its construction is
            the only I/O a callback may ever do, once per process).
        user_id: stored only as a keyed hash; run metadata ``user_id`` overrides it.
        session_id, app_name, app_version: application context; run metadata with the
            same keys overrides them per invocation.

    LangChain's run ids are kept as ragtrail run ids. ``last_trace_id`` is the trace id
    of the most recent LangChain root run this handler finished.
    """

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
        """Close a tool run; documents it returned (or carried as the artifact of its
        tool message) are linked to it at stage ``retrieved``, as a retriever's are."""
        state = self._state(run_id)
        if state is None:
            return
        docs: DocList | None = extract(read.TOOL_END, Documents(output)).get("documents")
        if docs is not None:
            self.recorder.add_documents(state.key, docs.inputs(), stage=DocStage.RETRIEVED)
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
        if state is None or not self._once(state, "agent_action"):
            return
        if state.kind is not RunKind.AGENT:
            state.kind = RunKind.AGENT
            self.recorder.set_kind(state.key, RunKind.AGENT)
        self.recorder.add_event(state.key, "agent_action",
                                extract(read.AGENT_ACTION, AgentEvent(action)))

    @guarded
    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Keep the agent's final answer as an event."""
        state = self._state(run_id)
        if state is not None and self._once(state, "agent_finish"):
            self.recorder.add_event(state.key, "agent_finish",
                                    extract(read.AGENT_FINISH, AgentEvent(finish)))

    # -- retries and custom events -------------------------------------------------------

    @guarded
    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Count one retry on the run (e.g. a provider call retried by tenacity)."""
        state = self._state(run_id)
        if state is not None and self._once(state, "retry"):
            self.recorder.record_retry(state.key)

    @guarded
    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Keep an event the application dispatched inside a run."""
        state = self._state(run_id)
        if state is not None and self._once(state, "custom_event"):
            self.recorder.add_event(state.key, name, plain(data))
