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

import logging
import threading
from typing import Any

from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tracers.context import register_configure_hook

from ragtrail.capture import guarded, register_parent_provider, report_to_stderr
from ragtrail.errors import StoreUnavailableError

from ._handler import RagtrailCallbackHandler
from ._names import ENV_TRACING, env_flag

__all__ = ["default_trail", "install", "instrument", "uninstrument"]

_lock = threading.Lock()
_default: Any = None
_default_failed = False  # the default Trail could not be opened
_logger = logging.getLogger("ragtrail.langchain")
_instrumented: RagtrailCallbackHandler | None = None
_env_handler: RagtrailCallbackHandler | None = None
_installed = False


def default_trail() -> Any:
    """The process-wide ``ragtrail.Trail()`` ($RAGTRAIL_URL, else ./ragtrail.db).

    Shared by every handler created without a trail, so handlers made per request
    (one per user or session) feed one Recorder and one writer. Opened once: when that
    fails (said once on stderr, and logged as an error), later calls raise
    ``StoreUnavailableError`` without trying again, and those handlers record nothing
    in this process.
    """
    global _default, _default_failed
    with _lock:
        if _default is None:
            if _default_failed:
                # Tried once: a database that does not answer would otherwise cost
                # every later callback its connect timeout.
                raise StoreUnavailableError("the default ragtrail Trail is unavailable "
                                            "(the reason was said once, on stderr)")
            from ragtrail import Trail

            try:
                _default = Trail()
            except Exception as exc:
                _default_failed = True
                # Once per process, on stderr even where logging is not configured.
                report_to_stderr(_logger, logging.ERROR, "the default ragtrail Trail could "
                                 "not be opened (%s); capture is off for handlers without a "
                                 "trail in this process: fix RAGTRAIL_URL or give "
                                 "RagtrailCallbackHandler a Trail", exc)
                raise
        return _default


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
