"""Capture core: the Recorder and what adapters need to feed it.

Imports no framework, no SQLAlchemy and no writer or store (import-linter enforces it).
"""

from __future__ import annotations

from .._forksafe import fork_safe_lock
from ..guard import guarded
from .ambient import ambient_parents, register_parent_provider
from .config import CaptureConfig
from .converters import Converter, register_converter
from .recorder import SOURCE_ID_KEY, DocumentInput, PricerLike, Recorder

__all__ = [
    "SOURCE_ID_KEY",
    "CaptureConfig",
    "Converter",
    "DocumentInput",
    "PricerLike",
    "Recorder",
    "ambient_parents",
    "fork_safe_lock",
    "guarded",
    "register_converter",
    "register_parent_provider",
]
