"""The global switch: ``instrument()``, ``RAGTRAIL_TRACING`` and the ambient parent.

LangChain builds the callback manager of every run in ``CallbackManager.configure``,
which consults the "configure hooks" registered with ``register_configure_hook``. We
register one at import. Its slot is read on every configure call, so it reports the
instrumented handler, or, while ``RAGTRAIL_TRACING`` is set, a handler on the default
``Trail()``. A run that already carries a ``RagtrailCallbackHandler`` (given
explicitly) gets no second one: LangChain skips the hook when an instance of the
handler class is present.
"""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers.context import register_configure_hook

from ragtrail.capture import guarded, register_parent_provider

from ._handler import RagtrailCallbackHandler
from ._names import ENV_TRACING, env_flag

__all__ = ["install", "instrument", "uninstrument"]

_lock = threading.Lock()
_instrumented: RagtrailCallbackHandler | None = None
_env_handler: RagtrailCallbackHandler | None = None
_installed = False


def instrument(trail: Any = None) -> RagtrailCallbackHandler:
    """Record every LangChain run in this process into ``trail`` (default: ``Trail()``).

    Works in every thread and task, without passing callbacks. Returns the handler in
    use (its ``last_trace_id`` names the latest finished trace). Idempotent: a second
    call replaces the trail.
    """
    global _instrumented
    handler = RagtrailCallbackHandler(trail)
    with _lock:
        _instrumented = handler
    return handler


def uninstrument() -> None:
    """Stop recording runs that do not carry a handler explicitly.

    ``RAGTRAIL_TRACING`` still applies while it is set.
    """
    global _instrumented
    with _lock:
        _instrumented = None


def _tracing_handler() -> RagtrailCallbackHandler | None:
    global _env_handler
    if _instrumented is not None:
        return _instrumented
    if not env_flag(ENV_TRACING):
        return None
    with _lock:
        if _env_handler is None:
            _env_handler = RagtrailCallbackHandler()
        return _env_handler


class _GlobalSlot:
    """What LangChain's configure hook reads (it calls only ``get()``).

    A real ContextVar set by ``instrument()`` would be unset in threads started
    without a copy of the caller's context (plain ``threading.Thread``, most web
    servers' worker pools), so the switch would silently miss them.
    """

    def get(self) -> RagtrailCallbackHandler | None:
        return _tracing_handler()


@guarded(default=None)
def active_langchain_run() -> str | None:
    """Id of the LangChain run executing in this context (a RunnableLambda's body...).

    Lets a LlamaIndex query engine (or a manual ``Trail.run``) started inside a
    LangChain step land in the LangChain trace.
    """
    config = var_child_runnable_config.get()
    if not config:
        return None
    parent = getattr(config.get("callbacks"), "parent_run_id", None)
    return str(parent) if parent is not None else None


def install() -> None:
    """Register the configure hook and the parent provider once per process."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    register_configure_hook(
        _GlobalSlot(),  # type: ignore[arg-type]
        inheritable=True,
        handle_class=RagtrailCallbackHandler,
        env_var=ENV_TRACING,
    )
    register_parent_provider("langchain", active_langchain_run)
