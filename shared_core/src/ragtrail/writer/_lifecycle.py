"""Process-level hooks: flush at interpreter exit, and a fresh writer after ``fork``.

Owners (a ``Trail``: what feeds writers) are closed at exit before the writers, so the
runs they still hold open reach a writer that still takes them; after ``fork`` both
are renewed in the child.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any, Protocol

from .._log import SafeLogger

__all__ = ["forget", "forget_owner", "track", "track_owner"]

logger = SafeLogger("ragtrail.writer")


class _Managed(Protocol):
    def close(self, timeout_s: float | None = None) -> bool: ...

    def _after_fork_in_child(self) -> None: ...


class _Owner(Protocol):
    def _close_at_exit(self) -> None: ...

    def _after_fork_in_child(self) -> None: ...


# Strong references: a writer that was never closed must still be flushed at exit.
_live: dict[int, _Managed] = {}
_owners: dict[int, _Owner] = {}
_hooks_lock = threading.Lock()
_hooks_installed = False


def track(writer: _Managed) -> None:
    """Close ``writer`` at interpreter exit and renew it in forked children, until forgotten."""
    _manage(_live, writer)


def forget(writer: _Managed) -> None:
    """Stop managing ``writer`` (it was closed)."""
    _manage(_live, writer, keep=False)


def track_owner(owner: _Owner) -> None:
    """Call ``owner._close_at_exit()`` at exit, before any writer is closed, and
    ``owner._after_fork_in_child()`` in forked children, until forgotten."""
    _manage(_owners, owner)


def forget_owner(owner: _Owner) -> None:
    """Stop managing ``owner`` (it was closed)."""
    _manage(_owners, owner, keep=False)


def _manage(registry: dict[int, Any], item: object, *, keep: bool = True) -> None:
    global _hooks_installed
    with _hooks_lock:
        if not keep:
            registry.pop(id(item), None)
            return
        registry[id(item)] = item
        if not _hooks_installed:
            atexit.register(_close_all_at_exit)
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_renew_in_child)
                _close_at_multiprocessing_exit()
            _hooks_installed = True


def _each(items: list[Any], action: str, what: str) -> None:
    # Never fail the interpreter's exit or a fork because of us.
    for item in items:
        try:
            getattr(item, action)()
        except Exception as exc:
            logger.error("%s failed: %s", what, exc)


def _close_all_at_exit() -> None:
    _each(list(_owners.values()), "_close_at_exit", "closing a trail at exit")
    # Each writer within its own shutdown_timeout_s.
    _each(list(_live.values()), "close", "closing a writer at exit")


def _renew_in_child() -> None:
    # Only the forking thread exists here; another thread may have held _hooks_lock
    # at fork time, so it is replaced rather than acquired.
    global _hooks_lock
    _hooks_lock = threading.Lock()
    _each(list(_live.values()), "_after_fork_in_child", "renewing a writer after fork")
    _each(list(_owners.values()), "_after_fork_in_child", "renewing a trail after fork")


class _Token:
    """Something multiprocessing can hold a weak reference to."""


_TOKEN = _Token()


def _close_at_multiprocessing_exit() -> None:
    """multiprocessing's forked children leave through ``os._exit``, skipping atexit.

    They do run multiprocessing's own finalizers; its registry is cleared in the child
    after our fork hook, so the finalizer is added by its after-fork callback instead.
    """
    from multiprocessing import util

    util.register_after_fork(_TOKEN, _add_finalizer)


def _add_finalizer(_token: object) -> None:
    from multiprocessing import util

    util.Finalize(None, _close_all_at_exit, exitpriority=10)
