"""Callbacks of LLMs and chat models."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, cast
from uuid import UUID

from langchain_core.outputs import LLMResult

from ragtrail.capture import Extractor, LLMUpdate, extract, guarded
from ragtrail.capture.llm_update import compact
from ragtrail.providers import PROVIDER_FROM_CLASS
from ragtrail.schemas import RunKind

from . import _extractors as read
from ._convert import plain, run_name
from ._core import HandlerCore
from ._extractors import ModelError, ModelStart, NewToken, model_end
from ._llm import class_default_providers, class_provider, from_langchain_package
from ._state import RunState

__all__ = ["LLMCallbacks"]


class LLMCallbacks(HandlerCore):
    """Model calls: the messages sent, parameters, usage, response metadata, TTFT."""

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
                        {"messages": plain(sent)}, read.CHAT_MODEL_START, messages=list(sent))

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
                        {"prompts": list(prompts)}, read.LLM_START, prompt=prompt)

    def _start_llm(
        self,
        serialized: dict[str, Any] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: Mapping[str, Any],
        inputs: Any,
        extractors: tuple[Extractor[ModelStart], ...],
        **sent: Any,
    ) -> None:
        name = run_name(serialized, kwargs.get("name"), "LLM") or "LLM"
        state = self._start(run_id, parent_run_id, RunKind.LLM, name, inputs, tags, metadata)
        if state is not None:
            event = ModelStart(serialized, metadata or {},
                               dict(kwargs.get("invocation_params") or {}), **sent)
            meta = cast(LLMUpdate, extract(extractors, event))
            reported = meta.get("provider")
            own_class = not from_langchain_package(serialized)
            if reported is None or (own_class and reported in class_default_providers(serialized)):
                # None, or only LangChain's default from the class name of a model class
                # of the user's own: no provider is known yet.
                meta.pop("provider", None)
                state.provider_unknown = True
                state.provider_guess = reported or class_provider(serialized)
                state.provider_inferable = own_class
            self.recorder.update_llm(state.key, meta)

    @guarded
    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """The call streams; time to first token: the first streamed token with content."""
        state = self._state(run_id)
        if state is None or state.first_token:
            return
        if not state.streamed:
            state.streamed = True
            self.recorder.update_llm(state.key, LLMUpdate(streamed=True))
        if extract(read.LLM_NEW_TOKEN, NewToken(token, kwargs.get("chunk"))).get("content"):
            state.first_token = True
            self.recorder.record_first_token(state.key)

    @guarded
    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a model call with usage, response metadata and rate limits."""
        state = self._state(run_id)
        if state is None:
            return
        meta = cast(LLMUpdate, extract(read.LLM_END, model_end(response,
                                                            datetime.now(timezone.utc))))
        reported = (meta.get("provider_specific") or {}).get("model_provider")
        _merge(meta, self._unknown_provider(state, reported))
        self.recorder.update_llm(state.key, meta)
        self._end(state, response)

    @staticmethod
    def _unknown_provider(state: RunState, reported: str | None) -> LLMUpdate:
        """For a model that named no provider at its start: the one its response
        names, else its class-name guess. For a class of the user's own the guess is
        only a fallback: the core first infers the provider from the model name (see
        ragtrail.providers.resolve_provider); an integration's class name is its word."""
        if not state.provider_unknown:
            return LLMUpdate()
        if reported:
            return LLMUpdate(provider=reported)
        if not state.provider_guess:
            return LLMUpdate()
        if state.provider_inferable:
            return LLMUpdate(provider_specific={PROVIDER_FROM_CLASS: state.provider_guess})
        return LLMUpdate(provider=state.provider_guess)

    @guarded
    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a model call with its error, keeping any partial output."""
        state = self._state(run_id)
        if state is None:
            return
        meta = cast(LLMUpdate, extract(read.LLM_ERROR, ModelError(kwargs.get("response"))))
        _merge(meta, self._unknown_provider(state, None))
        if any(meta.values()):
            self.recorder.update_llm(state.key, compact(meta, falsy=True))
        self._end(state, error=error)


def _merge(meta: LLMUpdate, more: LLMUpdate) -> None:
    """Add ``more`` to ``meta``; provider specifics are merged key by key (the class-name
    guess must not replace what the response's usage kept, e.g. cache writes by TTL)."""
    specific = more.pop("provider_specific", None)
    meta.update(more)
    if specific:
        meta["provider_specific"] = {**(meta.get("provider_specific") or {}), **specific}
