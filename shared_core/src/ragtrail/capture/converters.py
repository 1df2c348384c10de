"""Converters for framework objects met inside captured payloads.

An adapter registers, per class, a function turning an instance into plain data (a
LangChain ``Document`` into ``{page_content, metadata, id}``, a message into
``{role, content}``). The Recorder's payload conversion calls it wherever such an
object appears, at any depth, in the same walk that bounds and redacts the payload,
so adapters hand their payloads over as they are instead of copying them first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Converter", "converter_for", "register_converter"]

#: Turns one framework object into plain data (dicts, lists, strings, numbers), which
#: may still hold other registered objects. An exception loses only that value.
Converter = Callable[[Any], Any]

_registry: dict[type, Converter] = {}
_resolved: dict[type, Converter | None] = {}  # per concrete class, after an MRO search
_lock = threading.Lock()


def register_converter(cls: type, converter: Converter) -> Callable[[], None]:
    """Convert instances of ``cls`` (and subclasses) with ``converter``.

    Returns a function removing the registration. Registering a class again replaces
    its converter; the most specific registered class of an object wins.
    """
    with _lock:
        _registry[cls] = converter
        _resolved.clear()

    def unregister() -> None:
        with _lock:
            if _registry.get(cls) is converter:
                del _registry[cls]
                _resolved.clear()

    return unregister


def converter_for(cls: type) -> Converter | None:
    """The converter for objects of class ``cls``, or None (one dict lookup when known)."""
    try:
        return _resolved[cls]
    except KeyError:
        pass
    with _lock:
        found = next((_registry[base] for base in cls.__mro__ if base in _registry), None)
        _resolved[cls] = found
    return found
