"""CapturedRun -> table rows, made safe for both backends.

PostgreSQL refuses NUL (``\\x00``) in text and JSONB, and no driver can encode a
lone surrogate; such a value would make its whole batch a poison record. Every
string (JSON keys included) is therefore stored with those characters replaced by
U+FFFD, on both backends so they return the same data. Content hashes are computed
by the Recorder before storage, so documents stay joinable by their original hash.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json

from ..schemas import CapturedRun, Document, DocumentLink, LLMMetadata, Run

__all__ = [
    "JsonText",
    "RowSet",
    "clean_json",
    "clean_text",
    "json_dump",
    "json_serializer",
    "rows_for",
]

_REPLACEMENT = "\ufffd"
# Run fields stored in JSON columns; every other field is a scalar column of its own name.
_RUN_JSON = frozenset({"error", "inputs", "outputs", "tags", "metadata", "events", "environment"})
_RUN_FIELDS = tuple(Run.model_fields)


class JsonText(str):
    """A JSON document serialized once (by pydantic's Rust core), stored as it is.

    The store's engines serialize JSON columns with :func:`json_serializer`, which
    passes these through, so a record's payloads are never dumped, parsed and dumped
    again on the way to the database.
    """


def json_serializer(value: Any) -> str:
    """The store engines' JSON serializer: :class:`JsonText` as it is, else ``json.dumps``."""
    if type(value) is JsonText:
        return str.__str__(value)
    if value is None:
        return "null"  # SQLAlchemy stores a None JSON value as JSON null
    return json.dumps(value)


def clean_text(text: str) -> str:
    """``text`` with NUL characters and lone surrogates replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", _REPLACEMENT)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_REPLACEMENT if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


def clean_json(value: Any) -> Any:
    """A JSON-native value with every string (and key) passed through :func:`clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(str(key)): clean_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(item) for item in value]
    return value


def _json_text(value: Any) -> JsonText:
    """``value`` as JSON text, the way pydantic dumps it in a model, strings cleaned.

    Serialized once in pydantic's Rust core; the Python walk over every string only
    runs for the rare value that holds a NUL or a lone surrogate.
    """
    try:
        text = to_json(value, inf_nan_mode="null").decode()
    except (UnicodeError, PydanticSerializationError):
        # Lone surrogates cannot even be serialized: clean the Python values first.
        plain = value.model_dump(mode="python") if isinstance(value, BaseModel) else value
        text = to_json(clean_json(plain), inf_nan_mode="null").decode()
    if "\\u0000" in text:
        text = to_json(clean_json(json.loads(text)), inf_nan_mode="null").decode()
    return JsonText(text)


def json_dump(model: BaseModel) -> dict[str, Any]:
    """``model`` as JSON-native data with every string cleaned (see :func:`clean_text`)."""
    data: dict[str, Any] = json.loads(_json_text(model))
    return data


def _scalar(value: Any) -> Any:
    """A scalar column value as pydantic's JSON dump would give it, strings cleaned."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # pydantic dumps inf and NaN as null
    return value


class _Json:
    """How JSON column values are handed to the engine: as text, or as parsed data."""

    def __init__(self, as_text: bool) -> None:
        self.as_text = as_text

    def __call__(self, value: Any) -> Any:
        if value is None:
            return None
        text = _json_text(value)
        return text if self.as_text else json.loads(text)


def _run_row(run: Run, dump: _Json) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in _RUN_FIELDS:
        value = getattr(run, name)
        row[name] = dump(value) if name in _RUN_JSON else _scalar(value)
    # Timestamps go through UtcDateTime as datetimes (kept above: _scalar leaves them).
    return row


def _model_name(meta: LLMMetadata) -> str | None:
    if meta.provider_model:
        return meta.provider_model
    if meta.request_parameters is not None and meta.request_parameters.model:
        return meta.request_parameters.model
    if meta.response_metadata is not None:
        return meta.response_metadata.model_version
    return None


def _text(value: str | None) -> str | None:
    return clean_text(value) if value else None


def _llm_row(record: CapturedRun, meta: LLMMetadata, dump: _Json) -> dict[str, Any]:
    usage = meta.token_usage
    cost = meta.cost_metrics
    total_tokens = usage.total_tokens if usage is not None else None
    if usage is not None and total_tokens is None and None not in (
        usage.input_tokens,
        usage.output_tokens,
    ):
        total_tokens = (usage.input_tokens or 0) + (usage.output_tokens or 0)
    model = _model_name(meta)
    row: dict[str, Any] = {
        "run_id": clean_text(record.run.id),
        "trace_id": clean_text(record.run.trace_id),
        "provider": _text(meta.provider),
        "provider_model": _text(model),
        "started_at": record.run.started_at,
        "total_tokens": total_tokens,
        "metadata": dump(meta),
        "prompt_template_hash": _text(meta.prompt_template_hash),
    }
    for name in ("input", "output", "cache_read", "cache_creation", "reasoning"):
        row[f"{name}_tokens"] = getattr(usage, f"{name}_tokens") if usage is not None else None
    for name in ("input", "output", "cache_read", "cache_write", "reasoning", "total"):
        row[f"{name}_cost"] = getattr(cost, f"{name}_cost") if cost is not None else None
    row["currency"] = _text(cost.currency) if cost is not None else None
    row["price_status"] = (
        cost.price_status.value if cost is not None and cost.price_status is not None else None
    )
    return row


class RowSet:
    """The rows of a batch, one per primary key (the first occurrence wins)."""

    def __init__(self, *, json_as_text: bool = False) -> None:
        self._dump = _Json(json_as_text)
        self.runs: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.llm_calls: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.documents: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.document_links: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(self, record: CapturedRun) -> None:
        """Add one record's rows."""
        run = _run_row(record.run, self._dump)
        self.runs.setdefault((run["id"],), run)
        if record.llm is not None:
            call = _llm_row(record, record.llm, self._dump)
            self.llm_calls.setdefault((call["run_id"],), call)
        for document in record.documents:
            doc = _document_row(document, self._dump)
            self.documents.setdefault((doc["content_hash"],), doc)
        for link in record.links:
            row = _link_row(link)
            self.document_links.setdefault((row["run_id"], row["content_hash"], row["stage"]), row)

    def tables(self) -> Iterable[tuple[str, list[dict[str, Any]]]]:
        """(table name, rows sorted by key) in insert order: parents before children.

        Sorting gives concurrent writers one lock order, so they cannot deadlock.
        """
        for name in ("runs", "llm_calls", "documents", "document_links"):
            rows: dict[tuple[Any, ...], dict[str, Any]] = getattr(self, name)
            yield name, [rows[key] for key in sorted(rows)]


def _document_row(document: Document, dump: _Json) -> dict[str, Any]:
    return {"document_id": _scalar(document.document_id),
            "content_hash": _scalar(document.content_hash),
            "content": _scalar(document.content), "metadata": dump(document.metadata)}


def _link_row(link: DocumentLink) -> dict[str, Any]:
    return {name: _scalar(getattr(link, name)) for name in DocumentLink.model_fields}


def rows_for(records: Sequence[CapturedRun], *, json_as_text: bool = False) -> RowSet:
    """The deduplicated rows of ``records``.

    ``json_as_text``: JSON columns hold :class:`JsonText` (for engines serializing with
    :func:`json_serializer`) instead of parsed data.
    """
    rows = RowSet(json_as_text=json_as_text)
    for record in records:
        rows.add(record)
    return rows
