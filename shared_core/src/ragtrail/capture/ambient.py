"""Ambient parent registry: which run is active in this context, across frameworks.

An adapter registers a provider that reports the id of the run its framework is
executing in the current thread or task. When a run starts without a parent, the
Recorder asks the providers, so a LlamaIndex query engine called inside a LangChain
step lands in the LangChain trace (and the other way round).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..guard import guarded

__all__ = ["ambient_parents", "register_parent_provider"]

ParentProvider = Callable[[], "str | None"]

_providers: dict[str, ParentProvider] = {}
_lock = threading.Lock()


def register_parent_provider(name: str, provider: ParentProvider) -> Callable[[], None]:
    """Register (or replace) the provider called ``name``; returns a function removing it."""
    with _lock:
        _providers[name] = provider

    def unregister() -> None:
        with _lock:
            if _providers.get(name) is provider:
                del _providers[name]

    return unregister


@guarded(default=None)
def _ask(provider: ParentProvider) -> str | None:
    value = provider()
    return str(value) if value is not None else None


def ambient_parents(exclude: str | None = None) -> list[str]:
    """Run ids the registered providers report as active here (``exclude`` skipped)."""
    with _lock:
        providers = list(_providers.values())
    found = []
    for provider in providers:
        run_id = _ask(provider)
        if run_id is not None and run_id != exclude:
            found.append(run_id)
    return found
