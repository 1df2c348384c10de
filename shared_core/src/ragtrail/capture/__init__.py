"""Capture core: the Recorder and what adapters need to feed it.

Imports no framework, no SQLAlchemy and no writer or store (import-linter enforces it).
"""

from __future__ import annotations

from .._forksafe import fork_safe_lock
from .._log import report_to_stderr
from ..guard import Extractor, extract, guarded
from .ambient import ambient_parents, register_parent_provider
from .config import CaptureConfig
from .converters import Converter, register_converter
from .llm_update import LLMUpdate
from .recorder import SOURCE_ID_KEY, DocumentInput, PricerLike, Recorder

__all__ = [
    "SOURCE_ID_KEY",
    "CaptureConfig",
    "Converter",
    "DocumentInput",
    "Extractor",
    "LLMUpdate",
    "PricerLike",
    "Recorder",
    "ambient_parents",
    "extract",
    "fork_safe_lock",
    "guarded",
    "register_converter",
    "register_parent_provider",
    "report_to_stderr",
]
