"""The records ragtrail stores, as pydantic v2 models.

Imports only the standard library and pydantic (a test enforces it), so any tool can
read ragtrail data with this package alone.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from .context import AppContext, Environment
from .conventions import (
    CURRENT_SCHEMA_VERSION,
    NON_ANSWERING_KINDS,
    ROLE_KEY,
    DocStage,
    Framework,
    MetaKey,
    PriceStatus,
    RunKind,
    RunStatus,
    StepRole,
)
from .keys import MAX_KEY_CHARS, bounded_key
from .llm import (
    MAX_MONEY,
    MAX_TOKENS,
    LLMCallRecord,
    LLMCostMetrics,
    LLMMetadata,
    LLMMetadataFlat,
    LLMPerformanceMetrics,
    LLMRateLimitInfo,
    LLMRequestParameters,
    LLMResponseMetadata,
    LLMTokenUsage,
)
from .rag import Document, DocumentLink, content_hash
from .record import CapturedRun
from .registry import SchemaError, SchemaRegistry, UnknownSchemaVersion, registry
from .run import Run, RunError

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "MAX_KEY_CHARS",
    "MAX_MONEY",
    "MAX_TOKENS",
    "NON_ANSWERING_KINDS",
    "ROLE_KEY",
    "AppContext",
    "CapturedRun",
    "DocStage",
    "Document",
    "DocumentLink",
    "Environment",
    "Framework",
    "LLMCallRecord",
    "LLMCostMetrics",
    "LLMMetadata",
    "LLMMetadataFlat",
    "LLMPerformanceMetrics",
    "LLMRateLimitInfo",
    "LLMRequestParameters",
    "LLMResponseMetadata",
    "LLMTokenUsage",
    "MetaKey",
    "PriceStatus",
    "Run",
    "RunError",
    "RunKind",
    "RunStatus",
    "SchemaError",
    "SchemaRegistry",
    "StepRole",
    "UnknownSchemaVersion",
    "bounded_key",
    "content_hash",
    "json_schema",
    "registry",
]

#: The records stored, in the order the JSON Schema lists them.
STORED_MODELS = (CapturedRun, Run, LLMCallRecord, LLMMetadata, LLMMetadataFlat, Document,
                 DocumentLink, AppContext, Environment)


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of every stored record, with shared definitions."""
    _, schema = models_json_schema(
        [(model, "serialization") for model in STORED_MODELS],
        title=f"ragtrail records, schema_version {CURRENT_SCHEMA_VERSION}",
    )
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["schema_version"] = CURRENT_SCHEMA_VERSION
    return schema


def json_schema_text() -> str:
    """:func:`json_schema` as indented JSON text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True)
