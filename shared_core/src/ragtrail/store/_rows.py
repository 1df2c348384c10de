"""CapturedRun -> table rows, made safe for both backends.

PostgreSQL refuses NUL (``\\x00``) in text and JSONB, and no driver can encode a
lone surrogate; such a value would make its whole batch a poison record. Every
string (JSON keys included) is therefore stored with those characters replaced by
U+FFFD, on both backends so they return the same data. Content hashes are computed
by the Recorder before storage, so documents stay joinable by their original hash.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

from ..schemas import CapturedRun, LLMMetadata, Run

__all__ = ["RowSet", "clean_json", "clean_text", "json_dump", "rows_for"]

_REPLACEMENT = "\ufffd"


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


def json_dump(model: BaseModel) -> dict[str, Any]:
    """``model`` as JSON-native data with every string cleaned (see :func:`clean_text`).

    Serialized once in pydantic's Rust core; the Python walk over every string only
    runs for the rare record that holds a NUL.
    """
    try:
        text = model.model_dump_json()
    except (UnicodeError, PydanticSerializationError):
        # Lone surrogates cannot even be serialized: clean the Python values first.
        cleaned = clean_json(model.model_dump(mode="python"))
        return json_dump(type(model).model_validate(cleaned))
    data: dict[str, Any] = json.loads(text)
    return clean_json(data) if "\\u0000" in text else data


def _run_row(run: Run) -> dict[str, Any]:
    row = json_dump(run)
    # Timestamps go through UtcDateTime, not as JSON text.
    row["started_at"] = run.started_at
    row["ended_at"] = run.ended_at
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


def _llm_row(record: CapturedRun, meta: LLMMetadata) -> dict[str, Any]:
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
        "metadata": json_dump(meta),
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

    def __init__(self) -> None:
        self.runs: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.llm_calls: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.documents: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.document_links: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(self, record: CapturedRun) -> None:
        """Add one record's rows."""
        run = _run_row(record.run)
        self.runs.setdefault((run["id"],), run)
        if record.llm is not None:
            call = _llm_row(record, record.llm)
            self.llm_calls.setdefault((call["run_id"],), call)
        for document in record.documents:
            doc = json_dump(document)
            self.documents.setdefault((doc["content_hash"],), doc)
        for link in record.links:
            row = json_dump(link)
            self.document_links.setdefault((row["run_id"], row["content_hash"], row["stage"]), row)

    def tables(self) -> Iterable[tuple[str, list[dict[str, Any]]]]:
        """(table name, rows sorted by key) in insert order: parents before children.

        Sorting gives concurrent writers one lock order, so they cannot deadlock.
        """
        for name in ("runs", "llm_calls", "documents", "document_links"):
            rows: dict[tuple[Any, ...], dict[str, Any]] = getattr(self, name)
            yield name, [rows[key] for key in sorted(rows)]


def rows_for(records: Sequence[CapturedRun]) -> RowSet:
    """The deduplicated rows of ``records``."""
    rows = RowSet()
    for record in records:
        rows.add(record)
    return rows
