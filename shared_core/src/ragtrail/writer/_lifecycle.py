"""Process-level hooks: flush at interpreter exit, and a fresh writer after ``fork``."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Protocol

__all__ = ["forget", "track"]

logger = logging.getLogger("ragtrail.writer")


class _Managed(Protocol):
    def close(self, timeout_s: float | None = None) -> bool: ...

    def _after_fork_in_child(self) -> None: ...


# Strong references: a writer that was never closed must still be flushed at exit.
_live: dict[int, _Managed] = {}
_hooks_lock = threading.Lock()
_hooks_installed = False


def track(writer: _Managed) -> None:
    """Close ``writer`` at interpreter exit and renew it in forked children, until forgotten."""
    global _hooks_installed
    with _hooks_lock:
        _live[id(writer)] = writer
        if not _hooks_installed:
            atexit.register(_close_all_at_exit)
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_renew_in_child)
                _close_at_multiprocessing_exit()
            _hooks_installed = True


def forget(writer: _Managed) -> None:
    """Stop managing ``writer`` (it was closed)."""
    with _hooks_lock:
        _live.pop(id(writer), None)


def _close_all_at_exit() -> None:
    for writer in list(_live.values()):
        try:
            writer.close()  # each within its own shutdown_timeout_s
        except Exception as exc:  # never fail the interpreter's exit
            logger.error("closing a writer at exit failed: %s", exc)


def _renew_in_child() -> None:
    # Only the forking thread exists here; another thread may have held _hooks_lock
    # at fork time, so it is replaced rather than acquired.
    global _hooks_lock
    _hooks_lock = threading.Lock()
    for writer in list(_live.values()):
        try:
            writer._after_fork_in_child()
        except Exception as exc:  # a fork must not fail because of us
            logger.error("renewing a writer after fork failed: %s", exc)


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
