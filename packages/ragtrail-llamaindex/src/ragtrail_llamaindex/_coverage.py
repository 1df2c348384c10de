"""Callback form: which components report to a ``RagtrailHandler``.

LlamaIndex's classic contract is that a component reports to the handlers of its own
callback manager. Agents, workflows, tools and ingestion pipelines have none, so they
would never be recorded by the callback form, and every LLM call or query engine run
inside them would become a trace of its own. They are recorded here when the
callback manager a LlamaIndex component falls back to (``Settings.callback_manager``)
holds the handler, or when a component they hold (an agent's LLM, a tool's query
engine, a workflow's retriever, an ingestion pipeline's embedding model) does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ragtrail._log import get_logger
from ragtrail.capture import guarded

__all__ = ["NOT_SEEN_NOTE", "handlers_of", "holds_engine", "reaches_engine"]

_MAX_VISITS = 256  # objects looked at per probe (an index holds thousands of nodes)
_MAX_DEPTH = 4  # AgentWorkflow -> agents -> agent -> tools -> tool -> query engine
_MAX_ITEMS = 64  # items of one list or mapping looked at
_SKIP = (str, bytes, int, float, bool, type(None))

NOT_SEEN_NOTE = (
    "RagtrailHandler (callback form): agents, workflows, tools and ingestion pipelines "
    "have no callback manager of their own; they are recorded when Settings.callback_manager "
    "or a component they hold (an LLM, a query engine, a retriever, an embedding model) "
    "holds this handler. A workflow whose components are reachable neither way (created "
    "inside a step, or held in a closure) is not recorded by the callback form: its LLM "
    "and query engine runs become traces of their own. instrument(trail) records every run."
)
_log = get_logger("llamaindex")
_noted = False


def note_not_seen_once() -> None:
    """Log :data:`NOT_SEEN_NOTE` once per process (the first ``RagtrailHandler``)."""
    global _noted
    if not _noted:
        _noted = True
        _log.info(NOT_SEEN_NOTE)


@guarded(default=None)
def handlers_of(instance: Any) -> list[Any] | None:
    """The handlers of ``instance``'s own callback manager (None: it has none)."""
    if instance is None:
        return None
    manager = getattr(instance, "callback_manager", None)
    handlers = getattr(manager, "handlers", None)
    return handlers if isinstance(handlers, list) else None


def holds_engine(handlers: list[Any], engine: Any) -> bool:
    """Whether ``handlers`` hold a handler reporting to ``engine``."""
    return any(getattr(h, "_ragtrail_engine", None) is engine for h in handlers)


@guarded(default=False)
def reaches_engine(instance: Any, engine: Any) -> bool:
    """A component without a callback manager: whether it reports to ``engine``
    (see module docstring)."""
    from llama_index.core.settings import Settings

    default = getattr(Settings, "_callback_manager", None)  # never create one
    if default is not None and holds_engine(list(getattr(default, "handlers", [])), engine):
        return True
    seen: set[int] = {id(instance)}
    for component in _components(instance, 0, seen):
        handlers = handlers_of(component)
        if handlers is not None and holds_engine(handlers, engine):
            return True
    return False


def _components(value: Any, depth: int, seen: set[int]) -> Iterator[Any]:
    """Objects reachable from ``value`` through attributes, lists and mappings,
    breadth-bounded; a component with a callback manager is not looked into."""
    if depth >= _MAX_DEPTH:
        return
    for child in _children(value):
        if isinstance(child, _SKIP) or id(child) in seen or len(seen) >= _MAX_VISITS:
            continue
        seen.add(id(child))
        if isinstance(child, (list, tuple, set, frozenset, Mapping)):
            yield from _components(child, depth, seen)
            continue
        yield child
        if handlers_of(child) is None:
            yield from _components(child, depth + 1, seen)


def _children(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return list(value.values())[:_MAX_ITEMS]
    if isinstance(value, (list, tuple, set, frozenset)):
        return list(value)[:_MAX_ITEMS]
    found: list[Any] = []
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        found.extend(list(attributes.values())[:_MAX_ITEMS])
    private = getattr(value, "__pydantic_private__", None)
    if isinstance(private, dict):
        found.extend(list(private.values())[:_MAX_ITEMS])
    return found
