"""Locks that a forked child gets fresh.

``fork()`` copies a lock in whatever state it is in: held by another thread of the
parent at that instant, it stays held in the child, where that thread does not exist,
and the child's first capture through that object would wait forever. The objects that
every callback goes through create their locks here; a fork hook replaces them in the
child. (The writer renews itself; see ``ragtrail.writer``.)
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar, overload

__all__ = ["fork_safe_lock"]

L = TypeVar("L")
# id(owner) -> (weak reference to owner, [(attribute, lock factory), ...])
_owners: dict[int, tuple[weakref.ref[Any], list[tuple[str, Callable[[], Any]]]]] = {}
_registry_lock = threading.Lock()
# Keys of owners that were garbage-collected, removed at the next registration. The
# weak reference's callback must not take _registry_lock: the collector may run it on
# a thread that holds the lock already (inside fork_safe_lock), which would deadlock.
_dead: list[int] = []


@overload
def fork_safe_lock(owner: object, attr: str = "_lock") -> threading.Lock: ...
@overload
def fork_safe_lock(owner: object, attr: str = "_lock", *, factory: Callable[[], L]) -> L: ...


def fork_safe_lock(owner: object, attr: str = "_lock",
                   factory: Callable[[], Any] = threading.Lock) -> Any:
    """A new lock for ``owner.<attr>``, replaced by a fresh one in forked children."""
    key = id(owner)

    def forget(_ref: weakref.ref[Any], key: int = key) -> None:
        _dead.append(key)  # list.append takes no lock of ours

    with _registry_lock:
        while _dead:
            gone = _dead.pop()
            found = _owners.get(gone)
            if found is not None and found[0]() is None:  # not an owner reusing the id
                _owners.pop(gone, None)
        entry = _owners.get(key)
        if entry is None or entry[0]() is not owner:
            entry = (weakref.ref(owner, forget), [])
            _owners[key] = entry
        entry[1].append((attr, factory))
    return factory()


def _renew_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()  # may have been held at fork time, too
    for ref, locks in list(_owners.values()):
        owner = ref()
        if owner is None:
            continue
        for attr, factory in locks:
            try:
                setattr(owner, attr, factory())
            except Exception:
                continue


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_in_child)
